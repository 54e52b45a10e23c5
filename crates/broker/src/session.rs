//! Session state: what the broker keeps for a client id across connections.

use crate::hooks::ClientInfo;
use crate::Message;
use bytes::BytesMut;
use mytracks_codec::{QoS, SubscriptionOptions};
use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One message on its way to one session: the shared message plus what this subscriber's
/// subscriptions made of it.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub message: Arc<Message>,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    /// The RETAIN flag to send (set for retained messages sent at subscribe time, and for
    /// Retain As Published subscriptions).
    pub retain: bool,
    /// Every matching subscription identifier (v5).
    pub subscription_ids: SmallVec<[u32; 2]>,
}

/// A QoS 1/2 delivery sent and not yet fully acknowledged.
#[derive(Clone, Debug)]
pub(crate) struct Inflight {
    pub packet_id: u16,
    pub delivery: Delivery,
    /// QoS 2 only: PUBREC received, PUBREL sent, waiting for PUBCOMP.
    pub released: bool,
}

/// A subscription as the session remembers it (the router holds the matching copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}

/// The link between a session and the connection currently serving it. The router wakes the
/// writer through it; a takeover cancels it.
#[derive(Debug)]
pub(crate) struct ConnLink {
    pub id: u64,
    pub wake: Notify,
    pub cancel: CancellationToken,
    /// Encoded control packets (acks, SUBACK, PINGRESP...) the reader hands to the writer.
    pub control: Mutex<ControlOut>,
    /// Why the connection is being closed by someone other than its reader (one of the
    /// constants below); 0 when not.
    pub close_reason: std::sync::atomic::AtomicU8,
    /// When the connection was accepted (management APIs show it).
    pub connected_at: std::time::SystemTime,
    /// The largest packet the client accepts (its v5 Maximum Packet Size; else unlimited).
    pub max_packet_size: u32,
    /// Cancelled once the connection's end is settled (session ended or kept, will
    /// decided): a takeover waits for it before it looks at the session.
    pub finished: CancellationToken,
}

#[derive(Debug, Default)]
pub(crate) struct ControlOut {
    pub bytes: BytesMut,
    /// Close the connection once `bytes` is written (after a DISCONNECT or refused CONNACK).
    pub close_after: bool,
}

impl ConnLink {
    /// By a new connection with a clean start: the session ends (its will is due).
    pub const TAKEN_OVER: u8 = 1;
    pub const WRITE_FAILED: u8 = 2;
    /// The application asked for the client to go (account deactivated, credential revoked).
    pub const ADMINISTRATIVE: u8 = 3;
    /// It stopped reading while publishers waited for room in its queue.
    pub const TOO_SLOW: u8 = 4;
    /// A control packet the broker owes it cannot fit its Maximum Packet Size.
    pub const PACKET_TOO_LARGE: u8 = 5;
    /// By a new connection that resumes the session: the client is back (no will).
    pub const RESUMED_ELSEWHERE: u8 = 6;

    pub fn new(id: u64, cancel: CancellationToken) -> Self {
        ConnLink {
            id,
            wake: Notify::new(),
            cancel,
            control: Mutex::new(ControlOut::default()),
            close_reason: Default::default(),
            connected_at: std::time::SystemTime::now(),
            max_packet_size: u32::MAX,
            finished: CancellationToken::new(),
        }
    }

    /// The client's Maximum Packet Size (MQTT 5 CONNECT property).
    pub fn with_max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }

    /// Asks the connection to close for `reason` (first reason wins).
    pub fn close(&self, reason: u8) {
        self.close_once(reason);
    }

    /// Closes the connection; true only for the call that decided its reason (callers log
    /// and count once, however many publishers find it over its limits meanwhile).
    pub fn close_once(&self, reason: u8) -> bool {
        let first = self
            .close_reason
            .compare_exchange(
                0,
                reason,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            )
            .is_ok();
        self.cancel.cancel();
        first
    }
}

/// A delayed will: the task holding it publishes when the delay passes, when `fire` is called
/// (the session ended first) and never after `abort` (the client came back in time).
#[derive(Debug, Clone)]
pub(crate) struct PendingWill {
    pub cancel: CancellationToken,
    pub publish_now: Arc<std::sync::atomic::AtomicBool>,
}

impl PendingWill {
    pub fn new() -> Self {
        PendingWill {
            cancel: CancellationToken::new(),
            publish_now: Default::default(),
        }
    }

    pub fn fire(&self) {
        self.publish_now
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel.cancel();
    }

    pub fn abort(&self) {
        self.cancel.cancel();
    }
}

/// A session: shared between the router (which appends deliveries), the connection serving it
/// and the persister.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique for this broker process; tells sessions of the same client id apart.
    pub id: u64,
    pub client_id: Arc<str>,
    pub state: Mutex<SessionState>,
    /// Notified when the queue drops below its limits, for publishers under backpressure.
    pub space: Notify,
}

#[derive(Debug)]
pub(crate) struct SessionState {
    pub client: Arc<ClientInfo>,
    pub queue: VecDeque<Delivery>,
    pub queued_bytes: usize,
    pub inflight: VecDeque<Inflight>,
    pub next_packet_id: u16,
    /// QoS 2 packet ids received and PUBREC'd, waiting for PUBREL (exactly-once on resend).
    pub incoming_qos2: FxHashSet<u16>,
    pub subscriptions: FxHashMap<Box<str>, Subscription>,
    /// Seconds the session outlives its connection; 0 = ends with it.
    pub expiry_interval: u32,
    pub owner: Option<Arc<ConnLink>>,
    /// When the session lost its connection (drives expiry).
    pub disconnected_at: Option<Instant>,
    /// When the writer last took messages off the queue: tells a subscriber that is keeping
    /// up (QoS 0 publishers are paced to it) from one that is stuck (its QoS 0 is dropped).
    pub last_drain: Instant,
    /// A will waiting for its Will Delay Interval.
    pub pending_will: Option<PendingWill>,
    /// Written to the store at least once (so ending it must delete it there).
    pub persisted: bool,
    /// Changed since the persister last saved it.
    pub dirty: bool,
    /// Removed from the broker; writers must stop using it.
    pub ended: bool,
}

impl Session {
    pub fn new(id: u64, client: Arc<ClientInfo>, expiry_interval: u32) -> Self {
        Session {
            id,
            client_id: client.client_id.clone(),
            state: Mutex::new(SessionState {
                client,
                queue: VecDeque::new(),
                queued_bytes: 0,
                inflight: VecDeque::new(),
                next_packet_id: 1,
                incoming_qos2: FxHashSet::default(),
                subscriptions: FxHashMap::default(),
                expiry_interval,
                owner: None,
                disconnected_at: None,
                last_drain: Instant::now(),
                pending_will: None,
                persisted: false,
                dirty: false,
                ended: false,
            }),
            space: Notify::new(),
        }
    }
}

impl SessionState {
    pub fn persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// A packet id not used by any inflight delivery.
    pub fn allocate_packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    pub fn over_limits(&self, max_messages: usize, max_bytes: usize) -> bool {
        self.queue.len() >= max_messages || self.queued_bytes >= max_bytes
    }

    /// Takes the next delivery off the queue; `total` is the broker-wide count of queued bytes.
    pub fn pop_delivery(&mut self, total: &AtomicUsize) -> Option<Delivery> {
        let delivery = self.queue.pop_front()?;
        let cost = delivery.message.cost();
        self.queued_bytes -= cost;
        total.fetch_sub(cost, Ordering::Relaxed);
        Some(delivery)
    }
}
