//! `/api/0/locations`: one device's locations in a window, in any of the Recorder's formats
//! (see `output.rs`), streamed.
//!
//! The Frontend asks for a month of every device by default; at 1 Hz that is 2.6 million
//! points each. The answer is written page by page (keyset pages of
//! [`mytracks_store::recorder_reads::MAX_PAGE`] rows) into a channel of [`CHUNKS_AHEAD`]
//! chunks that the response body drains, so memory does not grow with the answer and a
//! client that stops reading stops the reads. The first page is read before answering: a
//! database that cannot answer gets a 503, not a truncated 200. A failure later aborts the
//! response (the client sees it cut, never a complete-looking answer).
//!
//! Recorder rules kept: `user` and `device` are required (416), `from > to` is 416, an
//! unknown `format` is 400, the bounds are exclusive, `limit=N` keeps the newest N points
//! (newest first; `linestring` stays oldest first) within the window. Deviation: the newest
//! N are taken across months (the Recorder stops after its first file). A device the caller
//! may not see (history rule) answers like one without points: 200, `count` 0.

use super::output::{item, Format, Writer};
use super::params::{exclusive, Params};
use super::{error_answer, Visible};
use crate::api::auth::SignedIn;
use crate::api::error::ApiResult;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mytracks_store::recorder_reads::MAX_PAGE;
use mytracks_store::{Page, Store};
use tokio::sync::mpsc;

/// Chunks (pages) written ahead of what the client has read.
const CHUNKS_AHEAD: usize = 2;

/// `GET|POST /api/0/locations?user=U&device=D[&from=..][&to=..][&limit=N][&fields=a,b]
/// [&format=..]`.
pub async fn locations(
    SignedIn { state, caller }: SignedIn,
    params: Params,
) -> ApiResult<Response> {
    let format_text = params.parameter("format");
    let Some(format) = Format::parse(format_text.as_deref()) else {
        return Ok(error_answer(StatusCode::BAD_REQUEST, "unrecognized format"));
    };
    let (from, to) = match params.window(mytracks_store::now()) {
        Ok(window) => window,
        Err(refused) => return Ok(refused.into_response()),
    };
    let (Some(user), Some(device)) = (params.field("user"), params.field("device")) else {
        return Ok(error_answer(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "user and device are required",
        ));
    };
    let limit = params
        .parameter("limit")
        .map(|l| atoi(&l))
        .filter(|l| *l > 0);
    let visible = Visible::of(&state, &caller.user.username, true).await?;
    let target = visible
        .select(Some(&user), Some(&device))
        .first()
        .map(|(d, owner)| (d.id, owner.clone(), d.name.clone()));
    let (start, end) = exclusive(from, to);
    let mut pages = Pages {
        store: state.tracking.store.clone(),
        target,
        page: Page {
            start: Some(start),
            end: Some(end),
            newest_first: limit.is_some() && format != Format::LineString,
            ..Page::default()
        },
        remaining: limit,
        writer: Writer::new(format, params.fields()),
        started: false,
        done: false,
    };
    if let (Some(limit), Format::LineString, Some((device_id, _, _))) =
        (limit, format, &pages.target)
    {
        // Oldest first from the newest `limit`th point (inclusive).
        let nth = state
            .tracking
            .store
            .nth_newest_location(*device_id, Some(start), Some(end), limit)
            .await?;
        pages.page.after = nth.map(|(tst, id)| (tst, id - 1));
    }
    let first = pages.next_chunk().await?;
    let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_AHEAD);
    if !first.is_empty() {
        let _ = sender.try_send(Ok(Bytes::from(first)));
    }
    tokio::spawn(async move {
        while !pages.done {
            let chunk = match pages.next_chunk().await {
                Ok(chunk) => Ok(Bytes::from(chunk)),
                Err(error) => {
                    tracing::warn!("/api/0/locations cut short: {error}");
                    Err(std::io::Error::other(error.to_string()))
                }
            };
            let failed = chunk.is_err();
            // A client gone away drops the receiver: stop reading.
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// The answer, page by page.
struct Pages {
    store: Store,
    /// (device id, owner, device name); `None`: nothing to read.
    target: Option<(i64, String, String)>,
    page: Page,
    /// Rows still wanted (`limit`).
    remaining: Option<i64>,
    writer: Writer,
    started: bool,
    done: bool,
}

impl Pages {
    /// The text of the next page (the first with the format's head, the last with its tail).
    async fn next_chunk(&mut self) -> mytracks_store::Result<String> {
        let mut out = String::new();
        if !self.started {
            self.started = true;
            self.writer.start(&mut out);
        }
        let wanted = self.remaining.map_or(MAX_PAGE, |r| r.min(MAX_PAGE));
        let rows = match (&self.target, wanted > 0) {
            (Some((device_id, _, _)), true) => {
                self.page.device_id = *device_id;
                self.page.size = wanted;
                self.store.location_page(&self.page).await?
            }
            _ => Vec::new(),
        };
        if let Some((_, owner, device)) = &self.target {
            for row in &rows {
                let mut object = item(&row.raw, row.lat, row.lon, row.tst, owner, device);
                // The Recorder's time of the `.rec` line, which for a location is its `tst`.
                if let Some(isotst) = object.get("isotst").cloned() {
                    object.insert("isorcv".into(), isotst);
                }
                self.writer.item(object, &mut out);
            }
        }
        if let Some(last) = rows.last() {
            self.page.after = Some((last.tst, last.id));
        }
        if let Some(remaining) = &mut self.remaining {
            *remaining -= rows.len() as i64;
        }
        if (rows.len() as i64) < wanted || self.remaining == Some(0) || rows.is_empty() {
            self.writer.finish(&mut out);
            self.done = true;
        }
        Ok(out)
    }
}

/// C's `atoi`: leading whitespace, a sign, digits; 0 when there are none.
fn atoi(text: &str) -> i64 {
    let text = text.trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .take(18)
        .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'))
        * sign
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_read_as_c_reads_them() {
        assert_eq!(super::atoi("25"), 25);
        assert_eq!(super::atoi(" 7abc"), 7);
        assert_eq!(super::atoi("abc"), 0);
        assert_eq!(super::atoi("-3"), -3);
        assert_eq!(
            super::atoi("99999999999999999999999"),
            999_999_999_999_999_999
        );
    }
}
