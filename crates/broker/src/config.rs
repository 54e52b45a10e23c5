//! Broker limits and behaviour switches.

use mytracks_codec::QoS;
use std::time::Duration;

/// Everything the broker needs to know that is not a hook. The application fills it from its
/// own configuration file; `Default` gives Mosquitto-like settings except that anonymous access
/// is off.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Accept clients that the authentication hook has no opinion about.
    pub allow_anonymous: bool,
    /// Largest keepalive accepted, in seconds. v5 clients asking for more (or for 0) get the
    /// cap back as Server Keep Alive; 3.x clients asking for more are refused, as Mosquitto does.
    pub max_keepalive: u16,
    /// Topic aliases a v5 client may use towards the broker (0 disables them).
    pub topic_alias_maximum: u16,
    /// Largest packet accepted from a client, in bytes; larger ones close the connection (0x95).
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 publishes a client may have towards the broker (v5 Receive
    /// Maximum); a v5 client exceeding it is disconnected with 0x93.
    pub receive_maximum: u16,
    /// Unacknowledged QoS 1/2 deliveries the broker keeps in flight per client (also capped by
    /// the client's own Receive Maximum).
    pub max_inflight_messages: u16,
    /// Messages queued per session beyond the inflight window. QoS 0 beyond it is dropped and
    /// counted; QoS 1/2 makes online publishers wait (backpressure).
    pub max_queued_messages: usize,
    /// Bytes of payload queued per session; same policy as `max_queued_messages`.
    pub max_queued_bytes: usize,
    /// Simultaneous client connections; further CONNECTs are refused (0x97 / server unavailable).
    pub max_connections: usize,
    /// Bytes queued across all sessions together; over it, messages for offline sessions are
    /// dropped (and counted) however empty their own queue is, so many sessions that never come
    /// back cannot add up to more than this.
    pub max_queued_bytes_total: usize,
    /// Cap on the session expiry interval a client may ask for, in seconds. 3.x persistent
    /// sessions get this value (u32::MAX = never expire, the MQTT meaning; the default is
    /// finite so that sessions of clients that never come back end).
    pub max_session_expiry: u32,
    /// Levels a topic name or filter may have; deeper ones close the connection with 0x90 /
    /// 0x8F (they cost a trie node each, and Mosquitto refuses more than 200).
    pub max_topic_levels: usize,
    /// Subscriptions one session may hold; more are refused with 0x97 (v5) / 0x80 (3.x).
    pub max_subscriptions_per_session: usize,
    /// Bytes of topic filters one session may hold (the sum of its filters' lengths); same
    /// answer as `max_subscriptions_per_session` over it.
    pub max_filter_bytes_per_session: usize,
    /// Heap bytes of the subscription trie, all sessions together; a SUBSCRIBE once it is
    /// reached is refused with 0x97 / 0x80.
    pub max_subscription_memory: usize,
    /// The same for the subscriptions of one username (anonymous clients share one budget),
    /// so that one account cannot take the whole tree from everyone else.
    pub max_subscription_memory_per_user: usize,
    /// Retained messages in total and per publishing user (username; anonymous clients share
    /// one budget). A retained publish over a limit is not retained (v5 QoS 1/2 publishers
    /// hear 0x97) but still delivered to current subscribers.
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    pub max_retained_messages_per_user: usize,
    pub max_retained_bytes_per_user: usize,
    /// How long a publisher may wait for a subscriber's full queue (QoS 1/2 backpressure)
    /// before the broker stops waiting and disconnects that subscriber if it is still stuck;
    /// also how long one socket write may take before the connection is closed.
    pub backpressure_timeout: Duration,
    /// How often `$SYS` topics are published; zero disables them.
    pub sys_interval: Duration,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// How often dirty persistent state is written to the store: the crash-loss window.
    pub persist_interval: Duration,
    /// Highest QoS the broker grants and accepts.
    pub maximum_qos: QoS,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Version string published on `$SYS/broker/version`.
    pub version: String,
    /// PUBLISH packets per second each client may send (a token bucket holding one second's
    /// worth); `None`: unlimited. Over it, MQTT 5 clients are disconnected with 0x96
    /// (Message rate too high) and older clients, which cannot be told, are slowed down by
    /// not reading from them until they are back under the rate.
    pub max_publish_rate: Option<u32>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            allow_anonymous: false,
            max_keepalive: 65_535,
            topic_alias_maximum: 10,
            max_packet_size: 1024 * 1024,
            receive_maximum: 100,
            max_inflight_messages: 100,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_connections: 100_000,
            max_queued_bytes_total: 128 * 1024 * 1024,
            max_session_expiry: 14 * 24 * 3600,
            max_topic_levels: mytracks_codec::topic::DEFAULT_MAX_TOPIC_LEVELS,
            max_subscriptions_per_session: 1000,
            max_filter_bytes_per_session: 64 * 1024,
            max_subscription_memory: 64 * 1024 * 1024,
            max_subscription_memory_per_user: 8 * 1024 * 1024,
            max_retained_messages: 100_000,
            max_retained_bytes: 64 * 1024 * 1024,
            max_retained_messages_per_user: 1000,
            max_retained_bytes_per_user: 4 * 1024 * 1024,
            backpressure_timeout: Duration::from_secs(5),
            sys_interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            persist_interval: Duration::from_millis(100),
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            version: format!("mytracks {}", env!("CARGO_PKG_VERSION")),
            max_publish_rate: None,
        }
    }
}
