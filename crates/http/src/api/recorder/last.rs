//! `/api/0/last`: the last location of every device the caller may see (live rule), as the
//! Recorder answers it: the stored payload with `topic`, `username`, `device`, `ghash`,
//! `isotst`, `disptst`, and the owner's card (`name`, `face`); `fields` projects.

use super::output::{item, project};
use super::params::Params;
use super::{json_answer, Visible};
use crate::api::auth::SignedIn;
use crate::api::error::ApiResult;
use crate::state::HttpState;
use axum::response::Response;
use mytracks_store::{CardRow, Device};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// `GET|POST /api/0/last[?user=U[&device=D]][&fields=a,b]`: a JSON array.
pub async fn last(SignedIn { state, caller }: SignedIn, params: Params) -> ApiResult<Response> {
    let visible = Visible::of(&state, &caller.user.username, false).await?;
    let user = params.field("user");
    let device = params.field("device");
    let selected = visible.select(user.as_deref(), device.as_deref());
    let fields = params.fields();
    let items = last_items(&state, &selected, true)
        .await?
        .into_iter()
        .map(|item| Value::Object(project(item, fields.as_deref())))
        .collect();
    Ok(json_answer(&Value::Array(items)))
}

/// The last location of each of `devices` that has one, as items, in their order, with the
/// owner's card `name` (and `face` when `with_face`).
pub async fn last_items(
    state: &HttpState,
    devices: &[&(Device, String)],
    with_face: bool,
) -> mytracks_store::Result<Vec<Map<String, Value>>> {
    let store = &state.tracking.store;
    let ids: Vec<i64> = devices.iter().map(|(d, _)| d.id).collect();
    let mut last: HashMap<i64, mytracks_store::RawLocation> = store
        .last_locations_raw(&ids)
        .await?
        .into_iter()
        .map(|l| (l.device_id, l))
        .collect();
    let mut owner_ids: Vec<i64> = devices.iter().map(|(d, _)| d.user_id).collect();
    owner_ids.sort_unstable();
    owner_ids.dedup();
    let cards: HashMap<i64, CardRow> = store
        .cards(&owner_ids)
        .await?
        .into_iter()
        .map(|c| (c.user_id, c))
        .collect();
    let mut items = Vec::new();
    for (device, owner) in devices {
        let Some(location) = last.remove(&device.id) else {
            continue;
        };
        let mut object = item(
            &location.raw,
            location.lat,
            location.lon,
            location.tst,
            owner,
            &device.name,
        );
        add_card(&mut object, cards.get(&device.user_id), with_face);
        items.push(object);
    }
    Ok(items)
}

/// The card's `name` and, when asked, its `face` (the Recorder's card members).
pub fn add_card(object: &mut Map<String, Value>, card: Option<&CardRow>, with_face: bool) {
    let Some(card) = card else { return };
    if let Some(name) = &card.name {
        object.insert("name".into(), name.clone().into());
    }
    if with_face {
        if let Some(face) = &card.face {
            object.insert("face".into(), face.clone().into());
        }
    }
}
