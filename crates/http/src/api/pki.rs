//! The PKI over REST (paths of the original My Tracks API): the CA (`/api/admin/ca/`), server
//! certificates, client certificates for admins and for their owners
//! (`/api/account/certificate/`), and the public CRL (`/api/pki/crl/`).

use super::auth::{Admin, SignedIn};
use super::error::{ApiError, ApiResult};
use super::extract::{parse_id, JsonBody};
use crate::state::HttpState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use mytracks_app::pki::PkiServiceError;
use mytracks_app::time::timestamp;
use mytracks_store::{CaRow, CertificateRow};
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        (
            "/api/admin/ca/",
            get(show_ca).post(create_ca).delete(deactivate_ca),
        ),
        (
            "/api/admin/ca/history/",
            get(ca_history).delete(expunge_history),
        ),
        ("/api/admin/ca/download/", get(download_ca)),
        (
            "/api/admin/server-certificates/",
            get(list_server).post(create_server),
        ),
        (
            "/api/admin/server-certificates/{id}/deactivate/",
            post(deactivate_server),
        ),
        (
            "/api/admin/certificates/",
            get(list_clients).post(create_client),
        ),
        ("/api/admin/certificates/{id}/", delete(expunge_client)),
        ("/api/admin/certificates/{id}/revoke/", post(revoke_client)),
        (
            "/api/account/certificate/",
            get(own_certificate).post(issue_own).delete(revoke_own),
        ),
        ("/api/account/certificates/", get(list_own)),
        (
            "/api/account/certificates/{id}/revoke/",
            post(revoke_own_by_id),
        ),
        ("/api/pki/crl/", get(crl)),
    ]
}

