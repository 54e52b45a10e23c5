//! What every listener does before its transport's handshake: accept, count against the
//! per-listener limit (`[mqtt] listener_max_connections`, on top of the broker's global
//! `max_connections`), stop when the broker stops.
//!
//! A connection over the limit is closed at once, before any handshake, as Mosquitto does for
//! its per-listener `max_connections`. Admitted streams carry a slot that is given back when
//! the broker drops the stream, however the connection ends.

use mytracks_broker::{Broker, ConnectionMeta};
use mytracks_http::accept::AcceptErrors;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Counts one listener's open connections.
#[derive(Clone, Debug)]
pub struct ListenerLimit {
    max: usize,
    open: Arc<AtomicUsize>,
}

impl ListenerLimit {
    pub fn new(max: usize) -> ListenerLimit {
        ListenerLimit {
            max,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Connections currently admitted.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// `stream` wrapped with a slot, or `None` when the listener is full.
    pub fn admit<S>(&self, stream: S) -> Option<Counted<S>> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| Counted {
            inner: stream,
            open: self.open.clone(),
        })
    }
}

/// A stream holding one of its listener's slots until dropped.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    open: Arc<AtomicUsize>,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// The next accepted TCP connection, or `None` once the broker stops. Accept errors (out of
/// file descriptors and the like) are logged and retried after a pause instead of spinning.
/// Connections over `limit` are closed here and never returned.
pub(crate) async fn accept(
    listener: &TcpListener,
    broker: &Broker,
    name: &str,
    limit: &ListenerLimit,
) -> Option<(Counted<TcpStream>, std::net::SocketAddr)> {
    let mut errors = AcceptErrors::new(name);
    loop {
        tokio::select! {
            _ = broker.stopped() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match limit.admit(stream) {
                        Some(stream) => return Some((stream, peer)),
                        None => tracing::debug!(%peer, "{name}: listener full, connection closed"),
                    }
                }
                Err(error) => errors.pause_after(&error).await,
            },
        }
    }
}

/// The plain MQTT listener: accepted connections go straight to the broker.
pub async fn serve_tcp(
    listener: TcpListener,
    broker: Broker,
    limit: ListenerLimit,
) -> std::io::Result<()> {
    let name: std::sync::Arc<str> = "mqtt".into();
    while let Some((stream, peer)) = accept(&listener, &broker, &name, &limit).await {
        let meta = ConnectionMeta {
            peer: Some(peer),
            listener: name.clone(),
            transport_identity: None,
        };
        broker.serve_connection(stream, meta);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let limit = ListenerLimit::new(2);
        let a = limit.admit(()).expect("first");
        let _b = limit.admit(()).expect("second");
        assert!(limit.admit(()).is_none(), "third is over the limit");
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.admit(()).is_some());
    }
}
