//! `GET /ws/locations/`: the live feed over WebSocket (cookie session, bearer token, or
//! `?token=` for clients that cannot set headers). Each event the caller may see is sent as
//! a JSON text message: `{"type": "location"|"transition"|"presence", "user", "device",
//! "device_id", "data"}`. A client too slow to keep up gets `{"type": "lagged", "missed": N}`
//! and the stream goes on.

use super::auth::Auth;
use crate::http::HttpState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

pub async fn upgrade(
    State(state): State<HttpState>,
    Auth(caller): Auth,
    ws: WebSocketUpgrade,
) -> Response {
    let username = caller.user.username.clone();
    ws.on_upgrade(move |socket| feed(state, username, socket))
}

async fn feed(state: HttpState, username: String, mut socket: WebSocket) {
    let mut events = state.tracking.feed.subscribe();
    let welcome =
        serde_json::json!({ "type": "welcome", "user": username, "version": crate::VERSION });
    if socket
        .send(Message::Text(welcome.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => {
                let text = match event {
                    Ok(event) => {
                        let directory = state.accounts.directory();
                        // Checked per event: shares and deactivations apply at once.
                        if !directory.member(&username).is_some_and(|m| m.active) {
                            break;
                        }
                        if !directory.can_see(&username, &event.user, false) {
                            continue;
                        }
                        match serde_json::to_string(&*event) {
                            Ok(text) => text,
                            Err(_) => continue,
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        serde_json::json!({ "type": "lagged", "missed": missed }).to_string()
                    }
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
