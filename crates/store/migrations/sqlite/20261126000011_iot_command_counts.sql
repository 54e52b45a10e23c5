-- A fleet command goes to many devices: how many completed its delivery (PUBCOMP) and how many
-- answered. A device's own command counts to one of each.
ALTER TABLE iot_commands ADD COLUMN delivered_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE iot_commands ADD COLUMN acknowledged_count BIGINT NOT NULL DEFAULT 0;
