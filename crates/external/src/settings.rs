//! `[mqtt.external]`, resolved: where the broker is, who mytracks is there, and how it
//! keeps its session.

use crate::admin::{AdminKind, AdminSettings};
use std::path::PathBuf;

/// How the ingest client's session survives a node's death (README, "Scale-out").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMode {
    /// Clean start, no expiry, a fresh client id per start: EMQX gives a dead member's
    /// unacknowledged messages to the other members of the shared group at once.
    Clean,
    /// The same client id at every start and a session that outlives a restart: the broker
    /// keeps the unacknowledged messages for this node and gives them back when it returns
    /// (rmqtt, which does not hand them to other members; Mosquitto).
    Persistent,
}

/// `[mqtt.external]` and `[mqtt.external.admin]`.
#[derive(Clone, Debug)]
pub struct ExternalSettings {
    /// `mqtt://host:port` or `mqtts://host:port`, tried in turn.
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Unique per node; with [`SessionMode::Clean`] a random suffix is added at each start.
    pub client_id: String,
    /// The shared-subscription group every node joins (`$share/<group>/...`).
    pub share_group: String,
    pub session: SessionMode,
    /// Seconds a persistent session outlives its connection.
    pub session_expiry: u32,
    /// Messages the broker may have unacknowledged towards this node (MQTT 5 receive maximum).
    pub receive_maximum: u16,
    /// TLS for `mqtts://`: the CA to trust (the system's otherwise), a client certificate.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub admin: AdminSettings,
}

/// The default share group.
pub const DEFAULT_SHARE_GROUP: &str = "mytracks";

/// Seconds a persistent ingest session is kept by default.
pub const DEFAULT_SESSION_EXPIRY: u32 = 3600;

/// Deliveries in flight towards a node by default.
pub const DEFAULT_RECEIVE_MAXIMUM: u16 = 256;

impl SessionMode {
    /// The mode that keeps acknowledged messages with each broker (see [`SessionMode`]).
    pub fn default_for(kind: AdminKind) -> SessionMode {
        match kind {
            AdminKind::Emqx => SessionMode::Clean,
            AdminKind::Rmqtt | AdminKind::None => SessionMode::Persistent,
        }
    }
}
