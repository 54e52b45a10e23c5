-- Password changes count as access changes too: a running server drops what it cached of
-- verified logins (HTTP mode keeps verified Basic credentials for a few minutes).
CREATE TRIGGER users_password_changed AFTER UPDATE OF password_hash ON users
BEGIN UPDATE account_changes SET version = version + 1; END;
