-- Which username an MQTT client id belongs to on an external broker (scale-out mode). The
-- embedded broker refuses another user's take-over of a session; EMQX and rmqtt take a
-- session over by client id alone, so the auth endpoints bind each client id to the first
-- username that logged in with it and refuse the others. Bounded per username (the oldest
-- bindings of a username make room for its new ones).
CREATE TABLE mqtt_client_ids (
    client_id    TEXT   NOT NULL PRIMARY KEY,
    username     TEXT   NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE INDEX mqtt_client_ids_username ON mqtt_client_ids (username, last_used_at);
