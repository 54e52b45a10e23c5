//! How MQTT clients reach the broker: plain TCP, TLS, and WebSocket (on the HTTP port's
//! `/mqtt` and on dedicated WS/WSS listeners). Every transport hands the broker an ordinary
//! byte stream with a [`mytracks_broker::ConnectionMeta`]; the broker never knows which one it
//! was.
//!
//! - [`listener`]: the accept step they share (per-listener connection limit, stop with the
//!   broker), and plain TCP;
//! - [`tls`]: the rustls listener whose certificates, CAs and CRLs reload in place;
//! - [`websocket`]: WebSocket frames bridged to a byte pipe.

pub mod listener;
pub mod tls;
pub mod websocket;
