//! One client connection: the CONNECT handshake, then a reader and a writer running side by
//! side in one task.
//!
//! The reader decodes packets and acts on them; everything it must send back (acks, SUBACK,
//! PINGRESP, DISCONNECT) goes through the link's control buffer. The writer drains that buffer
//! and then the session's queue, within the client's inflight window. Keeping both in one task
//! (joined futures) halves the per-connection task overhead, yet a slow socket write never
//! stops the reader from processing acknowledgements.

mod acks;
mod fit;
mod handshake;
mod reader;
mod will;
mod writer;

use crate::broker::{shared_group_key, split_shared, ConnectionMeta, Pace, Shared, KEEPING_UP};
use crate::hooks::{AuthDecision, ClientInfo, ConnectRequest, DisconnectReason, PublishGate};
use crate::router::Subscriber;
use crate::session::{
    ConnLink, Delivery, Inflight, PendingWill, Session, SessionState, Subscription,
};
use crate::Message;
use bytestring::ByteString;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use mytracks_codec::{
    decode, encode, encoded_len, topic, BytesMut, ConnAck, Connect, DecodeError, DecodeLimits,
    Disconnect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe, Will,
};
use rustc_hash::FxHashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// Smallest and largest socket read; see `Reader::run`.
pub(super) const MIN_READ: usize = 128;
pub(super) const MAX_READ: usize = 64 * 1024;
/// Publishes waiting for their gate (or for a full subscriber) before the reader stops
/// reading from the socket, pushing back on the publisher through TCP.
pub(super) const PENDING_LIMIT: usize = 256;
/// Longest a QoS 0 publisher waits for a subscriber that is keeping up.
pub(super) const SOFT_PACING: Duration = Duration::from_millis(100);
/// Bytes gathered into one socket write.
pub(super) const WRITE_BATCH: usize = 64 * 1024;

use handshake::{handshake, Accepted};
pub(crate) use reader::wait_for_space;
use reader::{RateLimit, Reader};
use will::finish;
use writer::{OutgoingAliases, Writer};

/// Serves one connection from the first byte to cleanup.
pub(crate) async fn run<S>(shared: Arc<Shared>, stream: S, meta: ConnectionMeta)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // The handshake's state is boxed: it is short-lived, and keeping it out of this future
    // keeps every idle connection's task small.
    let Some((accepted, reader, writer, buf)) = Box::pin(handshake(&shared, stream, meta)).await
    else {
        return;
    };
    serve(shared, accepted, reader, writer, buf).await;
}

/// How the reader loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// DISCONNECT from the client; `true` when it asked for its will (0x04).
    ClientDisconnect {
        publish_will: bool,
    },
    TakenOver,
    Shutdown,
    Network,
    /// The broker closes the connection with this reason.
    Error(ReasonCode),
}

async fn serve<S>(
    shared: Arc<Shared>,
    accepted: Accepted,
    mut reader_half: ReadHalf<S>,
    writer_half: WriteHalf<S>,
    buf: BytesMut,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // Only what lives across the await below is part of every idle connection's task.
    let (mut reader, writer, keep_alive) = start(&shared, accepted);
    let (end, ()) = tokio::join!(
        reader.run(&mut reader_half, buf, keep_alive),
        writer.run(writer_half)
    );
    let will = reader.will.take();
    finish(
        &shared,
        &reader.session,
        &reader.link,
        &reader.client,
        end,
        will,
    );
    // Settled: a connection taking this one over may look at the session now.
    reader.link.finished.cancel();
    if matches!(end, End::Error(_) | End::TakenOver) {
        // Boxed: only connections the broker closes need its state.
        Box::pin(linger(&shared, reader_half)).await;
    }
}

/// How long a connection the broker closed keeps reading after its DISCONNECT.
const LINGER: Duration = Duration::from_secs(2);

/// Reads and discards what the client still sends after the broker's DISCONNECT (the writer
/// has flushed it and shut the socket down for writing), until the client closes, for
/// [`LINGER`] at most (or until shutdown). Closing a socket with unread data makes the kernel
/// answer with a reset: the client's write in progress fails, and a client gives up there
/// without reading the DISCONNECT (some TCP stacks even discard what it has not read yet).
async fn linger<R: AsyncRead>(shared: &Shared, mut socket: ReadHalf<R>) {
    let drain = async {
        let mut scratch = vec![0u8; MAX_READ];
        while let Ok(1..) = socket.read(&mut scratch).await {}
    };
    tokio::select! {
        _ = shared.shutdown.cancelled() => {}
        _ = tokio::time::timeout(LINGER, drain) => {}
    }
}

/// Sends CONNACK and builds the reader and writer halves of an accepted connection.
fn start(shared: &Arc<Shared>, accepted: Accepted) -> (Reader, Writer, Option<Duration>) {
    let Accepted {
        session,
        link,
        client,
        version,
        session_present,
        keep_alive,
        will,
        connack_properties,
        client_receive_maximum,
        client_max_packet_size,
        client_topic_alias_maximum,
        problem_information,
        expiry_at_connect,
        publish_rate,
    } = accepted;
    let connected = shared
        .counters
        .clients_connected
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    shared
        .counters
        .clients_maximum
        .fetch_max(connected, Ordering::Relaxed);
    tracing::debug!(client_id = %client.client_id, ?version, session_present, "client connected");

    let connack = Packet::ConnAck(ConnAck {
        session_present,
        reason: ReasonCode::SUCCESS,
        properties: *connack_properties,
    });
    send(&link, &connack, version);
    shared.hooks.on_connect(&client);

    let alias_slots = if version.is_v5() {
        usize::from(shared.config.topic_alias_maximum)
    } else {
        0
    };
    let reader = Reader {
        limits: DecodeLimits {
            version,
            max_packet_size: shared.config.max_packet_size,
            max_topic_levels: shared.config.max_topic_levels,
        },
        shared: shared.clone(),
        session: session.clone(),
        link: link.clone(),
        client,
        version,
        will,
        aliases: vec![None; alias_slots],
        unacknowledged: 0,
        pending: FuturesOrdered::new(),
        blocked: None,
        problem_information,
        expiry_at_connect,
        error_text: None,
        abort: None,
        rate: publish_rate.map(RateLimit::new),
        throttled: None,
    };
    let writer = Writer {
        shared: shared.clone(),
        session,
        link,
        version,
        window: usize::from(client_receive_maximum.min(shared.config.max_inflight_messages.max(1))),
        max_packet_size: client_max_packet_size,
        aliases: OutgoingAliases::new(client_topic_alias_maximum),
    };
    let keep_alive = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    (reader, writer, keep_alive)
}

/// Encodes a control packet for the writer, within the client's Maximum Packet Size. One
/// that cannot fit closes the connection (0x95): the client would wait for it forever.
pub(super) fn send(link: &ConnLink, packet: &Packet, version: ProtocolVersion) {
    let Some(packet) = fit::within(packet, version, link.max_packet_size) else {
        tracing::debug!(
            packet = packet.name(),
            max = link.max_packet_size,
            "control packet larger than the client accepts"
        );
        link.close(ConnLink::PACKET_TOO_LARGE);
        return;
    };
    let mut control = link.control.lock();
    if let Err(error) = encode(&packet, version, &mut control.bytes) {
        tracing::warn!(%error, packet = packet.name(), "cannot encode");
    }
    drop(control);
    link.wake.notify_one();
}
