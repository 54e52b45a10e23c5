//! How the Recorder reads a request's parameters, and its times.
//!
//! Parameters come from the query string or, for a POST, from a form body (at most
//! [`MAX_FORM_BODY`]); an `X-Limit-<Name>` header wins over both (Recorder `field()`), and
//! values read that way are lowercased, as the Recorder does, except `fields` (the Recorder
//! lowercases it too, so that `fields=SSID` matches nothing there; here it matches). `limit`
//! and `format` are parameters only. An empty value counts as absent.
//!
//! Times (`from`, `to`): the Recorder's formats in its order (`%Y-%m-%dT%H:%M:%S`, `…T%H:%M`,
//! `…T%H`, the same with a lowercase `t`, `%Y-%m-%d`, `%Y-%m`), read as UTC; what follows a
//! match is ignored (strptime), so `…:00Z` and `….123Z` work and an offset is ignored. Day 0
//! is day 1. Defaults: `from` 6 hours before now, `to` now.

use super::error_answer;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;

/// The largest form body read from a POST.
pub const MAX_FORM_BODY: usize = 64 * 1024;

/// The Recorder's default window: this many hours before now (`DEFAULT_HISTORY_HOURS`).
pub const DEFAULT_HISTORY_HOURS: i64 = 6;

/// The parameters of one request to the Recorder's API.
#[derive(Debug, Default)]
pub struct Params {
    headers: HeaderMap,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let query = parts
            .uri
            .query()
            .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
            .unwrap_or_default();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let form = match parts.method == Method::POST && is_form {
            true => {
                let bytes = axum::body::to_bytes(body, MAX_FORM_BODY)
                    .await
                    .map_err(|_| {
                        error_answer(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!("the form body is unreadable or over {MAX_FORM_BODY} bytes"),
                        )
                    })?;
                serde_urlencoded::from_bytes(&bytes).map_err(|_| {
                    error_answer(StatusCode::BAD_REQUEST, "the form body is not urlencoded")
                })?
            }
            false => Vec::new(),
        };
        Ok(Params {
            headers: parts.headers,
            query,
            form,
        })
    }
}

impl Params {
    /// For tests: parameters from a query string and headers.
    pub fn from_parts(query: &str, headers: HeaderMap) -> Params {
        Params {
            headers,
            query: serde_urlencoded::from_str(query).unwrap_or_default(),
            form: Vec::new(),
        }
    }

    /// A parameter (query, then form body), not lowercased, never empty.
    pub fn parameter(&self, name: &str) -> Option<String> {
        let find = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        find(&self.query).or_else(|| find(&self.form))
    }

    /// Recorder `field()`: `X-Limit-<Name>` first, then the parameter; lowercased.
    pub fn field(&self, name: &str) -> Option<String> {
        self.field_as_sent(name).map(|v| v.to_lowercase())
    }

    /// [`Params::field`] without lowercasing (`fields`).
    pub fn field_as_sent(&self, name: &str) -> Option<String> {
        let header = format!("x-limit-{name}");
        self.headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| self.parameter(name))
    }

    /// `fields=a,b`: the members to keep, in order (`None`: all).
    pub fn fields(&self) -> Option<Vec<String>> {
        let fields: Vec<String> = self
            .field_as_sent("fields")?
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        (!fields.is_empty()).then_some(fields)
    }

    /// The window `(from, to)` in Unix seconds, both as given (the Recorder's bounds are
    /// exclusive; see [`exclusive`]).
    pub fn window(&self, now: i64) -> Result<(i64, i64), Impossible> {
        let from = match self.field("from") {
            None => now - DEFAULT_HISTORY_HOURS * 3600,
            Some(text) => parse_time(&text).ok_or(Impossible)?,
        };
        let to = match self.field("to") {
            None => now,
            Some(text) => parse_time(&text).ok_or(Impossible)?,
        };
        match from > to {
            true => Err(Impossible),
            false => Ok((from, to)),
        }
    }
}

/// A window the Recorder refuses: a time it cannot read, or `from` after `to`.
#[derive(Debug, PartialEq, Eq)]
pub struct Impossible;

impl axum::response::IntoResponse for Impossible {
    fn into_response(self) -> Response {
        error_answer(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "impossible date/time ranges",
        )
    }
}

/// The Recorder skips a point at `from` or `to` exactly: the inclusive bounds of a window.
pub fn exclusive(from: i64, to: i64) -> (i64, i64) {
    (from.saturating_add(1), to.saturating_sub(1))
}

