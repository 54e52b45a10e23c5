//! The page routes: an HTML shell per page, with the data every page needs at once (who is
//! logged in, the tile settings) as JSON, so the first paint needs no API round trip.
//!
//! Access is decided here, before any script runs: no session → `/login/?next=<path>`; the
//! admin panel → 403 for non-admins; the login page with a session → straight to `next`.

use super::assets;
use crate::api::auth::Auth;
use crate::state::HttpState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::json;

/// One page of the UI.
pub struct Page {
    /// The canonical path (with its trailing slash; the bare form redirects here).
    pub path: &'static str,
    /// The esbuild entry point (`web/src/pages/<bundle>.ts`).
    pub bundle: &'static str,
    pub title: &'static str,
    /// Whether only admins may open it.
    pub admin: bool,
}

const fn page(path: &'static str, bundle: &'static str, title: &'static str) -> Page {
    Page {
        path,
        bundle,
        title,
        admin: false,
    }
}

/// Every page; the paths are the original My Tracks ones.
pub const PAGES: &[Page] = &[
    page("/", "map", "Map"),
    page("/login/", "login", "Log in"),
    page("/history/", "history", "History"),
    page("/profile/", "profile", "Profile"),
    Page {
        admin: true,
        ..page("/admin-panel/", "admin", "Admin panel")
    },
    page("/about/", "about", "About & Setup"),
    page("/console/", "console", "MQTT console"),
    page("/devices/", "devices", "Devices"),
];

/// The routes of [`PAGES`] (each also without its trailing slash, redirecting).
pub fn routes() -> Router<HttpState> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(
            page.path,
            get(
                move |state: State<HttpState>,
                      caller: Option<Auth>,
                      uri: Uri,
                      query: Query<NextQuery>| {
                    show(page, state, caller, uri, query)
                },
            ),
        );
        if let Some(bare) = page.path.strip_suffix('/').filter(|p| !p.is_empty()) {
            router = router.route(
                bare,
                get(move |uri: Uri| async move {
                    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                    Redirect::permanent(&format!("{}{query}", page.path))
                }),
            );
        }
    }
    router
}

/// `?next=` of the login page.
#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path on this site may be a redirect target (`/x`, not `//evil.example` or
/// `/\evil.example`, which browsers treat as another host).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

async fn show(
    page: &'static Page,
    State(state): State<HttpState>,
    caller: Option<Auth>,
    uri: Uri,
    Query(query): Query<NextQuery>,
) -> Response {
    let user = caller.map(|Auth(c)| c.user);
    if page.bundle == "login" {
        if user.is_some() {
            return no_store(Redirect::to(safe_next(query.next.as_deref())).into_response());
        }
    } else if user.is_none() {
        let here = uri
            .path_and_query()
            .map_or(page.path, |p| p.as_str())
            .to_owned();
        let target = format!(
            "/login/?next={}",
            utf8_percent_encode(&here, NON_ALPHANUMERIC)
        );
        return no_store(Redirect::to(&target).into_response());
    }
    if page.admin && !user.as_ref().is_some_and(|u| u.is_admin) {
        return forbidden(&state);
    }
    let mut boot = json!({
        "page": page.bundle,
        "version": mytracks_app::VERSION,
        "user": user.as_ref().map(|u| json!({
            "id": u.id,
            "username": u.username,
            "first_name": u.first_name,
            "is_admin": u.is_admin,
        })),
        "tile_url": state.web.settings.tile_url,
        "tile_attribution": state.web.settings.tile_attribution,
    });
    if let (Some(user), "console" | "devices") = (&user, page.bundle) {
        boot["mqtt"] = console_settings(&state, user).await;
    }
    html(
        StatusCode::OK,
        &state,
        &shell(page, &boot),
        page.bundle == "console",
    )
}

