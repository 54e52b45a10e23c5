//! Integration tests driving the real `mytracks` binary, with third-party MQTT clients
//! (Mosquitto's command-line tools, paho-mqtt in Python) and raw TCP.
//!
//! One test binary (like ripgrep's) so everything is linked once. Needs `mosquitto_pub`,
//! `mosquitto_sub` and `python3` with paho-mqtt 2.x: `.ci/run` installs them.

mod abuse_data;
mod abuse_emqx;
mod abuse_http;
mod abuse_identity;
mod abuse_iot;
mod abuse_login;
mod abuse_mqtt;
mod abuse_protocol;
mod abuse_queues;
mod abuse_revocation;
mod access;
mod account_export;
mod accounts_api;
mod accounts_cli;
mod accounts_mqtt;
mod broker_events;
mod cli;
mod console;
mod database_down;
mod deletion;
mod emqx;
mod home_assistant;
mod import_history;
mod import_upload;
mod iot;
mod iot_paho;
mod limits;
mod malformed;
mod migrate;
mod mosquitto_clients;
mod mosquitto_export;
mod mqtt_api;
mod owntracks;
mod owntracks_frontend;
mod owntracks_http;
mod paho;
mod permissions;
mod pki_api;
mod pki_tls;
mod protocol;
mod recorder_api;
mod redelivery;
mod rmqtt_auth;
mod scale_out;
mod scale_out_rmqtt;
mod sessions;
mod support;
mod tls;
mod web_ui;
mod websocket;
