//! The bundled front end, embedded at compile time: `build.rs` runs esbuild into
//! `OUT_DIR/web` and writes `OUT_DIR/web_assets.rs`, one `include_bytes!` per file, so the
//! binary needs nothing on disk at run time.
//!
//! Bundled file names carry a content hash (`map-3FJ2KQ.js`), so they are cached for a year
//! and never revalidated; a new build has new names. Other files (the favicon) are cached
//! briefly.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub struct Asset {
    /// The file name under `/static/`.
    pub name: &'static str,
    pub content_type: &'static str,
    /// Whether the name carries a content hash (then it never changes).
    pub hashed: bool,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The embedded file called `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The bundled `page` file with extension `ext` (`map-HASH.js`, `map-HASH.css`), if built.
pub fn entry(page: &str, ext: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| {
        a.hashed
            && a.name
                .strip_suffix(ext)
                .and_then(|rest| rest.strip_suffix('.'))
                .and_then(|rest| rest.rsplit_once('-'))
                .is_some_and(|(name, _hash)| name == page)
    })
}

/// `GET /static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = find(&file) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found",
        )
            .into_response();
    };
    let cache = if asset.hashed {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_a_script_and_a_style_sheet() {
        for page in super::super::pages::PAGES {
            let script = entry(page.bundle, "js").unwrap_or_else(|| panic!("{}", page.bundle));
            assert_eq!(script.content_type, "text/javascript; charset=utf-8");
            let css = entry(page.bundle, "css").unwrap_or_else(|| panic!("{}", page.bundle));
            assert_eq!(css.content_type, "text/css; charset=utf-8");
        }
        let icon = find("favicon.svg").expect("favicon");
        assert!(!icon.hashed);
        // Leaflet's marker images are bundled, not fetched from a CDN.
        assert!(ASSETS
            .iter()
            .any(|a| a.name.starts_with("marker-icon-") && a.content_type == "image/png"));
    }
}
