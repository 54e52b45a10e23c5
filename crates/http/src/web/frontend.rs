//! The real OwnTracks Frontend (a built `dist/`, 2.15.x) at `/frontend/`, on this origin, so
//! that the session cookie authenticates its calls to the Recorder API (`/api/0/`, `/ws/last`).
//!
//! The binary reads the directory (`[web] owntracks_frontend_dir`) at start into a
//! [`FrontendBundle`] handed over in [`super::WebSettings`]: this crate reads no file. Only
//! `config/config.js` is never the bundle's: mytracks generates it (`router.basePath`
//! `/frontend/`, the map tiles of `[web]`). The Frontend's own files are served unmodified.
//!
//! - `/frontend` → 308 `/frontend/`; `/frontend/`, `/frontend/index.html` and any unknown path
//!   that names no file (no `.` in its last segment, outside `assets/`) → `index.html`, with a
//!   session only (else 302 to the login page, which comes back here).
//! - Files need no session (nothing in them is private): `assets/*` (content-hashed names)
//!   cached for a year, the rest revalidated (`no-cache`), `config/config.js` `no-store`.
//! - `index.html` gets its own Content-Security-Policy: the bundle's Vue components inject
//!   `<style>` elements, so `style-src 'unsafe-inline'`. Scripts stay `'self'` only, without
//!   `'unsafe-eval'`: the bundle calls no `eval`; one library probes for the global object
//!   with `new Function("return this")()` inside try/catch, which the policy refuses (the
//!   browser reports it) and which then falls back to `window` (tested in Chromium).

use super::WebSettings;
use crate::api::auth::Auth;
use crate::state::HttpState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::collections::HashMap;
use std::fmt;

/// The largest file a bundle may hold (the Frontend's biggest, its script, is ~0.6 MB).
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The most bytes a bundle may hold in all (it is kept in memory).
pub const MAX_TOTAL_BYTES: u64 = 128 << 20;
/// The most files a bundle may hold (a build has about ten).
pub const MAX_FILES: usize = 4096;
/// The longest path of a file inside the bundle, in bytes.
pub const MAX_PATH_BYTES: usize = 512;

/// Where the Frontend is served.
pub const BASE_PATH: &str = "/frontend/";

/// Why a bundle cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("{0}: not a plain relative path (letters, digits, `._-~@+`, `/` between names)")]
    BadPath(String),
    #[error("{path}: {bytes} bytes, more than the {MAX_FILE_BYTES} a file may have")]
    FileTooLarge { path: String, bytes: u64 },
    #[error("more than {MAX_TOTAL_BYTES} bytes in all")]
    TooLarge,
    #[error("more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("no index.html")]
    NoIndex,
}

/// One file of the bundle.
#[derive(Clone, PartialEq, Eq)]
struct BundleFile {
    body: Bytes,
    content_type: &'static str,
}

/// The Frontend's files by their path inside the build (`index.html`, `assets/index-X.js`).
#[derive(Clone, PartialEq, Eq)]
pub struct FrontendBundle {
    files: HashMap<String, BundleFile>,
    total: u64,
    limits: Limits,
}

/// What a bundle may hold: [`MAX_FILE_BYTES`], [`MAX_TOTAL_BYTES`], [`MAX_FILES`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Limits {
    file_bytes: u64,
    total_bytes: u64,
    files: usize,
}

impl fmt::Debug for FrontendBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontendBundle")
            .field("files", &self.files.len())
            .field("bytes", &self.total)
            .finish()
    }
}

impl FrontendBundle {
    /// An empty bundle, to [`add`](Self::add) files to.
    pub fn builder() -> FrontendBundle {
        FrontendBundle::with_limits(Limits {
            file_bytes: MAX_FILE_BYTES,
            total_bytes: MAX_TOTAL_BYTES,
            files: MAX_FILES,
        })
    }

    fn with_limits(limits: Limits) -> FrontendBundle {
        FrontendBundle {
            files: HashMap::new(),
            total: 0,
            limits,
        }
    }

    /// Adds the file at `path` (relative, `/`-separated) with `body`, within the limits.
    pub fn add(&mut self, path: &str, body: Vec<u8>) -> Result<(), BundleError> {
        if !plain_path(path) {
            return Err(BundleError::BadPath(path.escape_debug().to_string()));
        }
        let bytes = body.len() as u64;
        if bytes > self.limits.file_bytes {
            return Err(BundleError::FileTooLarge {
                path: path.to_owned(),
                bytes,
            });
        }
        if self.files.len() >= self.limits.files {
            return Err(BundleError::TooManyFiles);
        }
        if self.total + bytes > self.limits.total_bytes {
            return Err(BundleError::TooLarge);
        }
        self.total += bytes;
        let file = BundleFile {
            body: Bytes::from(body),
            content_type: content_type(path),
        };
        if let Some(replaced) = self.files.insert(path.to_owned(), file) {
            self.total -= replaced.body.len() as u64;
        }
        Ok(())
    }

    /// The bundle, once it holds an `index.html`.
    pub fn finish(self) -> Result<FrontendBundle, BundleError> {
        match self.files.contains_key("index.html") {
            true => Ok(self),
            false => Err(BundleError::NoIndex),
        }
    }

