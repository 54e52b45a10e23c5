-- Optional second hash of a password or device credential in Mosquitto 2.0's `$7$` format
-- (PBKDF2-SHA512), kept only with `[compat] store_mosquitto_pbkdf2 = true` so that
-- `mytracks export mosquitto` can feed a Mosquitto without argon2id support. NULL otherwise,
-- and cleared whenever the password changes without one.
ALTER TABLE users ADD COLUMN mosquitto_hash TEXT;
ALTER TABLE device_credentials ADD COLUMN mosquitto_hash TEXT;
