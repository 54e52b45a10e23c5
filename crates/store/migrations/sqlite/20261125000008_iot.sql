-- IoT devices (not phones): each has its own MQTT credentials (username = device id), an
-- owner, and optionally a group (fleet). Telemetry is stored as JSON with the topic suffix;
-- commands keep their delivery status.
CREATE TABLE iot_devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id     TEXT    NOT NULL UNIQUE,
    owner_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name    TEXT,
    password_hash TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    online        BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen     BIGINT,
    created_at    BIGINT  NOT NULL,
    rotated_at    BIGINT
);
CREATE INDEX iot_devices_owner ON iot_devices (owner_id);
CREATE INDEX iot_devices_group ON iot_devices (group_name);

CREATE TABLE iot_telemetry (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BIGINT  NOT NULL REFERENCES iot_devices (id) ON DELETE CASCADE,
    ts_ms     BIGINT  NOT NULL,
    topic     TEXT    NOT NULL,
    payload   TEXT    NOT NULL
);
CREATE INDEX iot_telemetry_device_time ON iot_telemetry (device_id, ts_ms);

CREATE TABLE iot_commands (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id      TEXT    NOT NULL UNIQUE,
    device_id       BIGINT  REFERENCES iot_devices (id) ON DELETE CASCADE,
    group_name      TEXT,
    command         TEXT    NOT NULL,
    parameters      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    delivered_at    BIGINT,
    acknowledged_at BIGINT,
    response        TEXT
);
CREATE INDEX iot_commands_device ON iot_commands (device_id, id);

-- A running server keeps devices' owners and groups in memory (for per-message ACL checks)
-- and closes the connections of a removed or rotated device: bump the counter it polls.
CREATE TRIGGER iot_devices_inserted AFTER INSERT ON iot_devices
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER iot_devices_deleted AFTER DELETE ON iot_devices
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER iot_devices_changed AFTER UPDATE OF password_hash, owner_id, group_name ON iot_devices
BEGIN UPDATE account_changes SET version = version + 1; END;
