-- A counter bumped by every change that affects MQTT access (users' active and admin flags,
-- users created or deleted, shares), so a running server notices changes made by another
-- process (the CLI) with one cheap query.
CREATE TABLE account_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO account_changes (id, version) VALUES (1, 0);

CREATE FUNCTION bump_account_changes() RETURNS trigger AS $$
BEGIN
    UPDATE account_changes SET version = version + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_changed AFTER INSERT OR DELETE OR UPDATE OF is_active, is_admin ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_account_changes();
CREATE TRIGGER shares_changed AFTER INSERT OR DELETE OR UPDATE ON shares
    FOR EACH STATEMENT EXECUTE FUNCTION bump_account_changes();
CREATE TRIGGER credentials_deleted AFTER DELETE ON device_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION bump_account_changes();
