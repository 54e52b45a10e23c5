-- Retained MQTT messages to clear, left by a process without the broker (the command line
-- deleting a device or a range): the running server clears them at start and whenever
-- account_changes.version moves, which an insert here bumps. With tst_from/tst_to, `filter`
-- is one topic whose retained message is cleared only if its `tst` lies in that range (a
-- deleted range of history that held the device's last position).
CREATE TABLE retained_clears (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    filter     TEXT   NOT NULL,
    tst_from   BIGINT,
    tst_to     BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TRIGGER retained_clears_inserted AFTER INSERT ON retained_clears
BEGIN UPDATE account_changes SET version = version + 1; END;
