-- The newest message per topic of a device (`telemetry/latest/`) is a group-by over the
-- device's rows; this index answers it without reading the payloads.
CREATE INDEX iot_telemetry_device_topic ON iot_telemetry (device_id, topic, id);
