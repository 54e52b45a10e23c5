//! The small verbs: `version`, `q`, `photo`, `monitor`, `kill`, and the answer to any other.

use super::params::Params;
use super::{error_answer, json_answer, Visible, RECORDER_VERSION};
use crate::api::auth::SignedIn;
use crate::api::error::ApiResult;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mytracks_app::tracking::delete::DeleteError;
use serde_json::json;
use std::sync::OnceLock;

/// `GET|POST /api/0/version`: the Recorder API level, and ours.
pub async fn version(_: SignedIn) -> Response {
    let ours = mytracks_app::VERSION;
    json_answer(&json!({
        "version": RECORDER_VERSION,
        "git": format!("mytracks {ours}"),
        "mytracks": ours,
    }))
}

/// `GET|POST /api/0/q?lat=&lon=`: the Recorder's reverse-geocoding cache; we have none, so
/// `{}`, which is what the Recorder answers for a position it has not looked up.
pub async fn q(_: SignedIn) -> Response {
    json_answer(&json!({}))
}

/// `GET|POST /api/0/photo?user=U`: the card face of a user the caller may see (live rule)
/// when it is a PNG, else a placeholder (a 40×40 transparent square with a grey border).
pub async fn photo(SignedIn { state, caller }: SignedIn, params: Params) -> ApiResult<Response> {
    let Some(user) = params.field("user") else {
        return Ok(error_answer(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "missing username",
        ));
    };
    let visible = Visible::of(&state, &caller.user.username, false).await?;
    let face = match visible.owner(&user) {
        Some(owner) => {
            let id = visible
                .owners
                .iter()
                .find(|(name, _)| name == owner)
                .map(|(_, id)| *id);
            let cards = state
                .tracking
                .store
                .cards(&id.into_iter().collect::<Vec<_>>())
                .await?;
            cards
                .into_iter()
                .next()
                .and_then(|card| card.face)
                .and_then(|face| {
                    base64::engine::general_purpose::STANDARD
                        .decode(face.trim())
                        .ok()
                })
                .filter(|bytes| bytes.starts_with(PNG_SIGNATURE))
        }
        None => None,
    };
    let bytes = face.unwrap_or_else(|| placeholder_png().to_vec());
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    Ok(response)
}

/// `GET|POST /api/0/monitor`: `"<epoch> <topic>\n"` of the visible device heard from last,
/// else `not available\n` (the Recorder's last received message).
pub async fn monitor(SignedIn { state, caller }: SignedIn) -> ApiResult<Response> {
    let visible = Visible::of(&state, &caller.user.username, false).await?;
    let latest = visible
        .devices
        .iter()
        .filter_map(|(d, owner)| d.last_seen.map(|at| (at, owner, &d.name)))
        .max_by_key(|(at, _, _)| *at);
    let text = match latest {
        Some((at, owner, device)) => format!("{at} {}\n", super::topic_of(owner, device)),
        None => "not available\n".to_owned(),
    };
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// `POST /api/0/kill?user=U&device=D`: deletes a device with its data, retained MQTT state
/// and the credentials bound to it (the deletion service); the owner or an admin only (CSRF
/// token for cookie sessions, a same-site Origin for Basic, as every POST). Anyone else's
/// device is answered as one that does not exist (404). The answer names the months that
/// held locations, as the Recorder lists the `.rec` files it removed.
pub async fn kill(SignedIn { state, caller }: SignedIn, params: Params) -> ApiResult<Response> {
    let (Some(user), Some(device)) = (params.field("user"), params.field("device")) else {
        return Ok(error_answer(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "user and device are required",
        ));
    };
    let visible = Visible::of(&state, &caller.user.username, false).await?;
    let own = visible
        .select(Some(&user), Some(&device))
        .into_iter()
        .find(|(d, _)| d.user_id == caller.user.id || caller.user.is_admin)
        .map(|(d, owner)| (d.id, d.name.clone(), owner.clone()));
    let Some((device_id, device, owner)) = own else {
        return Ok(error_answer(StatusCode::NOT_FOUND, "no such device"));
    };
    let store = &state.tracking.store;
    let months = store.location_months(device_id, i64::MAX).await?;
    let deleted = match state
        .tracking
        .delete_device_named(&caller.user, &owner, &device)
        .await
    {
        Ok(deleted) => deleted,
        Err(DeleteError::NotFound(_) | DeleteError::Forbidden(_)) => {
            return Ok(error_answer(StatusCode::NOT_FOUND, "no such device"));
        }
        Err(error) => return Err(error.into()),
    };
    Ok(json_answer(&json!({
        "path": format!("rec/{owner}/{device}"),
        "status": "OK",
        "killed": months.iter().map(|m| format!("{m}.rec")).collect::<Vec<_>>(),
        "locations": deleted.counts.locations,
        "transitions": deleted.counts.transitions,
        "waypoints": deleted.counts.waypoints,
    })))
}

/// `GET /api/0/kill`: refused (405). A GET that deletes could be triggered by another site's
/// page with a browser's cached Basic credentials; the Recorder accepts GET, we do not.
pub async fn kill_by_get() -> Response {
    let mut response = error_answer(
        StatusCode::METHOD_NOT_ALLOWED,
        "kill deletes data: use POST",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// Any other verb (the Recorder answers `no comprendo`).
pub async fn no_comprendo(_: SignedIn) -> Response {
    error_answer(StatusCode::NOT_FOUND, "no comprendo")
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Side of the placeholder.
const PLACEHOLDER_SIDE: u32 = 40;

/// The placeholder photo, built once: a 40×40 RGBA PNG, transparent with a 1-pixel grey
/// border, stored uncompressed (deflate "stored" blocks), so no compressor is needed.
pub fn placeholder_png() -> &'static [u8] {
    static PNG: OnceLock<Vec<u8>> = OnceLock::new();
    PNG.get_or_init(|| {
        let side = PLACEHOLDER_SIDE;
        let mut pixels = Vec::with_capacity((side * (side * 4 + 1)) as usize);
        for y in 0..side {
            pixels.push(0); // filter: none
            for x in 0..side {
                let border = x == 0 || y == 0 || x == side - 1 || y == side - 1;
                pixels.extend_from_slice(match border {
                    true => &[0x80, 0x80, 0x80, 0xff],
                    false => &[0, 0, 0, 0],
                });
            }
        }
        let mut header = Vec::new();
        header.extend_from_slice(&side.to_be_bytes());
        header.extend_from_slice(&side.to_be_bytes());
        header.extend_from_slice(&[8, 6, 0, 0, 0]); // 8 bits, RGBA, deflate, no filter, no interlace
        let mut png = PNG_SIGNATURE.to_vec();
        png_chunk(&mut png, b"IHDR", &header);
        png_chunk(&mut png, b"IDAT", &zlib_stored(&pixels));
        png_chunk(&mut png, b"IEND", &[]);
        png
    })
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of `data` in stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit: a few kilobytes once.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = match crc & 1 {
                1 => (crc >> 1) ^ 0xEDB8_8320,
                _ => crc >> 1,
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_the_standard_check_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn placeholder_is_a_40_by_40_png() {
        let png = placeholder_png();
        assert!(png.starts_with(PNG_SIGNATURE));
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 40, 0, 0, 0, 40]);
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
    }
}
