//! mytracks on an external MQTT broker: the scale-out mode (`[mqtt] mode = "external"`).
//!
//! N identical mytracks nodes share one PostgreSQL database and one clustered broker (EMQX in
//! production, rmqtt in tests; any MQTT broker with shared subscriptions for the basics). The
//! broker holds the phones' and devices' connections and asks mytracks' HTTP endpoints who
//! may connect, publish and subscribe (`mytracks-http`'s `api::mqtt_auth`); each node:
//!
//! - `settings.rs`: `[mqtt.external]` resolved ([`ExternalSettings`], [`SessionMode`]);
//! - `broker.rs`: [`ExternalBroker`], the services' `Mqtt` on the external broker (publish,
//!   retained messages from a short-lived subscription, revocation), and [`start`];
//! - `ingest.rs`: the shared subscription's messages to the same publish hook the embedded
//!   broker calls, acknowledged once stored;
//! - `admin.rs`: closes revoked clients' connections through the broker's admin API.
//!
//! What is deliberately absent: a listener of its own (the broker has them), and any state
//! only one node would know (everything that matters is in the database).

pub mod admin;
pub mod broker;
pub mod ingest;
pub mod settings;

pub use admin::{AdminApi, AdminError, AdminKind, AdminSettings};
pub use broker::{start, Connected, ExternalBroker, StartError};
pub use settings::{ExternalSettings, SessionMode};
