-- A deleted user's certificates are revoked and kept (user_id becomes NULL) instead of being
-- deleted with the user: a deleted row would drop out of the CRL and the certificate would be
-- valid again, for whoever takes that user name next.
CREATE TABLE certificates_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ca_id       BIGINT  NOT NULL REFERENCES certificate_authorities (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    user_id     BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    common_name TEXT    NOT NULL,
    names       TEXT    NOT NULL DEFAULT '',
    cert_pem    TEXT    NOT NULL,
    key_sealed  TEXT    NOT NULL,
    serial      TEXT    NOT NULL UNIQUE,
    fingerprint TEXT    NOT NULL,
    not_before  BIGINT  NOT NULL,
    not_after   BIGINT  NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    revoked_at  BIGINT,
    created_at  BIGINT  NOT NULL
);
INSERT INTO certificates_new SELECT * FROM certificates;
DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;
CREATE INDEX certificates_ca ON certificates (ca_id, kind);
CREATE INDEX certificates_user ON certificates (user_id);

CREATE TRIGGER users_deleted_revoke_certificates BEFORE DELETE ON users
BEGIN
    UPDATE certificates SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER)
     WHERE user_id = OLD.id AND revoked_at IS NULL;
END;

-- A counter bumped by every change to what the TLS listeners use (the active CA, server
-- certificates, revocations), so a running server notices changes made by the CLI.
CREATE TABLE pki_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO pki_changes (id, version) VALUES (1, 0);

CREATE TRIGGER cas_inserted AFTER INSERT ON certificate_authorities
BEGIN UPDATE pki_changes SET version = version + 1; END;
CREATE TRIGGER cas_activity_changed AFTER UPDATE OF active ON certificate_authorities
BEGIN UPDATE pki_changes SET version = version + 1; END;
CREATE TRIGGER cas_deleted AFTER DELETE ON certificate_authorities
BEGIN UPDATE pki_changes SET version = version + 1; END;
CREATE TRIGGER certificates_inserted AFTER INSERT ON certificates
BEGIN UPDATE pki_changes SET version = version + 1; END;
CREATE TRIGGER certificates_status_changed AFTER UPDATE OF active, revoked_at ON certificates
BEGIN UPDATE pki_changes SET version = version + 1; END;
CREATE TRIGGER certificates_deleted AFTER DELETE ON certificates
BEGIN UPDATE pki_changes SET version = version + 1; END;
