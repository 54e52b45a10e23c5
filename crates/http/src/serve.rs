//! The HTTP listener's accept loop and connections, served with hyper directly rather than
//! `axum::serve`, which has no timeouts and no connection limits: without them a thousand
//! idle sockets from one client took every file descriptor of the process, MQTT included.
//!
//! What an HTTP client may hold, and for how long ([`HttpLimits`], `[http]` in the
//! configuration):
//! - a request head must arrive within `header_read_timeout` of the connection opening or of
//!   the previous response (hyper's timer, so also the idle wait between keep-alive requests);
//! - a connection on which no byte moves either way for `idle_timeout` is closed (a request
//!   body that stops arriving, a response the client stops reading);
//! - a handler, request body included, must answer within `request_timeout` (else 408);
//!   an upload to `POST /api/imports/` within `upload_timeout` instead (a file of gigabytes
//!   takes its time; the idle timeout still ends an upload that stops moving);
//! - at most `max_connections` connections, and `max_connections_per_address` per client
//!   address (IPv6 by /64), including upgraded `/mqtt` WebSockets until they close. A
//!   connection over a limit gets a fixed `503` with `Connection: close` if the socket takes
//!   it at once, and is closed.
//! - when all `max_connections` are taken, a newcomer takes the place of an idle connection
//!   (no request in progress, not upgraded, no byte either way for [`EVICTABLE_AFTER`]) of
//!   the address that holds the most, if that address holds at least as many as the
//!   newcomer's would: many addresses each under their own limit (a botnet, or one IPv6 /56
//!   holding 256 /64s) cannot keep the others out by holding idle sockets; at worst they
//!   churn with them. A connection receiving a request or sending a response is never cut.
//!   Only when no such idle connection exists are newcomers refused.

use crate::accept::AcceptErrors;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// The largest request head hyper buffers (request line and headers). Browsers send 1-4 KiB;
/// hyper's own default (about 400 KiB) times `max_connections` would be a lot of memory.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a connection must have moved no byte, with no request in progress, before a
/// newcomer may take its place when every connection is taken.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// What a connection over a limit is told, when its socket accepts the bytes at once.
const OVER_LIMIT_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 32\r\n\r\n\
{\"error\":\"too many connections\"}";

/// The one path whose POST gets [`HttpLimits::upload_timeout`] (with or without its slash).
pub const UPLOAD_PATH: &str = "/api/imports/";

/// The time a request may take: uploads of imports get longer than the rest.
fn time_allowed<B>(request: &hyper::Request<B>, limits: &HttpLimits) -> Duration {
    let path = request.uri().path();
    let upload = request.method() == hyper::Method::POST
        && (path == UPLOAD_PATH || Some(path) == UPLOAD_PATH.strip_suffix('/'));
    if upload {
        limits.upload_timeout
    } else {
        limits.request_timeout
    }
}

/// `[http]` limits; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    /// What `request_timeout` is for an upload to [`UPLOAD_PATH`].
    pub upload_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            upload_timeout: Duration::from_secs(3600),
            max_connections: 1024,
            max_connections_per_address: 64,
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves, then lets the open connections finish
/// their current request (graceful shutdown) and returns once they have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(ConnectionSlots::new(
        limits.max_connections,
        limits.max_connections_per_address,
        EVICTABLE_AFTER,
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Every connection task holds a receiver: all closed means every connection has ended.
    let (alive_tx, alive_rx) = watch::channel(());
    let mut errors = AcceptErrors::new("http");
    let mut refused_logged: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                errors.pause_after(&error).await;
                continue;
            }
        };
        match slots.admit(peer.ip()) {
            Ok(slot) => {
                let connection = Connection {
                    router: router.clone(),
                    limits,
                    peer,
                    shutdown: shutdown_rx.clone(),
                    _alive: alive_rx.clone(),
                };
                tokio::spawn(connection.serve(stream, slot));
            }
            Err(which) => {
                // A flood must not flood the log: one line per minute at most.
                if refused_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(%peer, "http: {which} reached; refusing connections");
                    refused_logged = Some(Instant::now());
                }
                refuse(stream);
            }
        }
    }
    drop(listener);
    let _ = shutdown_tx.send(true);
    drop(alive_rx);
    alive_tx.closed().await;
    Ok(())
}

/// Answers 503 if the socket takes it without waiting, then closes. The request (if it has
/// arrived) is read first, so that the close is a FIN the client reads the answer before,
/// not a reset that discards it.
fn refuse(stream: TcpStream) {
    let mut request = [0u8; 4096];
    let _ = stream.try_read(&mut request);
    let _ = stream.try_write(OVER_LIMIT_RESPONSE);
}

/// One accepted connection and what serving it needs.
struct Connection {
    router: Router,
    limits: HttpLimits,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    _alive: watch::Receiver<()>,
}