/// A time in one of the Recorder's formats (see the module), as Unix seconds (UTC).
pub fn parse_time(text: &str) -> Option<i64> {
    let mut rest = text.as_bytes();
    let year = digits(&mut rest, 4)?;
    expect(&mut rest, b'-')?;
    let month = digits(&mut rest, 2)?;
    let day = match expect(&mut rest, b'-') {
        Some(()) => digits(&mut rest, 2)?,
        // `%Y-%m`: the day is 0, which the Recorder makes 1.
        None => 0,
    };
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if day > 0 && matches!(rest.first(), Some(b'T' | b't')) {
        let mut after_t = &rest[1..];
        if let Some(h) = digits(&mut after_t, 2) {
            hour = h;
            if expect(&mut after_t, b':').is_some() {
                if let Some(m) = digits(&mut after_t, 2) {
                    minute = m;
                    if expect(&mut after_t, b':').is_some() {
                        second = digits(&mut after_t, 2).unwrap_or(0);
                    }
                }
            }
        }
    }
    if !(1..=12).contains(&month) || day > 31 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day.max(1)).ok()?,
    )
    .ok()?;
    let midnight = date.midnight().assume_utc().unix_timestamp();
    Some(midnight + hour * 3600 + minute * 60 + second)
}

/// 1 to `max` ASCII digits (strptime reads at most the field's width).
fn digits(rest: &mut &[u8], max: usize) -> Option<i64> {
    let count = rest
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if count == 0 {
        return None;
    }
    let value = rest[..count]
        .iter()
        .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
    *rest = &rest[count..];
    Some(value)
}

fn expect(rest: &mut &[u8], byte: u8) -> Option<()> {
    match rest.first() {
        Some(b) if *b == byte => {
            *rest = &rest[1..];
            Some(())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn every_recorder_time_format() {
        let t = |s| parse_time(s);
        assert_eq!(t("2024-03-01T08:30:15"), Some(1_709_281_815));
        assert_eq!(t("2024-03-01t08:30:15"), Some(1_709_281_815));
        assert_eq!(t("2024-03-01T08:30:15Z"), Some(1_709_281_815));
        assert_eq!(t("2024-03-01T08:30:15.123Z"), Some(1_709_281_815));
        assert_eq!(t("2024-03-01T08:30:15+02:00"), Some(1_709_281_815));
        assert_eq!(t("2024-03-01T08:30"), Some(1_709_281_800));
        assert_eq!(t("2024-03-01t08"), Some(1_709_280_000));
        assert_eq!(t("2024-03-01"), Some(1_709_251_200));
        assert_eq!(t("2024-03-01T"), Some(1_709_251_200));
        assert_eq!(t("2024-03"), Some(1_709_251_200));
        assert_eq!(t("2024-3-1"), Some(1_709_251_200));
        for bad in [
            "",
            "2024",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            "2024-03-01T24",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_win_and_values_are_lowercased_except_fields() {
        let mut headers = HeaderMap::new();
        headers.insert("x-limit-user", HeaderValue::from_static("Bob"));
        headers.insert("x-limit-fields", HeaderValue::from_static("SSID,lat"));
        let params = Params::from_parts("user=alice&device=Phone&fields=x&limit=5", headers);
        assert_eq!(params.field("user").as_deref(), Some("bob"));
        assert_eq!(params.field("device").as_deref(), Some("phone"));
        assert_eq!(params.fields(), Some(vec!["SSID".into(), "lat".into()]));
        assert_eq!(params.parameter("limit").as_deref(), Some("5"));
        assert_eq!(params.field("from"), None);
    }

    #[test]
    fn windows_default_to_six_hours_and_refuse_reversed_ranges() {
        let none = Params::from_parts("", HeaderMap::new());
        assert_eq!(none.window(100_000).unwrap(), (100_000 - 21_600, 100_000));
        let reversed = Params::from_parts("from=2024-03-02&to=2024-03-01", HeaderMap::new());
        assert_eq!(reversed.window(0), Err(Impossible));
        let garbage = Params::from_parts("from=soon", HeaderMap::new());
        assert_eq!(garbage.window(0), Err(Impossible));
        assert_eq!(
            axum::response::IntoResponse::into_response(Impossible).status(),
            416
        );
        assert_eq!(exclusive(10, 20), (11, 19));
    }
}
