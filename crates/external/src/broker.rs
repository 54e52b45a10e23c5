//! [`ExternalBroker`]: the services' [`Mqtt`] on an external broker, and [`start`], which
//! connects this node to it (one session for the shared-subscription ingest and for what the
//! services publish).

use crate::admin::{AdminApi, AdminKind};
use crate::ingest::{self, ORIGIN_PROPERTY};
use crate::settings::{ExternalSettings, SessionMode};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use mytracks_app::hooks::AppHooks;
use mytracks_app::{Connections, Link, Mqtt, MqttError, PublishError};
use mytracks_broker::Message;
use mytracks_mqtt_client::{BrokerUrl, Delivery, QoS, Session, SessionOptions, Status, TlsOptions};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a publish by the services may wait for the broker.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Retained messages arrive right after the subscription: a snapshot ends after this much
/// quiet...
const SNAPSHOT_QUIET: Duration = Duration::from_millis(500);
/// ... or after this long in all.
const SNAPSHOT_LIMIT: Duration = Duration::from_secs(5);

/// Kicks are retried for this long when the admin API fails.
const KICK_RETRY_FOR: Duration = Duration::from_secs(30);

/// Why this node could not connect to the external broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("mqtt.external.url {0:?}: {1}")]
    Url(String, mytracks_mqtt_client::BrokerUrlError),
}

/// The external broker, as the services reach it.
pub struct ExternalBroker {
    shared: Arc<Shared>,
    admin: AdminApi,
}

/// What the `'static` futures of [`Mqtt`] need.
struct Shared {
    session: Session,
    /// To open snapshot connections like the main one.
    options: SessionOptions,
}

/// A node connected to the external broker: its [`Mqtt`] and the ingest task.
pub struct Connected {
    pub broker: Arc<ExternalBroker>,
    pub ingest: JoinHandle<()>,
}

/// Connects (in the background: the session retries until the broker answers) and starts
/// handing what phones and devices publish to `hooks`.
pub fn start(
    settings: &ExternalSettings,
    hooks: Arc<AppHooks>,
    iot_base: &str,
) -> Result<Connected, StartError> {
    let options = session_options(settings, iot_base)?;
    tracing::info!(
        client_id = %options.client_id,
        urls = ?settings.urls,
        group = %settings.share_group,
        session = ?settings.session,
        "connecting to the external MQTT broker"
    );
    let (session, deliveries) = Session::start(options.clone());
    let ingest = ingest::spawn(hooks, iot_base.to_owned(), deliveries);
    let admin = AdminApi::new(settings.admin.clone(), &settings.client_id);
    if admin.kind() == AdminKind::None {
        tracing::warn!("[mqtt.external.admin] kind = \"none\": revoked clients are not disconnected from the broker (they lose access at their next authorization check or reconnect)");
    }
    Ok(Connected {
        broker: Arc::new(ExternalBroker {
            shared: Arc::new(Shared { session, options }),
            admin,
        }),
        ingest,
    })
}

