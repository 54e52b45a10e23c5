//! Integration tests driving the real `mytracks` binary, with third-party MQTT clients
//! (Mosquitto's command-line tools, paho-mqtt in Python) and raw TCP.
//!
//! One test binary (like ripgrep's) so everything is linked once. Needs `mosquitto_pub`,
//! `mosquitto_sub` and `python3` with paho-mqtt 2.x: `.ci/run` installs them.

mod access;
mod cli;
mod limits;
mod malformed;
mod mosquitto_clients;
mod paho;
mod protocol;
mod support;
mod tls;
mod websocket;
