//! The broker's admin API, for what MQTT itself cannot do: closing other clients'
//! connections when their access is taken away.
//!
//! - EMQX 5: `GET /api/v5/clients?username=U` lists the cluster's clients of a username,
//!   `DELETE /api/v5/clients/{clientid}` kicks one, with an API key as HTTP Basic.
//! - rmqtt: `GET /api/v1/clients?username=U` lists the cluster's clients (each with its
//!   node), but `DELETE /api/v1/clients/{clientid}` only finds a client on the node that
//!   serves the request, so every node's API URL is configured and each is tried in turn.
//!   A bearer token when the plugin has one.
//! - `none` (Mosquitto and others): nothing can be kicked; revocation waits for the broker's
//!   next authorization check or the client's reconnect, and a warning says so.

use mytracks_app::Connections;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which admin API the broker has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminKind {
    Emqx,
    Rmqtt,
    None,
}

/// `[mqtt.external.admin]`.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    pub kind: AdminKind,
    /// The API's base URLs (`http://host:port`); rmqtt: one per broker node.
    pub urls: Vec<String>,
    /// EMQX: the API key; rmqtt: unused.
    pub key: Option<String>,
    /// EMQX: the API secret; rmqtt: the bearer token (`http_bearer_token`).
    pub secret: Option<String>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            kind: AdminKind::None,
            urls: Vec::new(),
            key: None,
            secret: None,
        }
    }
}

/// Why the admin API could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("this broker has no admin API ([mqtt.external.admin] kind = \"none\")")]
    Unsupported,
}

/// One client as the admin API lists it.
#[derive(Debug, Deserialize)]
struct ListedClient {
    clientid: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct EmqxPage {
    data: Vec<ListedClient>,
}

/// A client of the broker's admin API. Cheap to clone.
#[derive(Clone)]
pub struct AdminApi {
    settings: AdminSettings,
    http: reqwest::Client,
    /// Client ids starting with this are mytracks' own and never kicked.
    own_prefix: String,
}

/// Requests to the admin API give up after this.
const TIMEOUT: Duration = Duration::from_secs(5);

impl AdminApi {
    pub fn new(settings: AdminSettings, own_prefix: &str) -> AdminApi {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("a plain HTTP client builds");
        AdminApi {
            settings,
            http,
            own_prefix: own_prefix.to_owned(),
        }
    }

    pub fn kind(&self) -> AdminKind {
        self.settings.kind
    }

    /// Closes the connections `which` selects; returns how many were closed.
    pub async fn kick(&self, which: &Connections<'_>) -> Result<usize, AdminError> {
        if self.settings.kind == AdminKind::None {
            return Err(AdminError::Unsupported);
        }
        let mut closed = 0;
        for username in usernames(which) {
            for client in self.clients_of(&username).await? {
                let name = client.username.as_deref().unwrap_or(&username);
                if client.clientid.starts_with(&self.own_prefix)
                    || !which.selects(name, &client.clientid)
                {
                    continue;
                }
                if self.kick_client(&client.clientid).await? {
                    closed += 1;
                }
            }
        }
        Ok(closed)
    }

    /// The clients (connected or with a session) the broker has for `username`.
    async fn clients_of(&self, username: &str) -> Result<Vec<ListedClient>, AdminError> {
        let base = self.settings.urls.first().ok_or(AdminError::Unsupported)?;
        let url = match self.settings.kind {
            AdminKind::Emqx => format!("{base}/api/v5/clients"),
            _ => format!("{base}/api/v1/clients"),
        };
        let limit = match self.settings.kind {
            AdminKind::Emqx => ("limit", "10000"),
            _ => ("_limit", "10000"),
        };
        let request = self.http.get(&url).query(&[("username", username), limit]);
        let response = self.send(request, &url).await?;
        let clients = match self.settings.kind {
            AdminKind::Emqx => response.json::<EmqxPage>().await.map(|page| page.data),
            _ => response.json::<Vec<ListedClient>>().await,
        };
        let clients = clients.map_err(|source| AdminError::Request { url, source })?;
        // Both filter on the broker side; the check here costs nothing.
        Ok(clients
            .into_iter()
            .filter(|c| c.username.as_deref().is_none_or(|u| u == username))
            .collect())
    }

    /// Kicks `client_id`; `false` if no node had it.
    async fn kick_client(&self, client_id: &str) -> Result<bool, AdminError> {
        let encoded: String = url_path_segment(client_id);
        for base in &self.settings.urls {
            let url = match self.settings.kind {
                AdminKind::Emqx => format!("{base}/api/v5/clients/{encoded}"),
                _ => format!("{base}/api/v1/clients/{encoded}"),
            };
            let request = self.authorize(self.http.delete(&url));
            let response = request.send().await.map_err(|source| AdminError::Request {
                url: url.clone(),
                source,
            })?;
            match response.status().as_u16() {
                200..=299 => return Ok(true),
                // Not on this node (rmqtt), or gone meanwhile.
                404 => continue,
                status => return Err(AdminError::Status { url, status }),
            }
        }
        Ok(false)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (
            self.settings.kind,
            &self.settings.key,
            &self.settings.secret,
        ) {
            (AdminKind::Emqx, Some(key), secret) => request.basic_auth(key, secret.as_ref()),
            (AdminKind::Rmqtt, _, Some(token)) => request.bearer_auth(token),
            _ => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, AdminError> {
        let response =
            self.authorize(request)
                .send()
                .await
                .map_err(|source| AdminError::Request {
                    url: url.to_owned(),
                    source,
                })?;
        match response.status().is_success() {
            true => Ok(response),
            false => Err(AdminError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
            }),
        }
    }
}

/// The usernames whose clients `which` may select.
fn usernames(which: &Connections<'_>) -> Vec<String> {
    match which {
        Connections::Usernames(names) => names.iter().cloned().collect(),
        Connections::Clients { username, .. } => vec![(*username).to_owned()],
        Connections::Sessions(sessions) => {
            let mut names: BTreeMap<&str, ()> = BTreeMap::new();
            for (username, _) in sessions.iter() {
                names.insert(username, ());
            }
            names.into_keys().map(str::to_owned).collect()
        }
    }
}

/// `text` as one URL path segment (client ids may hold `/`, `?`, `#`, spaces...).
fn url_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn client_ids_are_one_path_segment() {
        assert_eq!(url_path_segment("phone-1"), "phone-1");
        assert_eq!(url_path_segment("a/b c?#"), "a%2Fb%20c%3F%23");
        assert_eq!(url_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn the_usernames_of_a_selection() {
        let names = HashSet::from(["bob".to_owned(), "alice".to_owned()]);
        let mut got = usernames(&Connections::Usernames(&names));
        got.sort();
        assert_eq!(got, ["alice", "bob"]);
        let sessions = HashSet::from([
            ("alice".to_owned(), "c1".to_owned()),
            ("alice".to_owned(), "c2".to_owned()),
        ]);
        assert_eq!(usernames(&Connections::Sessions(&sessions)), ["alice"]);
    }
}
