-- Imports uploaded through the web UI or the REST API (issue 19): one row per upload, from
-- the first byte received to the end of the import. The file itself waits in the data
-- directory's spool (DATA_DIR/imports/<id>.part) and is removed when the import ends.
-- summary is the import's summary as JSON text (counts, skips by reason, first problems).
CREATE TABLE imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device      TEXT    NOT NULL,
    format      TEXT    NOT NULL,
    filename    TEXT    NOT NULL DEFAULT '',
    dry_run     BOOLEAN NOT NULL DEFAULT FALSE,
    state       TEXT    NOT NULL
                CHECK (state IN ('uploading', 'queued', 'running', 'done', 'failed')),
    bytes_total BIGINT  NOT NULL DEFAULT 0,
    bytes_read  BIGINT  NOT NULL DEFAULT 0,
    items       BIGINT  NOT NULL DEFAULT 0,
    written     BIGINT  NOT NULL DEFAULT 0,
    summary     TEXT,
    error       TEXT,
    created_at  BIGINT  NOT NULL,
    finished_at BIGINT
);
CREATE INDEX imports_user ON imports (user_id, id);
CREATE INDEX imports_unfinished ON imports (state) WHERE state IN ('uploading', 'queued', 'running');
