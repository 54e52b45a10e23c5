use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

fn bundle() -> FrontendBundle {
    let mut bundle = FrontendBundle::builder();
    for (path, body) in [
        ("index.html", "<!doctype html><title>OwnTracks</title>"),
        ("assets/index-AbC1.js", "console.log(1)"),
        ("assets/index-AbC1.css", "body{}"),
        ("favicon.ico", "ico"),
        ("manifest.json", "{}"),
        (
            "config/config.js",
            "window.owntracks = {config: {evil: true}};",
        ),
    ] {
        bundle.add(path, body.as_bytes().to_vec()).unwrap();
    }
    bundle.finish().unwrap()
}

#[test]
fn only_plain_relative_paths_enter_a_bundle() {
    let mut b = FrontendBundle::builder();
    for bad in [
        "",
        "/index.html",
        "../x",
        "a/../b",
        "a/./b",
        "a//b",
        "a/",
        "a b",
        "a\\b",
        "é.js",
        "a\0b",
        "x?y",
        "%2e%2e",
    ] {
        assert!(
            matches!(b.add(bad, vec![]), Err(BundleError::BadPath(_))),
            "{bad:?}"
        );
    }
    assert!(b.add(&"a".repeat(MAX_PATH_BYTES + 1), vec![]).is_err());
    b.add("assets/index-BcWdboD1.js", vec![]).unwrap();
    b.add("icon-180x180.png", vec![]).unwrap();
    assert_eq!(b.clone().finish(), Err(BundleError::NoIndex));
    b.add("index.html", vec![]).unwrap();
    assert!(b.finish().is_ok());
}

#[test]
fn bundles_are_bounded() {
    let mut b = FrontendBundle::with_limits(Limits {
        file_bytes: 10,
        total_bytes: 25,
        files: 3,
    });
    assert_eq!(
        b.add("big", vec![0; 11]),
        Err(BundleError::FileTooLarge {
            path: "big".into(),
            bytes: 11
        })
    );
    b.add("a", vec![0; 10]).unwrap();
    b.add("b", vec![0; 10]).unwrap();
    // Replacing a file counts its new size only.
    b.add("b", vec![0; 5]).unwrap();
    assert_eq!(b.size(), (2, 15));
    assert_eq!(b.add("c", vec![0; 10]), Ok(()));
    assert_eq!(b.add("d", vec![0; 1]), Err(BundleError::TooManyFiles));
    let mut b = FrontendBundle::with_limits(Limits {
        file_bytes: 10,
        total_bytes: 25,
        files: 30,
    });
    b.add("a", vec![0; 10]).unwrap();
    b.add("b", vec![0; 10]).unwrap();
    assert_eq!(b.add("c", vec![0; 6]), Err(BundleError::TooLarge));
    assert_eq!(b.size(), (2, 20), "a refused file is not counted");
    assert_eq!(MAX_FILE_BYTES, 32 << 20, "the documented limit");
}

#[test]
fn media_types_by_extension() {
    for (path, want) in [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/index-X.js", "text/javascript; charset=utf-8"),
        ("assets/index-X.CSS", "text/css; charset=utf-8"),
        ("manifest.json", "application/json"),
        ("OwnTracks.svg", "image/svg+xml"),
        ("icon-180x180.png", "image/png"),
        ("favicon.ico", "image/x-icon"),
        ("LICENSE", "application/octet-stream"),
        ("BUILT-FROM.md", "text/plain; charset=utf-8"),
    ] {
        assert_eq!(content_type(path), want, "{path}");
    }
}

#[tokio::test]
async fn the_configuration_is_generated_from_the_tile_settings() {
    let settings = WebSettings::new(
        Some("https://{s}.tiles.example.org/{z}/{x}/{y}.png".into()),
        Some("&copy; \"Tiles\" </script><script>alert(1)</script>".into()),
    )
    .unwrap();
    let response = config_script(&settings);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let json = text
        .split_once("window.owntracks.config = ")
        .and_then(|(_, rest)| rest.trim_end().strip_suffix(';'))
        .expect(&text);
    let config: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "router": {"basePath": "/frontend/"},
            "map": {
                "url": "https://{s}.tiles.example.org/{z}/{x}/{y}.png",
                "attribution": "&copy; \"Tiles\" </script><script>alert(1)</script>",
            },
        })
    );
    assert!(text.starts_with("window.owntracks = window.owntracks || {};\n"));
}

#[test]
fn the_page_policy_allows_inline_styles_only_and_the_tiles() {
    let settings =
        WebSettings::new(Some("https://{s}.t.example/{z}/{x}/{y}.png".into()), None).unwrap();
    let policy = page_policy(&settings);
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(
        policy.contains("style-src 'self' 'unsafe-inline';"),
        "{policy}"
    );
    assert!(
        policy.contains("img-src 'self' data: blob: https://*.t.example;"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get(app: &Router, uri: &str) -> Answer {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn app(bundle: Option<FrontendBundle>) -> (Router, HttpState) {
    let mut state = crate::tests::state().await;
    let mut web = crate::state::WebContext::default();
    web.settings.owntracks_frontend = bundle.map(Arc::new);
    state.web = Arc::new(web);
    (crate::router(state.clone(), Router::new()), state)
}

#[tokio::test]
async fn routes_for_visitors_without_a_session() {
    let (app, state) = app(Some(bundle())).await;
    let bare = get(&app, "/frontend?user=bob").await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.headers[header::LOCATION], "/frontend/?user=bob");

    for (uri, next) in [
        ("/frontend/", "%2Ffrontend%2F"),
        (
            "/frontend/?start=2024-03-01T00:00:00",
            "%2Ffrontend%2F%3Fstart%3D2024%2D03%2D01T00%3A00%3A00",
        ),
        ("/frontend/index.html", "%2Ffrontend%2Findex%2Ehtml"),
        ("/frontend/some/route", "%2Ffrontend%2Fsome%2Froute"),
    ] {
        let page = get(&app, uri).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(
            page.headers[header::LOCATION],
            format!("/login/?next={next}").as_str()
        );
        assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    }

    let script = get(&app, "/frontend/assets/index-AbC1.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.body, "console.log(1)");
    assert_eq!(
        script.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        script.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(script.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let icon = get(&app, "/frontend/favicon.ico").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.headers[header::CACHE_CONTROL], "no-cache");
    assert!(icon.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("sandbox"));

    let config = get(&app, "/frontend/config/config.js").await;
    assert_eq!(config.status, StatusCode::OK);
    assert!(
        config.body.contains(r#""basePath":"/frontend/""#) && !config.body.contains("evil"),
        "generated, never the bundle's: {}",
        config.body
    );

    for missing in [
        "/frontend/assets/gone.js",
        "/frontend/assets/deeper/route",
        "/frontend/nothing.png",
        "/frontend/../static/x",
    ] {
        let answer = get(&app, missing).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(answer.body, r#"{"error":"not found"}"#, "{missing}");
    }
    state.broker.shutdown().await;
}

#[tokio::test]
async fn nothing_is_served_without_a_bundle() {
    let (app, state) = app(None).await;
    for uri in ["/frontend", "/frontend/", "/frontend/config/config.js"] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    }
    state.broker.shutdown().await;
}
