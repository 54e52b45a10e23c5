-- IoT devices' connections as an external broker reports them (scale-out mode): events come
-- through web hooks to any node, out of order and more than once, so a device is online when
-- one of its client ids was last seen connecting (by the broker's clock), whatever the order
-- the events arrived in. Times are milliseconds.
CREATE TABLE iot_connections (
    device_id       BIGINT NOT NULL REFERENCES iot_devices (id) ON DELETE CASCADE,
    client_id       TEXT   NOT NULL,
    connected_at    BIGINT NOT NULL DEFAULT 0,
    disconnected_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, client_id)
);