impl From<PkiServiceError> for ApiError {
    fn from(error: PkiServiceError) -> Self {
        match error {
            PkiServiceError::Invalid(m) => ApiError::BadRequest(m),
            PkiServiceError::NoCa => ApiError::NotFound(error.to_string()),
            PkiServiceError::NotFound(m) => ApiError::NotFound(m),
            PkiServiceError::Conflict(m) => ApiError::Conflict(m),
            PkiServiceError::Pki(e) => ApiError::BadRequest(e.to_string()),
            PkiServiceError::Store(e) => e.into(),
            PkiServiceError::Sealed(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

fn ca_json(ca: &CaRow) -> Value {
    json!({
        "id": ca.id,
        "common_name": ca.common_name,
        "algorithm": ca.algorithm,
        "serial": ca.serial,
        "fingerprint": ca.fingerprint,
        "not_valid_before": timestamp(ca.not_before),
        "not_valid_after": timestamp(ca.not_after),
        "is_active": ca.active,
        "imported": ca.imported,
        "created_at": timestamp(ca.created_at),
        "deactivated_at": ca.deactivated_at.map(timestamp),
        "certificate_pem": ca.cert_pem,
    })
}

fn cert_json(cert: &CertificateRow, username: Option<&str>) -> Value {
    json!({
        "id": cert.id,
        "kind": cert.kind,
        "user_id": cert.user_id,
        "username": username,
        "common_name": cert.common_name,
        "names": if cert.names.is_empty() { Vec::new() } else { cert.names.split(',').collect() },
        "serial_number": cert.serial,
        "fingerprint": cert.fingerprint,
        "issuing_ca": cert.ca_id,
        "not_valid_before": timestamp(cert.not_before),
        "not_valid_after": timestamp(cert.not_after),
        "is_active": cert.active,
        "revoked": cert.revoked_at.is_some(),
        "revoked_at": cert.revoked_at.map(timestamp),
        "created_at": timestamp(cert.created_at),
        "certificate_pem": cert.cert_pem,
    })
}

fn download(body: Vec<u8>, content_type: &'static str, file: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn pem_to_der(pem: &str) -> ApiResult<Vec<u8>> {
    mytracks_pki::pem_to_der(pem)
        .ok_or_else(|| ApiError::Unavailable("stored PEM is unreadable".into()))
}

/// `GET /api/admin/ca/`: the active CA.
pub async fn show_ca(State(state): State<HttpState>, _admin: Admin) -> ApiResult<Json<Value>> {
    let ca = state.pki.active_ca().await?.ok_or(PkiServiceError::NoCa)?;
    Ok(Json(ca_json(&ca)))
}

#[derive(Deserialize)]
pub struct NewCa {
    common_name: Option<String>,
    #[serde(default)]
    algorithm: Option<String>,
    validity_days: Option<u32>,
    /// Import instead: an existing CA certificate and its PKCS#8 key.
    certificate_pem: Option<String>,
    key_pem: Option<String>,
}

/// `POST /api/admin/ca/`: generate (`common_name`, `algorithm`, `validity_days`) or import
/// (`certificate_pem`, `key_pem`) a CA, which becomes the active one.
pub async fn create_ca(
    State(state): State<HttpState>,
    _admin: Admin,
    JsonBody(body): JsonBody<NewCa>,
) -> ApiResult<Response> {
    let ca = match (&body.certificate_pem, &body.key_pem) {
        (Some(cert), Some(key)) => state.pki.import_ca(cert, key).await?,
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::invalid(
                "key_pem",
                "an import needs certificate_pem and key_pem",
            ))
        }
        (None, None) => {
            let name = body
                .common_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or("mytracks CA");
            let algorithm = body.algorithm.as_deref().unwrap_or("ecdsa-p256");
            state
                .pki
                .create_ca(name, algorithm, body.validity_days.unwrap_or(3650))
                .await?
        }
    };
    Ok((StatusCode::CREATED, Json(ca_json(&ca))).into_response())
}

/// `DELETE /api/admin/ca/`: deactivates the active CA (kept in the history).
pub async fn deactivate_ca(
    State(state): State<HttpState>,
    _admin: Admin,
) -> ApiResult<Json<Value>> {
    state.pki.deactivate_ca().await?;
    Ok(Json(
        json!({ "detail": "The certificate authority has been deactivated." }),
    ))
}

/// `GET /api/admin/ca/history/`: every CA, newest first.
pub async fn ca_history(
    State(state): State<HttpState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(state.pki.cas().await?.iter().map(ca_json).collect()))
}

/// `DELETE /api/admin/ca/history/`: expunges inactive CAs and their certificates.
pub async fn expunge_history(
    State(state): State<HttpState>,
    _admin: Admin,
) -> ApiResult<Json<Value>> {
    let removed = state.pki.expunge_inactive().await?;
    Ok(Json(
        json!({ "detail": format!("{removed} inactive certificate authorities expunged."), "expunged": removed }),
    ))
}

#[derive(Deserialize, Default)]
pub struct FormatQuery {
    format: Option<String>,
}

/// `GET /api/admin/ca/download/?format=pem|der`: the CA certificate for trust stores.
pub async fn download_ca(
    State(state): State<HttpState>,
    _admin: Admin,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    let ca = state.pki.active_ca().await?.ok_or(PkiServiceError::NoCa)?;
    Ok(match q.format.as_deref().unwrap_or("pem") {
        "der" => download(
            pem_to_der(&ca.cert_pem)?,
            "application/pkix-cert",
            "mytracks-ca.der",
        ),
        "pem" => download(
            ca.cert_pem.into_bytes(),
            "application/x-pem-file",
            "mytracks-ca.pem",
        ),
        _ => return Err(ApiError::invalid("format", "format must be pem or der")),
    })
}

/// `GET /api/admin/server-certificates/`.
pub async fn list_server(
    State(state): State<HttpState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<Value>>> {
    let certs = state.pki.certificates("server", None).await?;
    Ok(Json(certs.iter().map(|c| cert_json(c, None)).collect()))
}

#[derive(Deserialize, Default)]
pub struct NewServer {
    /// Host names and addresses (default: this machine's host name and addresses, localhost,
    /// and `[pki] server_names`).
    #[serde(default)]
    names: Vec<String>,
    validity_days: Option<u32>,
}

/// `POST /api/admin/server-certificates/`.
pub async fn create_server(
    State(state): State<HttpState>,
    _admin: Admin,
    JsonBody(body): JsonBody<NewServer>,
) -> ApiResult<Response> {
    let mut names: Vec<String> = body
        .names
        .into_iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        names = state.pki.default_server_names();
    }
    let cert = state
        .pki
        .issue_server(&names, body.validity_days.unwrap_or(825))
        .await?;
    Ok((StatusCode::CREATED, Json(cert_json(&cert, None))).into_response())
}

/// `POST /api/admin/server-certificates/{id}/deactivate/`.
pub async fn deactivate_server(
    State(state): State<HttpState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.pki.deactivate_server(parse_id(&id)?).await?;
    Ok(Json(
        json!({ "detail": "The server certificate has been deactivated." }),
    ))
}

/// `GET /api/admin/certificates/`: every client certificate.
pub async fn list_clients(
    State(state): State<HttpState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<Value>>> {
    let certs = state.pki.certificates("client", None).await?;
    let directory = state.accounts.directory();
    Ok(Json(
        certs
            .iter()
            .map(|c| cert_json(c, c.user_id.and_then(|id| directory.name_of(id))))
            .collect(),
    ))
}

#[derive(Deserialize, Default)]
pub struct NewClient {
    user_id: Option<i64>,
    validity_years: Option<u32>,
    organization: Option<String>,
    organizational_unit: Option<String>,
}

/// `POST /api/admin/certificates/`: issue a client certificate for a user (its key is only
/// downloadable by that user).
pub async fn create_client(
    State(state): State<HttpState>,
    _admin: Admin,
    JsonBody(body): JsonBody<NewClient>,
) -> ApiResult<Response> {
    let user_id = body
        .user_id
        .ok_or_else(|| ApiError::invalid("user_id", "user_id is required"))?;
    let user = state.accounts.user(user_id).await?;
    let cert = state
        .pki
        .issue_client(
            &user,
            body.organization.as_deref(),
            body.organizational_unit.as_deref(),
            body.validity_years.unwrap_or(5),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(cert_json(&cert, Some(&user.username))),
    )
        .into_response())
}

/// `POST /api/admin/certificates/{id}/revoke/`: revokes and reissues the CRL at once.
pub async fn revoke_client(
    State(state): State<HttpState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cert = state.pki.revoke(parse_id(&id)?).await?;
    Ok(Json(cert_json(&cert, None)))
}

/// `DELETE /api/admin/certificates/{id}/`: expunges a certificate.
pub async fn expunge_client(
    State(state): State<HttpState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.pki.expunge(parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/account/certificate/` (`?format=pem`: the owner's PEM bundle with the key).
pub async fn own_certificate(
    SignedIn { state, caller }: SignedIn,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    let cert = state
        .pki
        .current_client(&caller.user)
        .await?
        .ok_or_else(|| ApiError::NotFound("You have no valid client certificate.".into()))?;
    match q.format.as_deref() {
        None | Some("json") => {
            Ok(Json(cert_json(&cert, Some(&caller.user.username))).into_response())
        }
        Some("pem") => {
            let bundle = state.pki.pem_bundle(&cert).await?;
            let file = format!("{}.pem", caller.user.username);
            Ok(download(
                bundle.into_bytes(),
                "application/x-pem-file",
                &file,
            ))
        }
        Some(_) => Err(ApiError::invalid(
            "format",
            "format must be json or pem (PKCS#12: POST)",
        )),
    }
}

#[derive(Deserialize, Default)]
pub struct OwnCertificateRequest {
    validity_years: Option<u32>,
    /// Issue a new certificate even if a valid one exists.
    #[serde(default)]
    renew: bool,
    /// `p12` or `otrp` (OwnTracks iOS): answer with a PKCS#12 file encrypted with `passphrase`.
    format: Option<String>,
    passphrase: Option<String>,
}

/// `POST /api/account/certificate/`: issue one's client certificate if there is none (or
/// `renew`, which revokes the certificates issued before: a renewal replaces, it does not
/// add a second way in), and optionally download it as PKCS#12.
pub async fn issue_own(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<OwnCertificateRequest>,
) -> ApiResult<Response> {
    let existing = state.pki.current_client(&caller.user).await?;
    let (cert, created) = match existing {
        Some(cert) if !body.renew => (cert, false),
        _ => {
            let issued = state
                .pki
                .issue_client(&caller.user, None, None, body.validity_years.unwrap_or(5))
                .await?;
            state
                .pki
                .revoke_client_certificates(caller.user.id, Some(issued.id))
                .await?;
            (issued, true)
        }
    };
    match body.format.as_deref() {
        None | Some("json") => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(cert_json(&cert, Some(&caller.user.username)))).into_response())
        }
        Some(kind @ ("p12" | "otrp")) => {
            let passphrase = body.passphrase.as_deref().ok_or_else(|| {
                ApiError::invalid("passphrase", "a PKCS#12 download needs a passphrase")
            })?;
            let bytes = state.pki.pkcs12(&cert, passphrase).await?;
            let file = format!("{}.{kind}", caller.user.username);
            Ok(download(bytes, "application/x-pkcs12", &file))
        }
        Some(_) => Err(ApiError::invalid(
            "format",
            "format must be json, p12 or otrp",
        )),
    }
}

/// `DELETE /api/account/certificate/`: revokes one's own certificate.
pub async fn revoke_own(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Value>> {
    let cert = state
        .pki
        .current_client(&caller.user)
        .await?
        .ok_or_else(|| ApiError::NotFound("You have no valid client certificate.".into()))?;
    let cert = state.pki.revoke(cert.id).await?;
    Ok(Json(cert_json(&cert, Some(&caller.user.username))))
}

/// Revokes every client certificate of `user_id` (a password reset revoking access). No CA
/// configured means no certificates: nothing to do.
pub async fn revoke_all_certificates(state: &HttpState, user_id: i64) -> ApiResult<()> {
    state.pki.revoke_client_certificates(user_id, None).await?;
    Ok(())
}

/// `GET /api/account/certificates/`: every client certificate issued to the caller (revoked
/// and expired ones too), newest first, without keys.
pub async fn list_own(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Vec<Value>>> {
    let certs = state
        .pki
        .certificates("client", Some(caller.user.id))
        .await?;
    let name = Some(caller.user.username.as_str());
    Ok(Json(certs.iter().map(|c| cert_json(c, name)).collect()))
}

/// `POST /api/account/certificates/{id}/revoke/`: revokes one of the caller's own
/// certificates, whichever (another user's answers 404, like one that does not exist).
pub async fn revoke_own_by_id(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let owned = state
        .pki
        .certificates("client", Some(caller.user.id))
        .await?
        .into_iter()
        .any(|c| c.id == id);
    if !owned {
        return Err(ApiError::NotFound("Not found".into()));
    }
    let cert = state.pki.revoke(id).await?;
    Ok(Json(cert_json(&cert, Some(&caller.user.username))))
}

/// `GET /api/pki/crl/` (public; `?format=der`): the active CA's current CRL.
pub async fn crl(
    State(state): State<HttpState>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    let pem = state.pki.crl().ok_or(PkiServiceError::NoCa)?;
    Ok(match q.format.as_deref().unwrap_or("pem") {
        "der" => download(pem_to_der(&pem)?, "application/pkix-crl", "mytracks.crl"),
        "pem" => download(
            pem.into_bytes(),
            "application/x-pem-file",
            "mytracks-crl.pem",
        ),
        _ => return Err(ApiError::invalid("format", "format must be pem or der")),
    })
}
