-- A deleted user's certificates are revoked and kept (user_id becomes NULL) instead of being
-- deleted with the user: a deleted row would drop out of the CRL and the certificate would be
-- valid again, for whoever takes that user name next.
ALTER TABLE certificates DROP CONSTRAINT certificates_user_id_fkey;
ALTER TABLE certificates ADD CONSTRAINT certificates_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;

CREATE FUNCTION revoke_deleted_users_certificates() RETURNS trigger AS $$
BEGIN
    UPDATE certificates SET revoked_at = EXTRACT(EPOCH FROM now())::BIGINT
     WHERE user_id = OLD.id AND revoked_at IS NULL;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_deleted_revoke_certificates BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION revoke_deleted_users_certificates();

-- A counter bumped by every change to what the TLS listeners use (the active CA, server
-- certificates, revocations), so a running server notices changes made by the CLI.
CREATE TABLE pki_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO pki_changes (id, version) VALUES (1, 0);

CREATE FUNCTION bump_pki_changes() RETURNS trigger AS $$
BEGIN
    UPDATE pki_changes SET version = version + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER cas_changed AFTER INSERT OR DELETE OR UPDATE OF active ON certificate_authorities
    FOR EACH STATEMENT EXECUTE FUNCTION bump_pki_changes();
CREATE TRIGGER certificates_changed AFTER INSERT OR DELETE OR UPDATE OF active, revoked_at ON certificates
    FOR EACH STATEMENT EXECUTE FUNCTION bump_pki_changes();
