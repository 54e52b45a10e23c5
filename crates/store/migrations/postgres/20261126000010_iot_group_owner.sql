-- Registering a device in a group checks that no other owner has a device there (fleet topics
-- name the group alone). With (group_name, owner_id) that is two index seeks, not a scan of
-- the group, which made registering a large fleet quadratic.
CREATE INDEX iot_devices_group_owner ON iot_devices (group_name, owner_id);
DROP INDEX iot_devices_group;
