//! `GET /ws/last`: the Recorder's WebSocket, as the OwnTracks Frontend uses it.
//!
//! The client sends `LAST`; this connection (only this one: the Recorder answers every
//! client, which would show each viewer's devices to all) gets one frame per device the
//! caller may see (live rule) with a last location: the Recorder's members (`_type`, `lat`,
//! `lon`, `tst`, `tid`, `addr`, `topic`, `ghash`), the card's `name` and `face`, and
//! `username`, `device`. A `LAST` is answered at most once per [`LAST_EVERY`] per socket
//! (each reads the database and sends every card's face): the extra ones are ignored.
//! Other text frames are ignored; a binary frame closes with 1003.
//! Then, as they are stored, locations and transitions the caller may see (live rule) and
//! waypoints under the history rule (regions are where people live and work: as
//! `/api/waypoints/`): the event's data with `topic`, `username`, `device`, `ghash` and the
//! card's `name` (the face only in the `LAST` answer: it is tens of kilobytes).
//!
//! Everything else is the live feed's (`api/live.rs`): an upgrade by cookie or by Basic
//! (both ambient browser credentials) must come from a page of this site; the socket closes
//! when what opened it ends; client messages are bounded, and a silent client is closed.

use super::last::{add_card, last_items};
use super::output::{geohash, GEOHASH_PRECISION};
use super::{topic_of, Visible};
use crate::api::auth::{check_origin, Caller, SignedIn};
use crate::api::error::ApiResult;
use crate::api::live::{close, Keepalive};
use crate::state::HttpState;
use axum::extract::ws::{close_code, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use mytracks_app::tracking::feed::FeedEvent;
use mytracks_store::CardRow;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// How long a card's name is reused for pushes before it is read again.
const CARD_TTL: Duration = Duration::from_secs(60);

/// A socket's `LAST` requests are answered at most once in this time.
const LAST_EVERY: Duration = Duration::from_secs(1);

/// The members of a `LAST` frame besides the card's, as the Recorder picks them.
const LAST_MEMBERS: [&str; 10] = [
    "_type", "lat", "lon", "tst", "tid", "addr", "topic", "ghash", "username", "device",
];

pub async fn upgrade(
    SignedIn { state, caller }: SignedIn,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // A token is not sent by browsers on their own; cookies and cached Basic are.
    if caller.token.is_none() {
        check_origin(&headers)?;
    }
    let limit = state.web.settings.live_feed_max_message;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(state, caller, socket)))
}

async fn serve(state: HttpState, caller: Caller, mut socket: WebSocket) {
    let username = caller.user.username.clone();
    let mut events = state.tracking.feed.subscribe();
    let mut cards = Cards::default();
    let mut alive = Keepalive::new(&state);
    let mut last_limit = LastLimit::default();
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    // The Frontend re-reads `/api/0/last` on any location: nothing to repair.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                let directory = state.accounts.directory();
                if !directory.member(&username).is_some_and(|m| m.active) {
                    break;
                }
                let history = match event.kind {
                    "location" | "transition" => false,
                    "waypoint" => true,
                    _ => continue,
                };
                if !directory.can_see(&username, &event.user, history) {
                    continue;
                }
                drop(directory);
                let card = cards.get(&state, event.user_id).await;
                let Some(frame) = push_frame(&event, card) else { continue };
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(Message::Binary(_))) => {
                    close(&mut socket, close_code::UNSUPPORTED, "text only").await;
                    break;
                }
                Some(Ok(Message::Text(text))) => {
                    alive.heard();
                    if text.as_str() == "LAST"
                        && last_limit.allow(Instant::now())
                        && answer_last(&state, &username, &mut socket).await.is_err()
                    {
                        break;
                    }
                }
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

/// One frame per visible device with a last location, to this socket. `Err`: the socket is
/// gone. A database that cannot answer sends nothing (the client asks again on reconnect).
async fn answer_last(state: &HttpState, username: &str, socket: &mut WebSocket) -> Result<(), ()> {
    let items = match Visible::of(state, username, false).await {
        Ok(visible) => {
            let devices: Vec<_> = visible
                .devices
                .iter()
                .filter(|(d, owner)| !(owner == "ping" && d.name == "ping"))
                .collect();
            last_items(state, &devices, true).await
        }
        Err(error) => Err(error),
    };
    let items = match items {
        Ok(items) => items,
        Err(error) => {
            tracing::warn!("/ws/last: cannot read the last locations: {error}");
            return Ok(());
        }
    };
    for mut item in items {
        let mut frame = Map::new();
        for key in ["name", "face"] {
            if let Some(value) = item.remove(key) {
                frame.insert(key.into(), value);
            }
        }
        for key in LAST_MEMBERS {
            if let Some(value) = item.remove(key) {
                frame.insert(key.into(), value);
            }
        }
        let text = Value::Object(frame).to_string();
        socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| ())?;
    }
    Ok(())
}

/// A stored event as the Recorder pushes it; `None` when its data is not an object.
fn push_frame(event: &FeedEvent, card: Option<&CardRow>) -> Option<String> {
    let Value::Object(mut frame) = event.data.clone() else {
        return None;
    };
    let base = topic_of(&event.user, &event.device);
    let topic = match event.kind {
        "transition" => format!("{base}/event"),
        "waypoint" => format!("{base}/waypoint"),
        _ => base,
    };
    frame.insert("topic".into(), topic.into());
    frame.insert("username".into(), event.user.clone().into());
    frame.insert("device".into(), event.device.clone().into());
    let at = |k: &str| frame.get(k).and_then(Value::as_f64);
    if let (Some(lat), Some(lon)) = (at("lat"), at("lon")) {
        frame.insert("ghash".into(), geohash(lat, lon, GEOHASH_PRECISION).into());
    }
    if event.kind != "transition" {
        add_card(&mut frame, card, false);
    }
    Some(Value::Object(frame).to_string())
}

/// When a socket's last answered `LAST` was: one answer per [`LAST_EVERY`].
#[derive(Default)]
struct LastLimit(Option<Instant>);

impl LastLimit {
    /// Whether a `LAST` received at `now` is answered (and then counted).
    fn allow(&mut self, now: Instant) -> bool {
        if self
            .0
            .is_some_and(|at| now.saturating_duration_since(at) < LAST_EVERY)
        {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

/// Cards read for pushes, per owner, for [`CARD_TTL`].
#[derive(Default)]
struct Cards(HashMap<i64, (Option<CardRow>, Instant)>);

impl Cards {
    async fn get(&mut self, state: &HttpState, user_id: i64) -> Option<&CardRow> {
        let fresh = self
            .0
            .get(&user_id)
            .is_some_and(|(_, at)| at.elapsed() < CARD_TTL);
        if !fresh {
            // A database that cannot answer: no name this time.
            let card = state
                .tracking
                .store
                .cards(&[user_id])
                .await
                .ok()
                .and_then(|cards| cards.into_iter().next());
            self.0.insert(user_id, (card, Instant::now()));
        }
        self.0.get(&user_id).and_then(|(card, _)| card.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_is_answered_at_most_once_a_second() {
        let mut limit = LastLimit::default();
        let start = Instant::now();
        assert!(limit.allow(start));
        assert!(!limit.allow(start));
        assert!(!limit.allow(start + Duration::from_millis(999)));
        assert!(limit.allow(start + LAST_EVERY));
        assert!(!limit.allow(start + Duration::from_millis(1500)));
        assert!(limit.allow(start + Duration::from_millis(2000)));
    }
}
