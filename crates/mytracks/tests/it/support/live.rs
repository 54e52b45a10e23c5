//! A client of the live feed `/ws/locations/` for tests, driven synchronously.

use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

/// How long a handshake may take.
const WAIT: Duration = Duration::from_secs(10);

/// A client of the live feed `/ws/locations/`, driven synchronously.
pub struct LiveFeed {
    // Dropped before the runtime that drives it.
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    runtime: tokio::runtime::Runtime,
    /// Every event received so far (parsed JSON), in order.
    pub events: Vec<Value>,
    /// Why the stream ended, if it did.
    pub ended: Option<String>,
}

impl LiveFeed {
    /// Connects with `?token=` (none: no credentials at all). `Err((status, body))` when the
    /// upgrade is refused.
    pub fn connect(port: u16, token: Option<&str>) -> Result<LiveFeed, (u16, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = match token {
            Some(token) => format!("ws://127.0.0.1:{port}/ws/locations/?token={token}"),
            None => format!("ws://127.0.0.1:{port}/ws/locations/"),
        };
        let connect = async {
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str())).await
        };
        match runtime.block_on(connect) {
            Err(_) => Err((
                0,
                format!("no WebSocket handshake with {url} within {WAIT:?}"),
            )),
            Ok(Ok((socket, _))) => Ok(LiveFeed {
                socket,
                runtime,
                events: Vec::new(),
                ended: None,
            }),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((response.status().as_u16(), body))
            }
            Ok(Err(error)) => Err((0, format!("WebSocket connect to {url}: {error}"))),
        }
    }

    /// The first event (already received, or within `timeout`) for which `pred` holds.
    pub fn wait(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        self.wait_after(0, pred, timeout)
    }

    /// Like [`LiveFeed::wait`], ignoring the first `start` events received.
    pub fn wait_after(
        &mut self,
        start: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        if let Some(event) = self.events.iter().skip(start).find(|e| pred(e)) {
            return Some(event.clone());
        }
        let deadline = Instant::now() + timeout;
        while self.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let socket = &mut self.socket;
            let next = self
                .runtime
                .block_on(async { tokio::time::timeout(left, socket.next()).await });
            match next {
                Err(_) => return None,
                Ok(None) => self.ended = Some("closed by the server".into()),
                Ok(Some(Err(error))) => self.ended = Some(error.to_string()),
                Ok(Some(Ok(tungstenite::Message::Text(text)))) => {
                    let value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| Value::String(text.to_string()));
                    self.events.push(value.clone());
                    if pred(&value) {
                        return Some(value);
                    }
                }
                Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                    self.ended = Some(format!("close frame {frame:?}"));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
        None
    }

    pub fn describe(&self) -> String {
        let mut text = self
            .events
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        if let Some(ended) = &self.ended {
            text.push_str(&format!("\n(stream ended: {ended})"));
        }
        text
    }
}