fn session_options(
    settings: &ExternalSettings,
    iot_base: &str,
) -> Result<SessionOptions, StartError> {
    let urls = settings
        .urls
        .iter()
        .map(|url| {
            url.parse::<BrokerUrl>()
                .map_err(|e| StartError::Url(url.clone(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client_id = match settings.session {
        // A fresh id: the broker must not mistake a restarted node for its old session.
        SessionMode::Clean => format!("{}-{:08x}", settings.client_id, rand::random::<u32>()),
        SessionMode::Persistent => settings.client_id.clone(),
    };
    let mut options = SessionOptions::new(urls, client_id);
    options.tls = TlsOptions {
        ca_file: settings.ca_file.clone(),
        cert_file: settings.cert_file.clone(),
        key_file: settings.key_file.clone(),
        server_name: None,
    };
    options.username = settings.username.clone();
    options.password = settings.password.clone();
    options.clean_start = settings.session == SessionMode::Clean;
    options.session_expiry = match settings.session {
        SessionMode::Clean => 0,
        SessionMode::Persistent => settings.session_expiry,
    };
    options.receive_maximum = settings.receive_maximum;
    options.subscriptions = ingest::filters(iot_base)
        .into_iter()
        .map(|filter| {
            (
                format!("$share/{}/{filter}", settings.share_group),
                QoS::AtLeastOnce,
            )
        })
        .collect();
    Ok(options)
}

impl ExternalBroker {
    /// The session's state (for `/healthz` and the status page).
    pub fn status(&self) -> Status {
        self.shared.session.status().borrow().clone()
    }

    /// Stops the session (DISCONNECT; a persistent session is kept by the broker).
    pub async fn close(&self) {
        self.shared.session.close().await;
    }
}

/// Waits for the connection, then takes retained messages until the broker is quiet.
async fn collect(
    session: &Session,
    deliveries: &mut mpsc::Receiver<Delivery>,
) -> Result<Vec<Delivery>, MqttError> {
    let mut status = session.status();
    loop {
        if matches!(*status.borrow_and_update(), Status::Connected { .. }) {
            break;
        }
        if status.changed().await.is_err() {
            return Err(MqttError("the snapshot session ended".into()));
        }
    }
    let mut retained = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(SNAPSHOT_QUIET, deliveries.recv()).await {
        // Live messages carry retain 0; only the stored ones are wanted.
        if delivery.retain {
            retained.push(delivery);
        }
    }
    Ok(retained)
}

impl Mqtt for ExternalBroker {
    fn publish(
        &self,
        publisher: &str,
        message: Message,
    ) -> BoxFuture<'static, Result<(), PublishError>> {
        let session = self.shared.session.clone();
        let origin = vec![(ORIGIN_PROPERTY.to_owned(), publisher.to_owned())];
        Box::pin(async move {
            session
                .publish_with_properties(
                    &message.topic,
                    message.payload,
                    message.qos,
                    message.retain,
                    origin,
                    PUBLISH_TIMEOUT,
                )
                .await
                .map_err(|error| PublishError(error.to_string()))
        })
    }

    fn retained(&self, topic: &str) -> BoxFuture<'static, Result<Option<Arc<Message>>, MqttError>> {
        let (this, topic) = (self.shared.clone(), topic.to_owned());
        Box::pin(async move {
            let found = this.snapshot(&topic).await?;
            Ok(found
                .into_iter()
                .find(|d| d.topic == topic && !d.payload.is_empty())
                .map(|d| Arc::new(Message::new(d.topic, d.payload, d.qos, true))))
        })
    }

    fn retained_topics(&self, filter: &str) -> BoxFuture<'static, Result<Vec<String>, MqttError>> {
        let (this, filter) = (self.shared.clone(), filter.to_owned());
        Box::pin(async move {
            let found = this.snapshot(&filter).await?;
            Ok(found.into_iter().map(|d| d.topic).collect())
        })
    }

    /// Publishes an empty retained message on every retained topic matching `filter`: the way
    /// every broker, clustered or not, clears them.
    fn clear_retained(&self, filter: &str) -> BoxFuture<'static, Result<usize, MqttError>> {
        let (this, filter) = (self.shared.clone(), filter.to_owned());
        Box::pin(async move {
            let topics: HashSet<String> = this
                .snapshot(&filter)
                .await?
                .into_iter()
                .map(|d| d.topic)
                .collect();
            for topic in &topics {
                this.session
                    .publish_with_properties(
                        topic,
                        Bytes::new(),
                        QoS::AtLeastOnce,
                        true,
                        vec![(ORIGIN_PROPERTY.to_owned(), "clear".to_owned())],
                        PUBLISH_TIMEOUT,
                    )
                    .await
                    .map_err(|e| MqttError(e.to_string()))?;
            }
            Ok(topics.len())
        })
    }

    fn checks_subscriptions_once(&self) -> bool {
        true
    }

    fn link(&self) -> Link {
        match self.status() {
            Status::Connected { url, .. } => Link::Connected {
                broker: url.to_string(),
            },
            Status::Connecting => Link::Down {
                reason: "connecting".into(),
            },
            Status::Disconnected { reason } => Link::Down { reason },
        }
    }

    /// Asks the broker's admin API to close them, in the background (retried for a while);
    /// returns how many usernames or sessions were named.
    fn disconnect(&self, which: &Connections<'_>) -> usize {
        let owned = OwnedConnections::from(which);
        let named = owned.len();
        let admin = self.admin.clone();
        if admin.kind() == AdminKind::None {
            return 0;
        }
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut delay = Duration::from_millis(250);
            loop {
                match admin.kick(&owned.as_connections()).await {
                    Ok(closed) => {
                        tracing::info!(
                            closed,
                            "revoked clients disconnected from the external broker"
                        );
                        return;
                    }
                    Err(error) if started.elapsed() < KICK_RETRY_FOR => {
                        tracing::warn!("cannot disconnect revoked clients yet: {error}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(error) => {
                        tracing::error!(
                            "revoked clients not disconnected from the external broker: {error}"
                        );
                        return;
                    }
                }
            }
        });
        named
    }
}

impl Shared {
    /// The retained messages matching `filter`, from a short-lived subscription of its own.
    async fn snapshot(&self, filter: &str) -> Result<Vec<Delivery>, MqttError> {
        let mut options = self.options.clone();
        options.client_id = format!("{}-r{:08x}", self.options.client_id, rand::random::<u32>());
        options.clean_start = true;
        options.session_expiry = 0;
        options.subscriptions = vec![(filter.to_owned(), QoS::AtMostOnce)];
        let (session, mut deliveries) = Session::start(options);
        let collected =
            tokio::time::timeout(SNAPSHOT_LIMIT, collect(&session, &mut deliveries)).await;
        session.close().await;
        match collected {
            Ok(result) => result,
            Err(_) => Err(MqttError(format!(
                "no answer from the broker within {SNAPSHOT_LIMIT:?}"
            ))),
        }
    }
}

/// [`Connections`] with owned data, for a task.
enum OwnedConnections {
    Usernames(HashSet<String>),
    Clients {
        username: String,
        client_ids: HashSet<String>,
    },
    Sessions(HashSet<(String, String)>),
}

impl OwnedConnections {
    fn from(which: &Connections<'_>) -> OwnedConnections {
        match which {
            Connections::Usernames(names) => OwnedConnections::Usernames((*names).clone()),
            Connections::Clients {
                username,
                client_ids,
            } => OwnedConnections::Clients {
                username: (*username).to_owned(),
                client_ids: (*client_ids).clone(),
            },
            Connections::Sessions(sessions) => OwnedConnections::Sessions((*sessions).clone()),
        }
    }

    fn len(&self) -> usize {
        match self {
            OwnedConnections::Usernames(names) => names.len(),
            OwnedConnections::Clients { client_ids, .. } => client_ids.len(),
            OwnedConnections::Sessions(sessions) => sessions.len(),
        }
    }

    fn as_connections(&self) -> Connections<'_> {
        match self {
            OwnedConnections::Usernames(names) => Connections::Usernames(names),
            OwnedConnections::Clients {
                username,
                client_ids,
            } => Connections::Clients {
                username,
                client_ids,
            },
            OwnedConnections::Sessions(sessions) => Connections::Sessions(sessions),
        }
    }
}