    /// How many files and bytes it holds.
    pub fn size(&self) -> (usize, u64) {
        (self.files.len(), self.total)
    }
}

/// A path made of names of letters, digits and `._-~@+`, none of them `.` or `..` or empty.
fn plain_path(path: &str) -> bool {
    path.len() <= MAX_PATH_BYTES
        && path.split('/').all(|name| {
            !name.is_empty()
                && name != "."
                && name != ".."
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-~@+".contains(c))
        })
}

/// The media type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The routes under `/frontend`, when a bundle is configured (else none: 404 as any path).
pub fn routes(settings: &WebSettings) -> Router<HttpState> {
    if settings.owntracks_frontend.is_none() {
        return Router::new();
    }
    Router::new()
        .route(
            "/frontend",
            get(|uri: Uri| async move {
                let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                Redirect::permanent(&format!("{BASE_PATH}{query}"))
            }),
        )
        .route("/frontend/", get(index))
        .route("/frontend/{*path}", get(file))
}

/// `GET /frontend/`.
async fn index(State(state): State<HttpState>, caller: Option<Auth>, uri: Uri) -> Response {
    match state.web.settings.owntracks_frontend.as_deref() {
        Some(bundle) => index_page(bundle, &state.web.settings, caller.is_some(), &uri),
        None => not_found(),
    }
}

/// `GET /frontend/{path}`: the generated configuration, a file of the bundle, or the page.
async fn file(
    State(state): State<HttpState>,
    caller: Option<Auth>,
    uri: Uri,
    Path(path): Path<String>,
) -> Response {
    let settings = &state.web.settings;
    let Some(bundle) = settings.owntracks_frontend.as_deref() else {
        return not_found();
    };
    if path == "config/config.js" {
        return config_script(settings);
    }
    if path == "index.html" {
        return index_page(bundle, settings, caller.is_some(), &uri);
    }
    if let Some(file) = bundle.files.get(&path) {
        return serve_file(&path, file);
    }
    // `..`, empty names, odd characters: no file, and no route of the page either.
    let names_a_file = !plain_path(&path)
        || path.starts_with("assets/")
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'));
    match names_a_file {
        true => not_found(),
        // A path of the single-page application (history mode): the page routes it.
        false => index_page(bundle, settings, caller.is_some(), &uri),
    }
}

/// `index.html` to a caller with a session; the login page (coming back here) otherwise.
fn index_page(
    bundle: &FrontendBundle,
    settings: &WebSettings,
    signed_in: bool,
    uri: &Uri,
) -> Response {
    if !signed_in {
        let here = uri.path_and_query().map_or(BASE_PATH, |p| p.as_str());
        let target = format!(
            "/login/?next={}",
            utf8_percent_encode(here, NON_ALPHANUMERIC)
        );
        let mut response = Redirect::to(&target).into_response();
        set(&mut response, header::CACHE_CONTROL, "no-store");
        return response;
    }
    let Some(page) = bundle.files.get("index.html") else {
        return not_found();
    };
    let mut response = (StatusCode::OK, page.body.clone()).into_response();
    set(
        &mut response,
        header::CONTENT_TYPE,
        "text/html; charset=utf-8",
    );
    set(&mut response, header::CACHE_CONTROL, "no-cache");
    set(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(&mut response, header::X_FRAME_OPTIONS, "DENY");
    set(&mut response, header::REFERRER_POLICY, "same-origin");
    if let Ok(value) = HeaderValue::from_str(&page_policy(settings)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The Content-Security-Policy of the Frontend's page.
pub fn page_policy(settings: &WebSettings) -> String {
    let tiles = settings
        .tile_source()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data: blob:{tiles}; style-src 'self' 'unsafe-inline'; \
         script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `config/config.js`: the Frontend's settings for this server, merged by the Frontend over
/// its defaults (the API stays at this origin, its default).
fn config_script(settings: &WebSettings) -> Response {
    let config = serde_json::json!({
        "router": { "basePath": BASE_PATH },
        "map": {
            "url": settings.tile_url,
            "attribution": settings.tile_attribution,
        },
    });
    let body = format!(
        "window.owntracks = window.owntracks || {{}};\nwindow.owntracks.config = {config};\n"
    );
    let mut response = (StatusCode::OK, body).into_response();
    set(
        &mut response,
        header::CONTENT_TYPE,
        "text/javascript; charset=utf-8",
    );
    set(&mut response, header::CACHE_CONTROL, "no-store");
    set(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    response
}

/// A file of the bundle as it is.
fn serve_file(path: &str, file: &BundleFile) -> Response {
    let cache = match path.starts_with("assets/") {
        // Vite names them by content hash: a new build has new names.
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    let mut response = (StatusCode::OK, file.body.clone()).into_response();
    set(&mut response, header::CONTENT_TYPE, file.content_type);
    set(&mut response, header::CACHE_CONTROL, cache);
    set(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Opened on their own (an SVG, say), files may run nothing.
    set(
        &mut response,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
    );
    response
}

fn set(response: &mut Response, name: header::HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "not found" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
