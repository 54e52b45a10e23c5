//! MQTT over WebSocket on the HTTP listener (`/mqtt`, the same origin as the web UI, so a
//! browser client needs no extra port or CORS).
//!
//! Each WebSocket is bridged to the broker through an in-memory pipe: binary frames in become
//! bytes for the broker (a packet may span frames, a frame may hold several packets), bytes out
//! become binary frames. The broker sees an ordinary byte stream, exactly like TCP or TLS.

use crate::http::HttpState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use mytracks_broker::{Broker, ConnectionMeta};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Subprotocols MQTT clients offer: `mqtt` (3.1.1 and 5), `mqttv3.1` (3.1).
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];
/// Buffer between the socket and the broker, per direction.
const PIPE: usize = 64 * 1024;

/// `GET /mqtt` with an upgrade to WebSocket.
pub async fn upgrade(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let broker = state.broker.clone();
    ws.protocols(SUBPROTOCOLS)
        .on_upgrade(move |socket| bridge(socket, broker, peer))
}

async fn bridge(socket: WebSocket, broker: Broker, peer: SocketAddr) {
    let (broker_side, our_side) = tokio::io::duplex(PIPE);
    let meta = ConnectionMeta {
        peer: Some(peer),
        listener: "http-ws".into(),
        transport_identity: None,
    };
    broker.serve_connection(broker_side, meta);
    let (mut from_broker, mut to_broker) = tokio::io::split(our_side);
    let (mut sink, mut frames) = socket.split();
    let inbound = async {
        while let Some(Ok(frame)) = frames.next().await {
            match frame {
                Message::Binary(bytes) => {
                    if to_broker.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                // MQTT over WebSocket is binary only; text or close ends the connection.
                Message::Text(_) | Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
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
                    let frame = Message::Binary(buf[..n].to_vec().into());
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    // Either side ending ends the connection.
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}
