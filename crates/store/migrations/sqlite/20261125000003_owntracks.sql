-- OwnTracks data: devices, their locations, transitions, regions, cards, other messages, and
-- commands waiting for HTTP-mode phones. Times are Unix seconds.

ALTER TABLE users ADD COLUMN encryption_key TEXT;

CREATE TABLE devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    display_name  TEXT    NOT NULL DEFAULT '',
    tid           TEXT,
    encryption_key TEXT,
    online        BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen     BIGINT,
    offline_since BIGINT,
    transport     TEXT    NOT NULL DEFAULT 'mqtt',
    created_at    BIGINT  NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE locations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   BIGINT  NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tst         BIGINT  NOT NULL,
    lat         REAL    NOT NULL,
    lon         REAL    NOT NULL,
    acc         REAL,
    alt         REAL,
    vac         REAL,
    vel         REAL,
    cog         REAL,
    batt        BIGINT,
    bs          BIGINT,
    tid         TEXT,
    conn        TEXT,
    trigger     TEXT,
    received_at BIGINT  NOT NULL,
    raw         TEXT    NOT NULL
);
CREATE INDEX locations_device_tst ON locations (device_id, tst);
CREATE INDEX locations_tst ON locations (tst);

CREATE TABLE transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   BIGINT  NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tst         BIGINT  NOT NULL,
    wtst        BIGINT,
    lat         REAL    NOT NULL,
    lon         REAL    NOT NULL,
    acc         REAL,
    event       TEXT    NOT NULL,
    description TEXT,
    tid         TEXT,
    rid         TEXT,
    trigger     TEXT,
    received_at BIGINT  NOT NULL,
    raw         TEXT    NOT NULL
);
CREATE INDEX transitions_device_tst ON transitions (device_id, tst);

CREATE TABLE waypoints (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   BIGINT  NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    rid         TEXT,
    description TEXT    NOT NULL,
    lat         REAL    NOT NULL,
    lon         REAL    NOT NULL,
    rad         REAL,
    tst         BIGINT,
    uuid        TEXT,
    major       BIGINT,
    minor       BIGINT,
    raw         TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX waypoints_device ON waypoints (device_id);

CREATE TABLE cards (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    device_id  BIGINT REFERENCES devices (id) ON DELETE SET NULL,
    name       TEXT,
    face       TEXT,
    tid        TEXT,
    raw        TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE device_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   BIGINT  NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    raw         TEXT    NOT NULL
);
CREATE INDEX device_messages_device ON device_messages (device_id, kind, received_at);

CREATE TABLE pending_commands (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  BIGINT  NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    payload    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX pending_commands_device ON pending_commands (device_id);
