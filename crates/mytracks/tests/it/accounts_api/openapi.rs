//! The OpenAPI document.

use super::*;

/// `GET /api/openapi.json` needs no login and documents every accounts route.
#[test]
fn openapi_document_lists_the_account_routes() {
    let server = Server::with_database(Database::Sqlite, "");
    let (status, doc) = server.api().get("/api/openapi.json");
    assert_eq!(status, 200, "{doc}\n{}", server.log());
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for path in [
        "/api/auth/login/",
        "/api/account/",
        "/api/account/change-password/",
        "/api/account/tokens/",
        "/api/account/tokens/{id}/",
        "/api/account/credentials/",
        "/api/account/credentials/{id}/",
        "/api/account/shares/",
        "/api/account/shares/{id}/",
        "/api/admin/users/",
        "/api/admin/users/{id}/",
        "/api/admin/users/{id}/reactivate/",
        "/api/admin/users/{id}/toggle-admin/",
        "/api/admin/users/{id}/set-password/",
        "/api/admin/users/{id}/hard-delete/",
    ] {
        if !paths.contains_key(path) {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "missing from the OpenAPI paths: {missing:?}; present: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
}
