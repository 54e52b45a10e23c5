//! `GET /ws/locations/`: the live feed over WebSocket (cookie session, bearer token, or
//! `?token=` for clients that cannot set headers). Each event the caller may see is sent as
//! a JSON text message: `{"type": "location"|"transition"|"waypoint"|"presence", "user",
//! "device", "device_id", "data"}`; waypoints only to those who may see the owner's history. A client too slow to keep up gets `{"type": "lagged", "missed": N}`
//! and the stream goes on.
//!
//! The socket lives as long as what opened it: it closes within seconds when its web session
//! ends (logout, password change), its token is deleted or expires, the password it proved
//! changes, or the account is deactivated. A cookie-authenticated upgrade must come from a
//! page of this site (Origin check: cross-site WebSocket hijacking). Clients send nothing but
//! pongs here, so their messages are limited to `[web] live_feed_max_message_bytes`, and one
//! silent for `[web] live_feed_idle_timeout_secs` is closed.

use super::auth::{check_origin, Caller, SignedIn};
use super::error::ApiResult;
use crate::state::HttpState;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![("/ws/locations/", get(upgrade))]
}

/// How often the socket looks for a change of credentials (in memory: the accounts' epoch).
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often it checks its credentials in the database even without a change in this
/// process (expiry, another process deleting a token).
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(30);

pub async fn upgrade(
    SignedIn { state, caller }: SignedIn,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    if caller.session.is_some() {
        check_origin(&headers)?;
    }
    let limit = state.web.settings.live_feed_max_message;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| feed(state, caller, socket)))
}

/// What keeps a feed socket honest: server pings (and closing a client silent for the idle
/// timeout) and re-checking the caller's access when accounts change (at least every
/// [`RECHECK_EVERY`]). Shared by `/ws/locations/` and `/ws/last`.
pub(crate) struct Keepalive {
    pub(crate) ping: tokio::time::Interval,
    pub(crate) check: tokio::time::Interval,
    idle_timeout: std::time::Duration,
    epoch: u64,
    checked_at: Instant,
    heard_at: Instant,
}

impl Keepalive {
    pub(crate) fn new(state: &HttpState) -> Keepalive {
        let idle_timeout = state.web.settings.live_feed_idle_timeout;
        let mut ping = tokio::time::interval(idle_timeout / 3);
        ping.reset();
        Keepalive {
            ping,
            check: tokio::time::interval(CHECK_EVERY),
            idle_timeout,
            epoch: state.accounts.auth_epoch(),
            checked_at: Instant::now(),
            heard_at: Instant::now(),
        }
    }

    /// The client sent something.
    pub(crate) fn heard(&mut self) {
        self.heard_at = Instant::now();
    }

    /// On a ping tick: `false` once the socket is closed (idle) or gone.
    pub(crate) async fn ping_or_close(&mut self, socket: &mut WebSocket) -> bool {
        if self.heard_at.elapsed() >= self.idle_timeout {
            close(socket, close_code::AWAY, "idle").await;
            return false;
        }
        socket.send(Message::Ping(Default::default())).await.is_ok()
    }

    /// On a check tick: `false` once the caller's access has ended (the socket is closed).
    pub(crate) async fn recheck(
        &mut self,
        state: &HttpState,
        caller: &Caller,
        socket: &mut WebSocket,
    ) -> bool {
        let now_epoch = state.accounts.auth_epoch();
        if now_epoch == self.epoch && self.checked_at.elapsed() < RECHECK_EVERY {
            return true;
        }
        self.epoch = now_epoch;
        self.checked_at = Instant::now();
        if !still_authorized(state, caller).await {
            close(socket, close_code::POLICY, "access ended").await;
            return false;
        }
        true
    }
}

async fn feed(state: HttpState, caller: Caller, mut socket: WebSocket) {
    let username = caller.user.username.clone();
    let mut events = state.tracking.feed.subscribe();
    let welcome = serde_json::json!({ "type": "welcome", "user": username, "version": mytracks_app::VERSION });
    if socket
        .send(Message::Text(welcome.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut alive = Keepalive::new(&state);
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
                        // Regions (waypoints) are history: where people live and work.
                        let history = event.kind == "waypoint";
                        if !directory.can_see(&username, &event.user, history) {
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
                Some(Ok(_)) => alive.heard(),
            },
            _ = alive.ping.tick() => {
                if !alive.ping_or_close(&mut socket).await {
                    break;
                }
            }
            _ = alive.check.tick() => {
                if !alive.recheck(&state, &caller, &mut socket).await {
                    break;
                }
            }
        }
    }
}

pub(crate) async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Is what opened the socket still good: the account active, and its session, its token, or
/// (HTTP Basic) the password it proved still in place? A database that cannot answer keeps
/// the socket (the next check decides).
pub(crate) async fn still_authorized(state: &HttpState, caller: &Caller) -> bool {
    let store = state.accounts.store();
    let now = mytracks_store::now();
    let answer: mytracks_store::Result<bool> = async {
        let Some(user) = store.user_by_id(caller.user.id).await? else {
            return Ok(false);
        };
        if !user.is_active {
            return Ok(false);
        }
        if let Some(id_hash) = &caller.session {
            return Ok(store.session(id_hash, now).await?.is_some());
        }
        if let Some(token_hash) = &caller.token {
            let token = store.token_by_hash(token_hash).await?;
            return Ok(token.is_some_and(|t| t.expires_at.is_none_or(|at| at > now)));
        }
        Ok(user.password_hash == caller.user.password_hash)
    }
    .await;
    answer.unwrap_or_else(|error| {
        tracing::warn!("live feed: cannot check the caller's access: {error}");
        true
    })
}
