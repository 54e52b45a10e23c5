//! The IoT device platform: devices with their own MQTT credentials ([`registry`]), their
//! topics and the rules for them ([`topics`]). The broker integration (logins, per-message
//! rules, telemetry ingest), commands and the REST API build on these.

pub mod registry;
pub mod telemetry;
pub mod topics;
