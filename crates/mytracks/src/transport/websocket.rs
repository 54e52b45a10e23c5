//! MQTT over WebSocket: `/mqtt` on the HTTP listener (the same origin as the web UI, so a
//! browser client needs no extra port or CORS), and optional dedicated WS and WSS listeners.
//!
//! Each WebSocket is bridged to the broker through an in-memory pipe: binary frames in become
//! bytes for the broker (a packet may span frames, a frame may hold several packets), bytes out
//! become binary frames. The broker sees an ordinary byte stream, exactly like TCP or TLS.

use crate::transport::tls::TlsListener;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use mytracks_broker::{Broker, ConnectionMeta};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};

/// Subprotocols MQTT clients offer: `mqtt` (3.1.1 and 5), `mqttv3.1` (3.1).
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];
/// Buffer between the socket and the broker, per direction.
const PIPE: usize = 64 * 1024;
/// How long a dedicated listener waits for the WebSocket (and TLS) handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Room above `max_packet_size` in a WebSocket message: a client may put the end of one
/// packet and the start of the next in the same message.
const MESSAGE_SLACK: usize = 1024;

/// The largest WebSocket message and frame MQTT over WebSocket accepts: the broker's
/// `max_packet_size` plus [`MESSAGE_SLACK`] (tungstenite's default is 64 MiB, which a client
/// could make the server buffer before the broker ever saw a packet). A bigger message ends
/// the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageLimit(pub usize);

impl MessageLimit {
    pub fn for_packets(max_packet_size: u32) -> MessageLimit {
        MessageLimit(max_packet_size as usize + MESSAGE_SLACK)
    }
}

/// What one incoming frame means for the byte stream.
enum Frame {
    Data(Bytes),
    Skip,
    End,
}

/// What `/mqtt` on the HTTP listener needs: the broker to hand sockets to, and their limit.
#[derive(Clone)]
struct HttpMount {
    broker: Broker,
    limit: MessageLimit,
}

/// The `/mqtt` route, which the server adds to the HTTP router (so the HTTP listener's
/// connection limits cover the upgraded sockets too).
pub fn http_route(broker: Broker, limit: MessageLimit) -> axum::Router {
    axum::Router::new()
        .route("/mqtt", axum::routing::get(upgrade))
        .with_state(HttpMount { broker, limit })
}

/// `GET /mqtt` with an upgrade to WebSocket, on the HTTP listener.
async fn upgrade(
    State(mount): State<HttpMount>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let HttpMount {
        broker,
        limit: MessageLimit(limit),
    } = mount;
    ws.protocols(SUBPROTOCOLS)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            let frames = stream.map(|frame| match frame {
                Ok(Message::Binary(bytes)) => Frame::Data(bytes),
                Ok(Message::Ping(_) | Message::Pong(_)) => Frame::Skip,
                // MQTT over WebSocket is binary only; text, close or an error ends it.
                _ => Frame::End,
            });
            let sink = sink.with(|bytes: Bytes| {
                std::future::ready(Ok::<_, axum::Error>(Message::Binary(bytes)))
            });
            let meta = ConnectionMeta {
                peer: Some(peer),
                listener: "http-ws".into(),
                transport_identity: None,
            };
            pump(frames, sink, broker, meta).await;
        })
}

/// Moves bytes between a WebSocket and a broker connection until either side ends.
async fn pump<F, S>(frames: F, sink: S, broker: Broker, meta: ConnectionMeta)
where
    F: Stream<Item = Frame> + Unpin,
    S: Sink<Bytes> + Unpin,
{
    let (broker_side, our_side) = tokio::io::duplex(PIPE);
    broker.serve_connection(broker_side, meta);
    let (mut from_broker, mut to_broker) = tokio::io::split(our_side);
    let mut frames = frames;
    let mut sink = sink;
    let inbound = async {
        while let Some(frame) = frames.next().await {
            match frame {
                Frame::Data(bytes) => {
                    if to_broker.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Frame::Skip => {}
                Frame::End => break,
            }
        }
        let _ = to_broker.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; PIPE];
        loop {
            match from_broker.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}

/// A dedicated WebSocket listener (`--mqtt-ws-port`), or WSS when `tls` is given
/// (`--mqtt-wss-port`, with the MQTT TLS listener's certificates and client certificate
/// checks, reloaded with them). Any path is accepted, as Mosquitto's websockets listeners do.
pub async fn serve_dedicated(
    listener: TcpListener,
    tls: Option<Arc<TlsListener>>,
    broker: Broker,
    limit: crate::transport::listener::ListenerLimit,
    message_limit: MessageLimit,
) -> std::io::Result<()> {
    let name: Arc<str> = if tls.is_some() { "mqtt-wss" } else { "mqtt-ws" }.into();
    while let Some((stream, peer)) =
        crate::transport::listener::accept(&listener, &broker, &name, &limit).await
    {
        let broker = broker.clone();
        let tls = tls.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let mut meta = ConnectionMeta {
                peer: Some(peer),
                listener: name.clone(),
                transport_identity: None,
            };
            let result = match tls {
                Some(tls) => match tls.handshake(stream).await {
                    Ok((stream, identity)) => {
                        meta.transport_identity = identity;
                        websocket(stream, broker, meta, message_limit).await
                    }
                    Err(error) => Err(error.to_string()),
                },
                None => websocket(stream, broker, meta, message_limit).await,
            };
            if let Err(error) = result {
                tracing::debug!(%peer, "{name}: {error}");
            }
        });
    }
    Ok(())
}

/// The WebSocket handshake on an accepted stream, then the pump.
async fn websocket<T>(
    stream: T,
    broker: Broker,
    meta: ConnectionMeta,
    MessageLimit(limit): MessageLimit,
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // The signature is tungstenite's handshake callback; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let choose_protocol =
        |request: &Request, mut response: WsResponse| -> Result<WsResponse, ErrorResponse> {
            let offered = request
                .headers()
                .get_all("sec-websocket-protocol")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(',').map(str::trim))
                .find(|offered| SUBPROTOCOLS.contains(offered))
                .map(str::to_owned);
            if let Some(protocol) = offered {
                response.headers_mut().insert(
                    "sec-websocket-protocol",
                    protocol.parse().expect("a known token"),
                );
            }
            Ok(response)
        };
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, choose_protocol, Some(config));
    let socket = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| "WebSocket handshake timed out".to_owned())?
        .map_err(|error| format!("WebSocket handshake: {error}"))?;
    let (sink, stream) = socket.split();
    let frames = stream.map(|frame| match frame {
        Ok(tungstenite::Message::Binary(bytes)) => Frame::Data(bytes),
        Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_)) => Frame::Skip,
        _ => Frame::End,
    });
    let sink = sink.with(|bytes: Bytes| {
        std::future::ready(Ok::<_, tungstenite::Error>(tungstenite::Message::Binary(
            bytes,
        )))
    });
    pump(frames, sink, broker, meta).await;
    Ok(())
}