/// The console's connection settings: where MQTT over WebSocket is served (`/mqtt` on this
/// origin; the dedicated listeners too, when configured), and topic filters worth a click (the
/// user's own OwnTracks topics, friends' locations, each of their IoT devices).
async fn console_settings(state: &HttpState, user: &mytracks_store::User) -> serde_json::Value {
    let ports = state.web.current_ports();
    let base = state.iot.base_topic();
    let mut suggestions = vec![
        format!("owntracks/{}/#", user.username),
        "owntracks/+/+".to_owned(),
    ];
    match state.accounts.store().iot_device_ids(user.id, 20).await {
        Ok(ids) => suggestions.extend(ids.iter().map(|id| format!("{base}/devices/{id}/#"))),
        Err(error) => tracing::warn!("console page: cannot list IoT devices: {error}"),
    }
    json!({
        "path": "/mqtt",
        "ws_port": ports.mqtt_ws,
        "wss_port": ports.mqtt_wss,
        "tcp_port": ports.mqtt,
        "iot_base_topic": base,
        "suggestions": suggestions,
    })
}

/// The HTML of `page`: its style sheet, its module script and the boot data.
fn shell(page: &Page, boot: &serde_json::Value) -> String {
    let css = assets::entry(page.bundle, "css")
        .map(|a| format!("<link rel=\"stylesheet\" href=\"/static/{}\">", a.name))
        .unwrap_or_default();
    let script = assets::entry(page.bundle, "js")
        .map(|a| {
            format!(
                "<script type=\"module\" src=\"/static/{}\"></script>",
                a.name
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · mytracks</title>\n\
         <link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\n{css}\n{script}\n</head>\n\
         <body data-page=\"{bundle}\">\n\
         <script type=\"application/json\" id=\"boot\">{boot}</script>\n\
         <noscript>mytracks needs JavaScript.</noscript>\n</body>\n</html>\n",
        title = page.title,
        bundle = page.bundle,
        boot = script_json(boot),
    )
}

/// JSON safe inside `<script>`: no `</script>`, no HTML comment openers.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The admin panel for a non-admin: a plain page saying so.
fn forbidden(state: &HttpState) -> Response {
    let css = assets::entry("login", "css")
        .map(|a| format!("<link rel=\"stylesheet\" href=\"/static/{}\">", a.name))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Admins only · mytracks</title>\n{css}\n</head>\n<body>\n<main class=\"narrow\">\n\
         <h1>Admins only</h1>\n<p>This page is for administrators.</p>\n\
         <p><a href=\"/\">Back to the map</a></p>\n</main>\n</body>\n</html>\n"
    );
    html(StatusCode::FORBIDDEN, state, &body, false)
}

/// An HTML answer with the headers every page gets: never cached (it names the user), a
/// Content-Security-Policy allowing only this origin (plus the tile server for images; for
/// the MQTT `console`, its broker's WebSocket origin if elsewhere and blob workers), no
/// framing.
fn html(status: StatusCode, state: &HttpState, body: &str, console: bool) -> Response {
    let settings = &state.web.settings;
    let tiles = settings
        .tile_source()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    let broker = match (console, settings.console_websocket_origin()) {
        (true, Some(origin)) => format!(" {origin}"),
        _ => String::new(),
    };
    let csp = format!(
        "default-src 'self'; img-src 'self' data: blob:{tiles}; style-src 'self'; \
         script-src 'self'; connect-src 'self'{broker}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    // MQTT.js keeps its keep-alive timer in a worker (made from a blob), so that a background
    // tab's throttled timers do not cost the connection.
    let csp = match console {
        true => format!("{csp}; worker-src 'self' blob:"),
        false => csp,
    };
    let mut response = (status, body.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_this_site() {
        assert_eq!(safe_next(Some("/history/?x=1")), "/history/?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\nx")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn boot_json_cannot_close_the_script() {
        let text = script_json(&json!({ "name": "</script><script>alert(1)</script>" }));
        assert!(!text.contains('<'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script>");
    }
}
