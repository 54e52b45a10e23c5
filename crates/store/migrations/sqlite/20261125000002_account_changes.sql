-- A counter bumped by every change that affects MQTT access (users' active and admin flags,
-- users created or deleted, shares), so a running server notices changes made by another
-- process (the CLI) with one cheap query.
CREATE TABLE account_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO account_changes (id, version) VALUES (1, 0);

CREATE TRIGGER users_inserted AFTER INSERT ON users
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER users_access_changed AFTER UPDATE OF is_active, is_admin ON users
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER shares_inserted AFTER INSERT ON shares
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER shares_updated AFTER UPDATE ON shares
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER shares_deleted AFTER DELETE ON shares
BEGIN UPDATE account_changes SET version = version + 1; END;
CREATE TRIGGER credentials_deleted AFTER DELETE ON device_credentials
BEGIN UPDATE account_changes SET version = version + 1; END;
