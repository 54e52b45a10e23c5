//! Who is calling: a session cookie (the web UI), a bearer API token, or HTTP Basic with an
//! account password (scripts). Resolved once per request by [`resolve`], which also enforces
//! CSRF protection for cookie-authenticated mutations and slides session expiry.
//!
//! Sessions: the cookie `mytracks_session` (HttpOnly, SameSite=Lax, Secure behind HTTPS)
//! holds a random id; the database keeps its SHA-256. A session lasts 7 days from its last
//! use. CSRF: each session has a token, given at login and in the `csrftoken` cookie (which
//! scripts on the page may read); a cookie-authenticated POST, PUT, PATCH or DELETE must send
//! it back in `X-CSRFToken`, and a cross-site `Origin` is refused outright.

use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::views::AccountView;
use crate::state::HttpState;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use base64::Engine;
use mytracks_app::accounts::guard::{Door, LoginFrom};
use mytracks_app::secret;
use mytracks_store::User;
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/auth/login/", post(login)),
        ("/api/auth/logout/", post(logout)),
        ("/api/auth/session/", get(session)),
    ]
}

pub const SESSION_COOKIE: &str = "mytracks_session";
pub const CSRF_COOKIE: &str = "csrftoken";
pub const CSRF_HEADER: &str = "x-csrftoken";
/// Sessions end this long after their last use.
pub const SESSION_LIFETIME: i64 = 7 * 24 * 3600;
/// A session's expiry is pushed forward at most this often (one write per minute at most).
const SLIDE_EVERY: i64 = 60;

/// `[http] trusted_proxies`: reverse proxies and load balancers whose `X-Forwarded-For`
/// names the client. From anyone else the header is ignored (it is trivially forged), so
/// the login throttles always count the address that really connected, or the one a
/// trusted proxy saw.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<ipnet::IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
    /// rightmost address of the `X-Forwarded-For` chain that is not a trusted proxy (each
    /// proxy appends the address it saw, so everything left of the first untrusted hop may
    /// be forged). An unreadable hop ends the walk at the last trusted one.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(address) = parse_hop(hop) else { break };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:80`, `1.2.3.4:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let address = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(address.to_canonical())
}

/// How a password login through HTTP is throttled: the caller's own failures answer 429.
fn login_from<'a>(address: IpAddr, username: &'a str) -> LoginFrom<'a> {
    LoginFrom {
        address: Some(address),
        username,
        door: Door::Refuse,
        verified_before: false,
    }
}

/// The authenticated caller, put in the request by [`resolve`].
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    /// The session's id hash when authenticated by cookie.
    pub session: Option<String>,
    /// The API token's hash when authenticated by one (long-lived connections, the live
    /// feed, end when it is deleted).
    pub token: Option<String>,
}

/// Extractor: any authenticated, active user (401 otherwise).
pub struct Auth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Auth)
            .ok_or_else(ApiError::unauthenticated)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Auth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().map(Auth))
    }
}

/// Extractor: the server's state and the authenticated caller together, what nearly every
/// handler of the REST API starts from (401 without a caller).
pub struct SignedIn {
    pub state: HttpState,
    pub caller: Caller,
}

impl FromRequestParts<HttpState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> ApiResult<Self> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        Ok(SignedIn {
            state: state.clone(),
            caller,
        })
    }
}

/// Extractor: the client's IP address (the peer, or behind a trusted proxy the address it
/// forwards for; unspecified when not served over a socket).
pub struct Peer(pub IpAddr);

impl FromRequestParts<HttpState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let peer = address_of(&parts.extensions);
        Ok(Peer(
            state.trusted_proxies.client_address(peer, &parts.headers),
        ))
    }
}

/// Extractor: an authenticated admin (401 / 403 otherwise).
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        match caller.user.is_admin {
            true => Ok(Admin(caller)),
            false => Err(ApiError::admin_only()),
        }
    }
}

