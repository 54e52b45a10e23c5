//! What every handler is handed: [`HttpState`], the services and the broker, and the web
//! context with the ports the server listens on.

use crate::api::auth::TrustedProxies;
use crate::owntracks_http::LoginCache;
use crate::web::WebSettings;
use mytracks_app::accounts::Accounts;
use mytracks_app::iot::Iot;
use mytracks_app::pki::PkiService;
use mytracks_app::tracking::Tracking;
use mytracks_app::App;
use mytracks_broker::Broker;
use std::sync::Arc;
use tokio::sync::watch;

/// What the handlers need: the services, the broker for its counters and the monitoring
/// API, and the web UI's context. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct HttpState {
    pub broker: Broker,
    pub accounts: Arc<Accounts>,
    /// `[http] trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// The OwnTracks backend (HTTP mode, history, live feed, commands).
    pub tracking: Arc<Tracking>,
    /// The built-in PKI.
    pub pki: Arc<PkiService>,
    /// The web UI's settings and the ports actually listened on (for the setup page).
    pub web: Arc<WebContext>,
    /// The IoT platform (devices, telemetry).
    pub iot: Arc<Iot>,
    /// Verified OwnTracks HTTP-mode logins (`/pub`).
    pub login_cache: Arc<LoginCache>,
    /// Imports uploaded through the web UI and the REST API.
    pub imports: Arc<mytracks_app::imports::jobs::Imports>,
    /// Verified Basic logins of reading API requests (account passwords only).
    pub api_login_cache: Arc<LoginCache>,
}

impl HttpState {
    /// The state over `app`'s services and the embedded `broker`.
    pub fn new(
        app: &App,
        broker: Broker,
        trusted_proxies: TrustedProxies,
        web: WebContext,
    ) -> HttpState {
        HttpState {
            broker,
            accounts: app.accounts.clone(),
            trusted_proxies: Arc::new(trusted_proxies),
            tracking: app.tracking.clone(),
            pki: app.pki.clone(),
            web: Arc::new(web),
            iot: app.iot.clone(),
            login_cache: Arc::default(),
            imports: app.imports.clone(),
            api_login_cache: Arc::default(),
        }
    }
}

/// The ports the server actually listens on (`None`: that listener is off), for the setup
/// page: with port 0 in the configuration only the running server knows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ports {
    pub http: Option<u16>,
    pub mqtt: Option<u16>,
    pub mqtt_tls: Option<u16>,
    pub mqtt_ws: Option<u16>,
    pub mqtt_wss: Option<u16>,
}

/// What the pages and the setup API need beyond the services.
#[derive(Clone, Debug)]
pub struct WebContext {
    pub settings: WebSettings,
    /// The ports listened on now. The TLS and WSS listeners may start after the rest (when
    /// the built-in CA issues the first server certificate): the server sends their ports
    /// then.
    ports: watch::Receiver<Ports>,
}

impl WebContext {
    pub fn new(settings: WebSettings, ports: watch::Receiver<Ports>) -> WebContext {
        WebContext { settings, ports }
    }

    /// The ports listened on now.
    pub fn current_ports(&self) -> Ports {
        *self.ports.borrow()
    }
}

impl Default for WebContext {
    /// Default settings, no listener known.
    fn default() -> Self {
        WebContext::new(WebSettings::default(), watch::channel(Ports::default()).1)
    }
}
