//! `/api/setup/...`: what a person needs to point a phone at this server, for the About &
//! Setup page. The endpoints are the running server's (ports chosen by the OS included) as
//! seen through the host name the browser used, and a device configuration is rendered by the
//! `mytracks-owntracks` crate as the `.otrc` object and the `owntracks:///config?inline=` link
//! a QR code carries.

use super::auth::SignedIn;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::views::CredentialView;
use crate::state::HttpState;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use mytracks_app::time::timestamp;
use mytracks_owntracks::DeviceConfig;
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/setup/", get(show)),
        ("/api/account/certificate/status/", get(certificate_status)),
        ("/api/setup/device-config/", post(device_config)),
    ]
}

/// How the browser reached us: scheme, host name (no port) and `host[:port]`.
struct Origin {
    https: bool,
    host: String,
    authority: String,
}

impl Origin {
    /// From `X-Forwarded-Host`/`Host` and `X-Forwarded-Proto`; the listener's own address
    /// when there is no header (HTTP/1.0 clients).
    fn of(headers: &HeaderMap, http_port: Option<u16>) -> Origin {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let https = text("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let authority = text("x-forwarded-host")
            .or_else(|| text(header::HOST.as_str()))
            .unwrap_or_else(|| match http_port {
                Some(port) => format!("localhost:{port}"),
                None => "localhost".into(),
            });
        Origin {
            https,
            host: host_part(&authority).to_owned(),
            authority,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority)
    }

    fn ws_url(&self, path: &str) -> String {
        let scheme = if self.https { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

/// `host` of `host:port`, `[v6]:port`, `host` or `[v6]` (brackets kept: it is a URL host).
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// `GET /api/setup/`: the server's endpoints and the active CA's certificate (public data
/// phones need to trust the TLS listener).
pub async fn show(
    SignedIn { state, caller }: SignedIn,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let ports = state.web.current_ports();
    let origin = Origin::of(&headers, ports.http);
    let ca = state.pki.active_ca().await?.map(|ca| {
        json!({
            "common_name": ca.common_name,
            "fingerprint": ca.fingerprint,
            "not_valid_after": timestamp(ca.not_after),
            "certificate_pem": ca.cert_pem,
        })
    });
    Ok(Json(json!({
        "version": mytracks_app::VERSION,
        "username": caller.user.username,
        "host": origin.host,
        "http_url": origin.url("/"),
        "owntracks_http_url": origin.url("/pub"),
        "websocket_url": origin.ws_url("/mqtt"),
        "live_feed_url": origin.ws_url("/ws/locations/"),
        "ports": ports,
        "ca": ca,
    })))
}

/// `GET /api/account/certificate/status/`: the caller's valid client certificate (without
/// the key) and whether there is a CA to issue one, answered 200 either way, so a page can ask
/// without a 404 in the browser's console.
pub async fn certificate_status(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Value>> {
    let ca = state.pki.active_ca().await?;
    let certificate = state.pki.current_client(&caller.user).await?;
    Ok(Json(json!({
        "ca": ca.map(|ca| json!({ "common_name": ca.common_name, "fingerprint": ca.fingerprint })),
        "certificate": certificate.map(|c| json!({
            "id": c.id,
            "common_name": c.common_name,
            "serial_number": c.serial,
            "fingerprint": c.fingerprint,
            "not_valid_before": timestamp(c.not_before),
            "not_valid_after": timestamp(c.not_after),
        })),
    })))
}

#[derive(Deserialize)]
pub struct DeviceConfigRequest {
    /// The device name: the last level of its topic.
    #[serde(default)]
    device: String,
    /// `mqtt` (default), `mqtt-tls` or `http`.
    mode: Option<String>,
    /// The tracker id (one or two letters or digits) others' maps show.
    tid: Option<String>,
    /// Generate a device credential and put its password in the configuration.
    #[serde(default)]
    credential: bool,
}

/// `POST /api/setup/device-config/`: a device configuration for the caller, as the `.otrc`
/// object and the inline link. With `credential: true` a new device credential is created
/// and its password included: this answer is the only place it appears.
pub async fn device_config(
    SignedIn { state, caller }: SignedIn,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DeviceConfigRequest>,
) -> ApiResult<Response> {
    let device = body.device.trim();
    if device.is_empty() {
        return Err(ApiError::invalid("device", "device is required"));
    }
    if mytracks_owntracks::check_device_name(device).is_err() {
        return Err(ApiError::invalid(
            "device",
            "device must be at most 100 characters without '/', '+', '#' or control characters",
        ));
    }
    let tid = match body.tid.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) if t.chars().count() <= 2 && t.chars().all(char::is_alphanumeric) => {
            Some(t.to_owned())
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "tid",
                "tid must be one or two letters or digits",
            ))
        }
    };
    let ports = state.web.current_ports();
    let origin = Origin::of(&headers, ports.http);
    let off = |what: &str| ApiError::invalid("mode", format!("the {what} listener is off"));
    let mut config = match body.mode.as_deref().unwrap_or("mqtt") {
        "mqtt" => DeviceConfig::mqtt(&origin.host, ports.mqtt.ok_or_else(|| off("MQTT"))?, false),
        "mqtt-tls" => DeviceConfig::mqtt(
            &origin.host,
            ports.mqtt_tls.ok_or_else(|| off("MQTT TLS"))?,
            true,
        ),
        "http" => DeviceConfig::http(origin.url("/pub")),
        _ => {
            return Err(ApiError::invalid(
                "mode",
                "mode must be mqtt, mqtt-tls or http",
            ))
        }
    };
    let credential = match body.credential {
        false => None,
        true => Some(
            state
                .accounts
                .create_credential(&caller.user, device, "setup page", None)
                .await?,
        ),
    };
    config.username = Some(caller.user.username.clone());
    config.password = credential.as_ref().map(|(_, password)| password.clone());
    config.device_id = Some(device.to_owned());
    config.tid = tid;
    let answer = json!({
        "configuration": config.to_otrc(),
        "inline_url": config.inline_url(),
        "file_name": format!("{}.otrc", device.replace(|c: char| !c.is_alphanumeric() && c != '-' && c != '_', "_")),
        "credential": credential.map(|(c, password)| CredentialView::new(&c, &caller.user.username, Some(password))),
    });
    let mut response = Json(answer).into_response();
    // It may hold a password: keep it out of every cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_an_authority() {
        assert_eq!(host_part("example.org:8080"), "example.org");
        assert_eq!(host_part("example.org"), "example.org");
        assert_eq!(host_part("[::1]:8080"), "[::1]");
        assert_eq!(host_part("[::1]"), "[::1]");
        assert_eq!(host_part("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn origin_prefers_forwarded_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("10.0.0.2:8080"));
        let origin = Origin::of(&headers, Some(8080));
        assert_eq!(origin.url("/pub"), "http://10.0.0.2:8080/pub");
        assert_eq!(origin.host, "10.0.0.2");
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("tracks.example.org"),
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let origin = Origin::of(&headers, Some(8080));
        assert_eq!(origin.url("/pub"), "https://tracks.example.org/pub");
        assert_eq!(origin.ws_url("/mqtt"), "wss://tracks.example.org/mqtt");
        let origin = Origin::of(&HeaderMap::new(), Some(9000));
        assert_eq!(origin.url("/"), "http://localhost:9000/");
    }
}