/// The caller's address (unspecified when not served over a socket, as in unit tests).
fn address_of(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The text of HTTP Basic credentials (`user:password`, base64 in the header); `None` when
/// malformed. Shared by the API and OwnTracks HTTP mode.
pub fn decode_basic(encoded: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Middleware for `/api/`: authenticates the caller (if credentials are present), enforces
/// CSRF for cookie sessions and refreshes the session cookie when its expiry slid. A 401 of
/// the Recorder's API, whether answered here (a wrong Basic password) or by the handler,
/// challenges for Basic (see [`super::recorder::challenge_for`]).
pub async fn resolve(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = resolve_caller(state, request, next).await;
    // Elsewhere the answer keeps its own challenge (Bearer, or Basic for HTTP mode).
    if response.status() == axum::http::StatusCode::UNAUTHORIZED
        && super::recorder::is_recorder_path(&path)
    {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            super::recorder::challenge_for(&path),
        );
    }
    response
}

async fn resolve_caller(state: HttpState, mut request: Request, next: Next) -> Response {
    // OwnTracks HTTP mode at the original API's URL authenticates itself (device credentials
    // included, with a login cache): leave it alone here.
    if request.method() == Method::POST
        && request.uri().path().trim_end_matches('/') == "/api/locations"
    {
        return next.run(request).await;
    }
    let address = state
        .trusted_proxies
        .client_address(address_of(request.extensions()), request.headers());
    let secure = is_https(request.headers());
    let mut slid = None;
    match authenticate(&state, &mut request, address).await {
        Ok(Some((caller, csrf))) => {
            // An account created a moment ago by another process (the CLI): the checks
            // that read the directory (visibility, the live feed) must know it already.
            state.accounts.know(&caller.user.username).await;
            if let (Some(id_hash), Some(csrf)) = (&caller.session, &csrf) {
                // Logging in again with a live session is not an action of that session (the
                // login handler checks the Origin itself and replaces the session).
                let login = request.uri().path().trim_end_matches('/') == "/api/auth/login";
                if is_unsafe(request.method()) && !login {
                    if let Err(error) = check_csrf(request.headers(), csrf) {
                        return error.into_response();
                    }
                }
                if let Some(SlideDue(cookie)) = request.extensions_mut().remove::<SlideDue>() {
                    let now = mytracks_store::now();
                    let store = state.accounts.store();
                    match store
                        .extend_session(id_hash, now, now + SESSION_LIFETIME)
                        .await
                    {
                        Ok(()) => slid = Some((cookie, csrf.clone())),
                        Err(error) => tracing::warn!("cannot extend a web session: {error}"),
                    }
                }
            }
            request.extensions_mut().insert(caller);
        }
        Ok(None) => {}
        Err(error) => return error.into_response(),
    }
    let mut response = next.run(request).await;
    if let Some((session_cookie, csrf)) = slid {
        // The handler may have replaced or ended the session (login, logout): its cookies win.
        if !response.headers().contains_key(header::SET_COOKIE) {
            for cookie in [
                cookie(
                    SESSION_COOKIE,
                    &session_cookie,
                    SESSION_LIFETIME,
                    true,
                    secure,
                ),
                cookie(CSRF_COOKIE, &csrf, SESSION_LIFETIME, false, secure),
            ] {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
    }
    response
}

/// The caller and, for a session, its CSRF token. `Ok(None)`: anonymous. Invalid explicit
/// credentials (a bad token, a wrong Basic password) are an error; a stale cookie is not
/// (the caller is treated as anonymous, so the login page still works).
async fn authenticate(
    state: &HttpState,
    request: &mut Request,
    address: IpAddr,
) -> ApiResult<Option<(Caller, Option<String>)>> {
    let accounts = &state.accounts;
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return match accounts.user_for_token(credentials).await? {
                Some(user) => Ok(Some((
                    Caller {
                        user,
                        session: None,
                        token: Some(secret::digest(credentials)),
                    },
                    None,
                ))),
                None => Err(ApiError::Unauthorized("Invalid or expired token.".into())),
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            // `/pub` challenges with `WWW-Authenticate: Basic`, so a browser may have cached
            // these and attach them to a forged request from another site's page.
            if is_unsafe(request.method()) && from_another_site(request.headers()) {
                return Err(ApiError::Forbidden(
                    "CSRF Failed: Basic credentials are not accepted from another site's page."
                        .into(),
                ));
            }
            let decoded = decode_basic(credentials)
                .ok_or_else(|| ApiError::Unauthorized("Malformed Basic credentials.".into()))?;
            let (username, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            let checked = match is_unsafe(request.method()) {
                false => check_basic_cached(state, address, username, password).await?,
                true => {
                    accounts
                        .check_password(login_from(address, username), password)
                        .await?
                }
            };
            return match checked {
                Some(user) => Ok(Some((
                    Caller {
                        user,
                        session: None,
                        token: None,
                    },
                    None,
                ))),
                None => Err(ApiError::Unauthorized(
                    "Invalid username or password.".into(),
                )),
            };
        }
        return Err(ApiError::Unauthorized(format!(
            "Unsupported authorization scheme {scheme:?}; use Bearer or Basic."
        )));
    }
    // WebSocket clients cannot set headers: `?token=` stands in for a bearer token there.
    if request.uri().path().starts_with("/ws/") {
        let token = request.uri().query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(str::to_owned)
        });
        if let Some(token) = token {
            return match accounts.user_for_token(&token).await? {
                Some(user) => Ok(Some((
                    Caller {
                        user,
                        session: None,
                        token: Some(secret::digest(&token)),
                    },
                    None,
                ))),
                None => Err(ApiError::Unauthorized("Invalid or expired token.".into())),
            };
        }
    }
    let Some(cookie) = cookie_value(request.headers(), SESSION_COOKIE) else {
        return Ok(None);
    };
    let id_hash = secret::digest(&cookie);
    let now = mytracks_store::now();
    let Some(session) = accounts.store().session(&id_hash, now).await? else {
        return Ok(None);
    };
    let Some(user) = accounts.store().user_by_id(session.user_id).await? else {
        return Ok(None);
    };
    if !user.is_active {
        return Ok(None);
    }
    let csrf = session.csrf_token.clone();
    if now - session.last_seen_at >= SLIDE_EVERY {
        request.extensions_mut().insert(SlideDue(cookie));
    }
    Ok(Some((
        Caller {
            user,
            session: Some(id_hash),
            token: None,
        },
        Some(csrf),
    )))
}

/// A Basic login for a reading request, through the cache of verified ones: a browser sends
/// the same credentials with every request (the Recorder's Frontend fires dozens at once),
/// and one argon2id each (tens of milliseconds and ~19 MiB) would make it crawl. An entry
/// holds for the stored password hash it was verified against (a password changed by any
/// process misses) and for the accounts' auth epoch (any change of access misses); a miss
/// is a normal, throttled check. Device credentials never log in here (the cache is the
/// API's own, not `/pub`'s, which accepts them).
async fn check_basic_cached(
    state: &HttpState,
    address: IpAddr,
    username: &str,
    password: &str,
) -> ApiResult<Option<User>> {
    use crate::owntracks_http::Lookup;
    let accounts = &state.accounts;
    let Some(user) = accounts.store().user_by_name(username).await? else {
        // Unknown: the slow decoy check, throttled like any failure.
        return Ok(accounts
            .check_password(login_from(address, username), password)
            .await?);
    };
    let epoch = accounts.auth_epoch();
    let cache = &state.api_login_cache;
    let key = cache.key(&format!("{username}\0{}", user.password_hash), password);
    let verified_before = match cache.get(&key, epoch) {
        Lookup::Valid(id) if id == user.id && user.is_active => return Ok(Some(user)),
        Lookup::Valid(_) | Lookup::Stale => true,
        Lookup::Miss => false,
    };
    let from = LoginFrom {
        verified_before,
        ..login_from(address, username)
    };
    let checked = accounts.check_password(from, password).await?;
    if let Some(user) = &checked {
        // Keyed by the hash as it is now (a check may upgrade an old hash).
        let key = cache.key(&format!("{username}\0{}", user.password_hash), password);
        cache.put(key, user.id, epoch);
    }
    Ok(checked)
}

/// Marks a session whose expiry should move forward; holds the cookie value to re-send.
#[derive(Clone)]
struct SlideDue(String);

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF rule for cookie-authenticated mutations.
fn check_csrf(headers: &HeaderMap, expected: &str) -> ApiResult<()> {
    check_origin(headers)?;
    let sent = headers
        .get(CSRF_HEADER)
        .or_else(|| headers.get("x-csrf-token"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match secret::same(sent, expected) {
        true => Ok(()),
        false => Err(ApiError::Forbidden(
            "CSRF Failed: CSRF token missing or incorrect.".into(),
        )),
    }
}

/// Whether a browser says the request comes from another site's page (see [`check_origin`]);
/// requests without `Origin` and `Sec-Fetch-Site` (phones, scripts, curl) do not.
pub fn from_another_site(headers: &HeaderMap) -> bool {
    check_origin(headers).is_err()
}

/// A browser's `Origin` must name this host, and its `Sec-Fetch-Site` (which no proxy
/// rewrites) must not say `cross-site` or `same-site` (a sibling subdomain): a page elsewhere
/// may not log people in or act for them. Requests without either (scripts, older browsers)
/// pass this check.
pub(crate) fn check_origin(headers: &HeaderMap) -> ApiResult<()> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ["cross-site", "same-site"]
        .iter()
        .any(|site| fetch_site.eq_ignore_ascii_case(site))
    {
        return Err(ApiError::Forbidden(format!(
            "CSRF Failed: the request comes from another site (Sec-Fetch-Site: {fetch_site})."
        )));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    match !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        true => Ok(()),
        false => Err(ApiError::Forbidden(format!(
            "CSRF Failed: Origin {origin} does not match the host {host}."
        ))),
    }
}

/// Whether the client reached us over HTTPS (through a proxy that says so).
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let jar = axum_extra::extract::CookieJar::from_headers(headers);
    jar.get(name).map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
fn cookie(name: &str, value: &str, max_age: i64, http_only: bool, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        text.push_str("; HttpOnly");
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie values are alphanumeric")
}

#[derive(Deserialize)]
pub struct LoginRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /api/auth/login/`: starts a session (a new id every time, so a planted cookie is
/// worthless) and answers with the account and the CSRF token.
pub async fn login(
    State(state): State<HttpState>,
    Peer(address): Peer,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    check_origin(&headers)?;
    if body.username.is_empty() {
        return Err(ApiError::invalid("username", "username is required"));
    }
    if body.password.is_empty() {
        return Err(ApiError::invalid("password", "password is required"));
    }
    let accounts = &state.accounts;
    let Some(user) = accounts
        .check_password(login_from(address, &body.username), &body.password)
        .await?
    else {
        tracing::warn!(%address, username = %body.username, "web login failed");
        return Err(ApiError::Unauthorized(
            "Invalid username or password.".into(),
        ));
    };
    // The old session, if any, ends: a new id at every login.
    if let Some(old) = cookie_value(&headers, SESSION_COOKIE) {
        accounts.end_session(&secret::digest(&old)).await?;
    }
    let session_id = secret::alphanumeric(43);
    let csrf = secret::alphanumeric(32);
    let expires = mytracks_store::now() + SESSION_LIFETIME;
    accounts
        .store()
        .create_session(&secret::digest(&session_id), user.id, &csrf, expires)
        .await?;
    accounts.record_login(&user).await;
    let user = accounts.user(user.id).await?;
    tracing::info!(%address, username = %user.username, "web login");
    let secure = is_https(&headers);
    let mut response = Json(json!({
        "detail": "Logged in.",
        "user": AccountView::from(&user),
        "csrf_token": csrf,
    }))
    .into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        cookie(SESSION_COOKIE, &session_id, SESSION_LIFETIME, true, secure),
    );
    cookies.append(
        header::SET_COOKIE,
        cookie(CSRF_COOKIE, &csrf, SESSION_LIFETIME, false, secure),
    );
    Ok(response)
}

/// `POST /api/auth/logout/`: ends the session (CSRF-checked like any mutation) and clears
/// the cookies. Without a session it only clears them.
pub async fn logout(
    State(state): State<HttpState>,
    caller: Option<Auth>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(Auth(Caller {
        session: Some(id_hash),
        ..
    })) = caller
    {
        state.accounts.end_session(&id_hash).await?;
    }
    let secure = is_https(&headers);
    let mut response = Json(json!({ "detail": "Logged out." })).into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookie(name, "", 0, name == SESSION_COOKIE, secure),
        );
    }
    Ok(response)
}

/// `GET /api/auth/session/`: whether the caller is logged in, as whom, and the CSRF token
/// (for pages that lost it).
pub async fn session(State(state): State<HttpState>, caller: Option<Auth>) -> ApiResult<Response> {
    let Some(Auth(caller)) = caller else {
        return Ok(Json(json!({ "authenticated": false })).into_response());
    };
    let csrf = match &caller.session {
        Some(id_hash) => state
            .accounts
            .store()
            .session(id_hash, mytracks_store::now())
            .await?
            .map(|s| s.csrf_token),
        None => None,
    };
    Ok(Json(json!({
        "authenticated": true,
        "user": AccountView::from(&caller.user),
        "csrf_token": csrf,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(chain: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in chain {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(
            none.client_address(ip("10.0.0.1"), &headers),
            ip("10.0.0.1")
        );

        let proxies = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        // Untrusted peer: the header is ignored.
        assert_eq!(
            proxies.client_address(ip("192.0.2.9"), &headers),
            ip("192.0.2.9")
        );
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), &headers),
            ip("203.0.113.7")
        );
        // The rightmost untrusted hop wins; what the client wrote left of it is ignored.
        let chain = forwarded(&["198.51.100.1, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(proxies.client_address(ip("::1"), &chain), ip("203.0.113.7"));
        // Ports, brackets and mapped addresses are read; garbage stops at the last proxy.
        let chain = forwarded(&["[2001:db8::1]:443, ::ffff:10.0.0.3"]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.9"), &chain),
            ip("2001:db8::1")
        );
        let chain = forwarded(&["unknown, 10.0.0.4"]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.9"), &chain),
            ip("10.0.0.4")
        );
        assert_eq!(
            proxies.client_address(ip("::ffff:10.0.0.9"), &HeaderMap::new()),
            ip("10.0.0.9")
        );
    }
}
