//! The web UI: the pages (`/`, `/login/`, `/history/`, `/profile/`, `/admin-panel/`,
//! `/about/`, `/console/`, `/devices/`) and their static files, all embedded in the binary.
//!
//! The front end lives in `web/` (TypeScript, bundled by esbuild from `build.rs`); here it is
//! only served. Each page is a small HTML shell naming its script and style sheet; the script
//! draws the page from the REST API. Pages need a session: without one they redirect to
//! `/login/?next=...`. Settings: `[web] tile_url` and `tile_attribution` (the map tiles are
//! the only thing the browser fetches from elsewhere). The OwnTracks Frontend, when
//! configured, is served at `/frontend/` ([`frontend`]).

mod assets;
pub mod frontend;
mod pages;
mod settings;

pub use settings::{
    WebSettings, DEFAULT_LIVE_FEED_IDLE_TIMEOUT_SECS, DEFAULT_LIVE_FEED_MAX_MESSAGE,
    DEFAULT_TILE_ATTRIBUTION, DEFAULT_TILE_URL,
};

use crate::state::HttpState;
use axum::routing::get;
use axum::Router;

/// The page routes and `/static/`. Pages see the caller through the API's session
/// resolution; static files need no login (the login page uses them too).
pub fn router(state: HttpState) -> Router<HttpState> {
    let pages = pages::routes()
        .merge(frontend::routes(&state.web.settings))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::api::auth::resolve,
        ));
    Router::new()
        .route("/static/{*file}", get(assets::serve))
        .merge(pages)
}
