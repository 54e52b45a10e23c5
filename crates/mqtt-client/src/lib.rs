//! An MQTT 3.1.1/5.0 client on `mytracks-codec`, in two layers.
//!
//! * A thin [`Connection`]: [`Dialer`] dials (TCP, or TLS with [`TlsOptions`]), CONNECTs and
//!   waits for the CONNACK; the caller then sends and receives packets itself. The load tools
//!   (`mytracks-load`) run their hot loops on it, straight on its stream and read buffer.
//! * A reconnecting [`Session`], as a server keeps to an external broker (EMQX, rmqtt,
//!   Mosquitto): failover between [`BrokerUrl`]s, backoff, resubscription after every CONNACK,
//!   deliveries acknowledged only when the application says so ([`Ack`]), publishes that
//!   complete at the broker's acknowledgement and survive reconnects.
//!
//! # Layout
//!
//! * [`connection`]: [`Dialer`], [`ConnectOptions`], [`Connection`], [`ConnectError`].
//! * [`tls`]: [`TlsOptions`] (plain data: no command line here) and [`TlsError`].
//! * [`url`]: [`BrokerUrl`], `mqtt://host[:1883]` / `mqtts://host[:8883]`.
//! * [`session`]: [`Session`], [`SessionOptions`], [`Delivery`] and [`Ack`], [`Status`].
//! * `backoff`: the reconnect delays.
//!
//! Deliberately not here: any other crate of the project (the codec only; `.ci/run` checks
//! it), a command line (clap), and an in-memory store of messages beyond what is in flight.

mod backoff;
pub mod connection;
pub mod session;
pub mod tls;
pub mod url;

pub use connection::{protocol_version, ConnectError, ConnectOptions, Connection, Dialer, Io};
pub use mytracks_codec::{ProtocolVersion, QoS};
pub use session::{
    Ack, Delivery, Session, SessionError, SessionOptions, Status, MAX_OUTBOUND_IN_FLIGHT,
};
pub use tls::{TlsError, TlsOptions};
pub use url::{BrokerUrl, BrokerUrlError};