impl Connection {
    /// Serves HTTP/1.1 requests until the client closes, a timeout strikes, the request is
    /// upgraded (the WebSocket then owns the socket, and the slot with it) or shutdown.
    async fn serve(mut self, stream: TcpStream, slot: Slot) {
        let _ = stream.set_nodelay(true);
        let tenure = slot.tenure.clone();
        let activity = tenure.activity.clone();
        let slots = slot.slots.clone();
        let io = Watched {
            inner: stream,
            activity: activity.clone(),
            _slot: slot,
        };
        let (router, peer, limits) = (self.router.clone(), self.peer, self.limits);
        let in_service = tenure.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let request_timeout = time_allowed(&request, &limits);
            let router = router.clone();
            let busy = Busy::new(&in_service);
            async move {
                let answer = tower::ServiceExt::oneshot(router, request);
                let response = match tokio::time::timeout(request_timeout, answer).await {
                    Ok(response) => response,
                    Err(_) => Ok(request_timed_out()),
                };
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            let idle = activity.idle_for();
            if idle >= self.limits.idle_timeout {
                tracing::debug!(peer = %self.peer, "http: idle timeout, connection closed");
                return;
            }
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, "http: {error}");
                    }
                    // An upgraded socket lives on (with the slot) as a WebSocket: never idle,
                    // and no longer one that was told to make room.
                    tenure.requests.fetch_add(1, Ordering::Relaxed);
                    slots.keep(&tenure);
                    return;
                }
                () = tokio::time::sleep(self.limits.idle_timeout - idle) => {}
                () = tenure.evict.notified() => {
                    if slots.idle(&tenure) {
                        tracing::debug!(peer = %self.peer, "http: idle connection closed for a newcomer");
                        return;
                    }
                    // Bytes moved since it was chosen: finish what is in progress, then close.
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = self.shutdown.wait_for(|stop| *stop), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn request_timed_out() -> axum::response::Response {
    (
        axum::http::StatusCode::REQUEST_TIMEOUT,
        axum::Json(serde_json::json!({ "error": "request timed out" })),
    )
        .into_response()
}

/// When bytes last moved on a connection.
#[derive(Clone)]
struct Activity {
    since: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            since: Instant::now(),
            last_ms: Arc::default(),
        }
    }

    fn touch(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// The socket, recording activity and holding the connection's slot until it is dropped
/// (after an upgrade, when the WebSocket ends).
struct Watched {
    inner: TcpStream,
    activity: Activity,
    _slot: Slot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, in total and per client address.
struct ConnectionSlots {
    max: usize,
    max_per_address: usize,
    evictable_after: Duration,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    /// Open connections, including those told to make room that have not closed yet.
    total: usize,
    /// Connections told to make room for a newcomer, not closed yet.
    evicting: usize,
    by_address: HashMap<IpAddr, Vec<Arc<Tenure>>>,
    next_id: u64,
}

/// What the slots know of one open connection.
struct Tenure {
    id: u64,
    activity: Activity,
    /// Requests in progress (also set for good once the socket is upgraded).
    requests: AtomicUsize,
    /// Told to close for a newcomer.
    evicted: AtomicBool,
    evict: Notify,
}

/// Marks a connection busy while one of its requests is served.
struct Busy(Arc<Tenure>);

impl Busy {
    fn new(tenure: &Arc<Tenure>) -> Busy {
        tenure.requests.fetch_add(1, Ordering::Relaxed);
        Busy(tenure.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One admitted connection; given back when dropped.
struct Slot {
    slots: Arc<ConnectionSlots>,
    address: IpAddr,
    tenure: Arc<Tenure>,
}

impl ConnectionSlots {
    fn new(max: usize, max_per_address: usize, evictable_after: Duration) -> ConnectionSlots {
        ConnectionSlots {
            max,
            max_per_address,
            evictable_after,
            open: Mutex::default(),
        }
    }

    /// No request in progress and no byte moved for `evictable_after`.
    fn idle(&self, tenure: &Tenure) -> bool {
        tenure.requests.load(Ordering::Relaxed) == 0
            && tenure.activity.idle_for() >= self.evictable_after
    }

    /// A connection told to make room that went on (upgraded) counts as an ordinary one.
    fn keep(&self, tenure: &Tenure) {
        let mut open = self.open.lock().expect("slots lock");
        if tenure.evicted.swap(false, Ordering::Relaxed) {
            open.evicting -= 1;
        }
    }

    /// A slot for a connection from `ip`, or the name of the limit that refuses it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, &'static str> {
        let address = address_key(ip);
        let mut open = self.open.lock().expect("slots lock");
        let from_address = open.by_address.get(&address).map_or(0, Vec::len);
        if from_address >= self.max_per_address {
            return Err("max_connections_per_address");
        }
        if open.total - open.evicting >= self.max {
            let victim = self
                .idle_victim(&open, from_address + 1)
                .ok_or("max_connections")?;
            victim.evicted.store(true, Ordering::Relaxed);
            victim.evict.notify_one();
            open.evicting += 1;
        }
        open.next_id += 1;
        let tenure = Arc::new(Tenure {
            id: open.next_id,
            activity: Activity::new(),
            requests: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        open.by_address
            .entry(address)
            .or_default()
            .push(tenure.clone());
        open.total += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
            tenure,
        })
    }
}

impl ConnectionSlots {
    /// The longest-idle connection of the address holding the most among those holding at
    /// least `newcomer` (what the newcomer's address would hold); ties go to eviction, so
    /// addresses of one connection each churn rather than keep everyone else out.
    fn idle_victim(&self, open: &OpenConnections, newcomer: usize) -> Option<Arc<Tenure>> {
        open.by_address
            .values()
            .filter(|held| held.len() >= newcomer)
            .filter_map(|held| {
                let longest_idle = held
                    .iter()
                    .filter(|t| !t.evicted.load(Ordering::Relaxed) && self.idle(t))
                    .max_by_key(|t| t.activity.idle_for())?;
                Some((held.len(), longest_idle))
            })
            .max_by_key(|(count, _)| *count)
            .map(|(_, tenure)| tenure.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("slots lock");
        open.total -= 1;
        if self.tenure.evicted.load(Ordering::Relaxed) {
            open.evicting -= 1;
        }
        if let Some(held) = open.by_address.get_mut(&self.address) {
            held.retain(|t| t.id != self.tenure.id);
            if held.is_empty() {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// The address a per-address limit counts: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64, the smallest block one subscriber usually gets.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_post_to_the_imports_gets_the_upload_timeout() {
        let limits = HttpLimits::default();
        let request = |method: &str, path: &str| {
            hyper::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap()
        };
        for path in [
            "/api/imports/",
            "/api/imports",
            "/api/imports/?device=phone",
        ] {
            assert_eq!(
                time_allowed(&request("POST", path), &limits),
                limits.upload_timeout
            );
        }
        for (method, path) in [
            ("GET", "/api/imports/"),
            ("POST", "/api/imports/7/"),
            ("POST", "/api/locations/"),
            ("PUT", "/api/imports/"),
        ] {
            assert_eq!(
                time_allowed(&request(method, path), &limits),
                limits.request_timeout,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn slots_count_per_address_and_in_total() {
        let slots = Arc::new(ConnectionSlots::new(3, 2, Duration::from_secs(3600)));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.admit(a).unwrap();
        let _second = slots.admit(a).unwrap();
        assert_eq!(slots.admit(a).err(), Some("max_connections_per_address"));
        let _third = slots.admit(b).unwrap();
        assert_eq!(slots.admit(b).err(), Some("max_connections"));
        drop(first);
        assert!(
            slots.admit(a).is_ok(),
            "a closed connection gives its slot back"
        );
        assert!(slots.open.lock().unwrap().by_address.len() <= 2);
    }

    #[test]
    fn when_full_a_newcomer_takes_an_idle_place_of_the_heaviest_address() {
        let slots = Arc::new(ConnectionSlots::new(4, 3, Duration::ZERO));
        let heavy: IpAddr = "192.0.2.1".parse().unwrap();
        let light: IpAddr = "192.0.2.2".parse().unwrap();
        let newcomer: IpAddr = "192.0.2.3".parse().unwrap();
        let mut held: Vec<Slot> = (0..3).map(|_| slots.admit(heavy).unwrap()).collect();
        let light_one = slots.admit(light).unwrap();
        let _busy = Busy::new(&held[0].tenure);
        let welcome = slots
            .admit(newcomer)
            .expect("an idle connection makes room");
        assert!(
            !held[0].tenure.evicted.load(Ordering::Relaxed),
            "a busy one stays"
        );
        let evicted = held
            .iter()
            .filter(|s| s.tenure.evicted.load(Ordering::Relaxed));
        assert_eq!(
            evicted.count(),
            1,
            "one idle one of the heaviest address goes"
        );
        assert!(!light_one.tenure.evicted.load(Ordering::Relaxed));
        held.retain(|s| !s.tenure.evicted.load(Ordering::Relaxed)); // it closes
        {
            let open = slots.open.lock().unwrap();
            assert_eq!((open.total, open.evicting), (4, 0));
        }
        // Ties churn: the light address (1 held, 2 with one more) takes an idle one of the
        // heavy address (2 held); with every remaining connection busy, newcomers are refused.
        let second = slots.admit(light).expect("a tie makes room");
        held.retain(|s| !s.tenure.evicted.load(Ordering::Relaxed));
        let mut busy: Vec<Busy> = held.iter().map(|s| Busy::new(&s.tenure)).collect();
        busy.extend([&light_one, &welcome, &second].map(|s| Busy::new(&s.tenure)));
        assert_eq!(slots.admit(newcomer).err(), Some("max_connections"));
    }

    #[test]
    fn a_connection_told_to_make_room_that_upgrades_counts_as_ordinary() {
        let slots = Arc::new(ConnectionSlots::new(1, 1, Duration::ZERO));
        let first = slots.admit("192.0.2.1".parse().unwrap()).unwrap();
        let _second = slots.admit("192.0.2.2".parse().unwrap()).unwrap();
        assert!(first.tenure.evicted.load(Ordering::Relaxed));
        slots.keep(&first.tenure);
        assert_eq!(slots.open.lock().unwrap().evicting, 0);
        drop(first);
        let open = slots.open.lock().unwrap();
        assert_eq!((open.total, open.evicting), (1, 0));
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(one), address_key(other));
        assert_ne!(
            address_key(one),
            address_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
