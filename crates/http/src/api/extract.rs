//! What handlers take from a request besides the state: a JSON body whose errors are JSON
//! ([`JsonBody`]), ids from the path ([`parse_id`]), query-string numbers, limits and time
//! windows, and optional-or-null JSON fields ([`double_option`]).

use super::error::{ApiError, ApiResult};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Largest JSON body accepted.
const MAX_BODY: usize = 64 * 1024;

/// A JSON request body whose errors are JSON too, naming the offending field: `{"error":
/// "invalid type: integer, expected a string", "field": "email", ...}`. An empty body reads
/// as `{}`, so optional-only requests need no body.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or_default().trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        let _ = state;
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::BadRequest(format!("The body is unreadable or over {MAX_BODY} bytes."))
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if json_type == Some(false) {
                return Err(ApiError::BadRequest(
                    "Send JSON with Content-Type: application/json.".into(),
                ));
            }
            &bytes
        };
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(JsonBody(value)),
            Err(error) => {
                let path = error.path().to_string();
                let inner = error.into_inner();
                let message = inner.to_string();
                // serde names a missing field only in its message.
                let field = match message.strip_prefix("missing field `") {
                    Some(rest) => rest.split('`').next().unwrap_or_default().to_owned(),
                    None if path != "." => path,
                    None => {
                        return Err(ApiError::BadRequest(format!("Invalid JSON: {message}")));
                    }
                };
                Err(ApiError::invalid(field, message))
            }
        }
    }
}

/// A numeric id from the path; anything else cannot name a row (404, not 500).
pub fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("Expected a numeric id, got {text:?}")))
}

/// An optional number from the query string (`field` names it in the error); decimals are
/// cut to whole seconds.
pub fn number(field: &'static str, value: Option<&str>) -> ApiResult<Option<i64>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| Some(n as i64))
            .ok_or_else(|| {
                ApiError::invalid(field, format!("{field} must be a number (Unix seconds)"))
            }),
    }
}

/// `?limit=`: `default` when absent, else 1 to `max`.
pub fn limit(value: Option<&str>, default: i64, max: i64) -> ApiResult<i64> {
    match number("limit", value)? {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {max}"),
        )),
    }
}

/// A window's bounds must not be reversed.
pub fn check_window(start: Option<i64>, end: Option<i64>) -> ApiResult<()> {
    match (start, end) {
        (Some(s), Some(e)) if e < s => Err(ApiError::invalid(
            "end_time",
            "end_time must not be before start_time",
        )),
        _ => Ok(()),
    }
}

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}
