-- One location per device, time and position: a broker redelivers a message whose
-- acknowledgement was lost (scale-out ingest), and an import may run twice; both must store it
-- once. Inserts use ON CONFLICT (device_id, tst, lat, lon) DO NOTHING. Copies already stored
-- are removed first, keeping the oldest row. The new index starts with (device_id, tst), so
-- the old index on those two columns is dropped.
DELETE FROM locations WHERE id NOT IN
    (SELECT MIN(id) FROM locations GROUP BY device_id, tst, lat, lon);
CREATE UNIQUE INDEX locations_device_tst_position ON locations (device_id, tst, lat, lon);
DROP INDEX locations_device_tst;
