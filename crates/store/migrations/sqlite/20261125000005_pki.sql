-- The built-in PKI: certificate authorities (one active, the rest history) and the
-- certificates they issued (server and client). Private keys are sealed by the application.

CREATE TABLE certificate_authorities (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    common_name    TEXT    NOT NULL,
    algorithm      TEXT    NOT NULL,
    cert_pem       TEXT    NOT NULL,
    key_sealed     TEXT    NOT NULL,
    serial         TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    not_before     BIGINT  NOT NULL,
    not_after      BIGINT  NOT NULL,
    active         BOOLEAN NOT NULL DEFAULT FALSE,
    imported       BOOLEAN NOT NULL DEFAULT FALSE,
    crl_number     BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    deactivated_at BIGINT
);

CREATE TABLE certificates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ca_id       BIGINT  NOT NULL REFERENCES certificate_authorities (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    user_id     BIGINT  REFERENCES users (id) ON DELETE CASCADE,
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
CREATE INDEX certificates_ca ON certificates (ca_id, kind);
CREATE INDEX certificates_user ON certificates (user_id);
