//! API errors and their JSON bodies. The shape follows the original My Tracks API:
//! `{"error": "message"}`, plus, for a field that failed validation, `"field": NAME` and the
//! Django REST style `NAME: ["message"]`, so both kinds of client find it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mytracks_app::accounts::AccountError;
use mytracks_store::StoreError;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub enum ApiError {
    /// No valid credentials (401).
    Unauthorized(String),
    /// Authenticated but not allowed (403).
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    /// A field is invalid (400), named for the client.
    Invalid {
        field: String,
        message: String,
    },
    /// The request as a whole is malformed (400).
    BadRequest(String),
    /// Too many failed logins: retry after this many seconds (429).
    TooManyRequests {
        retry_after: u64,
    },
    /// The database is down or full (503): nothing was changed.
    Unavailable(String),
    /// No password check could start in time (503): retry after this many seconds.
    Busy {
        retry_after: u64,
    },
    /// A limit of work running at once was reached (429 for the caller's own share, 503 for
    /// the server's): retry after this many seconds.
    Later {
        status: StatusCode,
        message: String,
        retry_after: u64,
    },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn unauthenticated() -> Self {
        ApiError::Unauthorized("Authentication credentials were not provided.".into())
    }

    pub fn admin_only() -> Self {
        ApiError::Forbidden("You do not have permission to perform this action.".into())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Later { status, .. } => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = Map::new();
        match &self {
            ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::BadRequest(m)
            | ApiError::Unavailable(m) => {
                body.insert("error".into(), m.clone().into());
            }
            ApiError::Invalid { field, message } => {
                body.insert("error".into(), message.clone().into());
                body.insert("field".into(), field.clone().into());
                body.insert(field.clone(), json!([message]));
            }
            ApiError::TooManyRequests { retry_after } => {
                body.insert(
                    "error".into(),
                    format!("Too many failed logins; try again in {retry_after} s").into(),
                );
                body.insert("retry_after".into(), (*retry_after).into());
            }
            ApiError::Busy { retry_after } => {
                body.insert(
                    "error".into(),
                    format!("Too many logins are being checked; try again in {retry_after} s")
                        .into(),
                );
                body.insert("retry_after".into(), (*retry_after).into());
            }
            ApiError::Later {
                message,
                retry_after,
                ..
            } => {
                body.insert("error".into(), message.clone().into());
                body.insert("retry_after".into(), (*retry_after).into());
            }
        }
        let mut response = (status, Json(Value::Object(body))).into_response();
        match self {
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"mytracks\""),
                );
            }
            ApiError::TooManyRequests { retry_after }
            | ApiError::Busy { retry_after }
            | ApiError::Later { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<mytracks_app::MqttError> for ApiError {
    fn from(error: mytracks_app::MqttError) -> ApiError {
        ApiError::Unavailable(error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound("Not found".into()),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            other => {
                tracing::error!("database error: {other}");
                ApiError::Unavailable(format!("The database is unavailable: {other}"))
            }
        }
    }
}

impl From<mytracks_app::accounts::guard::Refusal> for ApiError {
    fn from(refusal: mytracks_app::accounts::guard::Refusal) -> Self {
        let retry_after = refusal.retry_after_secs();
        match refusal {
            mytracks_app::accounts::guard::Refusal::TooManyAttempts { .. } => {
                ApiError::TooManyRequests { retry_after }
            }
            mytracks_app::accounts::guard::Refusal::Busy { .. } => ApiError::Busy { retry_after },
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Invalid { field, message } => ApiError::invalid(field, message),
            AccountError::NotFound(m) => ApiError::NotFound(m),
            AccountError::Conflict(m) => ApiError::Conflict(m),
            AccountError::Refused(m) => ApiError::BadRequest(m),
            AccountError::Store(e) => e.into(),
            AccountError::Throttled(refusal) => refusal.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
