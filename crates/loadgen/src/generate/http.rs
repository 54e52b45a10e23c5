//! OwnTracks HTTP mode: each device's messages posted to `/pub` as the apps post them.

use super::message::Outgoing;
use super::sim::Simulation;
use super::stats::{refused, Outcome, Stats};
use super::{now, GenerateArgs, Workers, QUEUE, REQUEST_TIMEOUT};
use crate::rest::{http_reason, Auth, RestClient, RestSettings};
use anyhow::bail;
use mytracks_owntracks::Message;
use reqwest::header::{HeaderMap, HeaderValue};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Concurrent `POST /pub` requests per device.
const HTTP_IN_FLIGHT: u32 = 8;

struct Http {
    rest: RestClient,
    url: reqwest::Url,
    user: String,
}

impl Http {
    fn new(url: reqwest::Url, user: &str, password: &str) -> anyhow::Result<Http> {
        let auth = Auth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        let settings = RestSettings {
            timeout: REQUEST_TIMEOUT,
            connect_timeout: Some(REQUEST_TIMEOUT),
            idle_connections: HTTP_IN_FLIGHT as usize,
        };
        let rest = RestClient::new(url.as_str(), auth, &settings)
            .map_err(|e| anyhow::anyhow!("cannot create the HTTP client: {e}"))?;
        Ok(Http {
            rest,
            url,
            user: user.to_owned(),
        })
    }

    /// `POST /pub` as the apps do it.
    async fn post(&self, device: &str, message: &Message) -> Outcome {
        let (suffix, _) = message.topic_suffix();
        let topic = format!(
            "{}{suffix}",
            mytracks_owntracks::base_topic(&self.user, device)
        );
        let mut headers = HeaderMap::new();
        for (name, value) in [("X-Limit-U", self.user.as_str()), ("X-Limit-D", device)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        let answer = self
            .rest
            .post_text("", message.json(Some(&topic)), headers)
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                return Outcome::Failed(format!(
                    "cannot reach {}: {}",
                    self.url,
                    http_reason(&error)
                ))
            }
        };
        if (200..300).contains(&answer.status) {
            return Outcome::Acknowledged;
        }
        let detail = answer.body["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        match answer.status {
            401 => Outcome::Refused(refused(&self.user, "HTTP 401")),
            403 => Outcome::Refused(refused(&self.user, &format!("HTTP 403{detail}"))),
            code => Outcome::Failed(format!("{} answered HTTP {code}{detail}", self.url)),
        }
    }
}

/// Posts one device's messages, a few at a time; an `lwt` waits for those before it, so it
/// is the device's last word.
async fn http_worker(
    http: Arc<Http>,
    device: String,
    mut queue: mpsc::Receiver<Message>,
    stats: Arc<Stats>,
) {
    let slots = Arc::new(Semaphore::new(HTTP_IN_FLIGHT as usize));
    while let Some(message) = queue.recv().await {
        let wanted = if message.is_lwt() { HTTP_IN_FLIGHT } else { 1 };
        let Ok(permit) = slots.clone().acquire_many_owned(wanted).await else {
            return;
        };
        let (http, device, stats) = (http.clone(), device.clone(), stats.clone());
        let post = async move {
            stats.record(http.post(&device, &message).await);
            drop(permit);
        };
        if wanted == HTTP_IN_FLIGHT {
            post.await;
        } else {
            tokio::spawn(post);
        }
    }
    let _ = slots.acquire_many(HTTP_IN_FLIGHT).await;
}

/// HTTP mode. The first device's first fix is posted before anything else, so that an
/// unreachable server or refused credentials end the run at once with their own error.
pub(super) async fn start_http(
    url: &reqwest::Url,
    args: &GenerateArgs,
    simulation: &mut Simulation,
    dt: f64,
    stats: &Arc<Stats>,
) -> anyhow::Result<Workers> {
    let password = args.password.as_deref().unwrap_or_default();
    let http = Arc::new(Http::new(url.clone(), &args.user, password)?);
    let first = &mut simulation.devices[0];
    let name = first.name.clone();
    for message in first.step(dt, now()) {
        stats.sent.fetch_add(1, Ordering::Relaxed);
        match http.post(&name, &message).await {
            Outcome::Acknowledged => stats.ack(),
            Outcome::Failed(reason) => bail!(reason),
            Outcome::Refused(error) => return Err(error),
        }
    }
    let mut workers: Workers = Default::default();
    for device in &simulation.devices {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let worker = http_worker(http.clone(), device.name.clone(), receiver, stats.clone());
        workers.0.push(sender);
        workers.1.push(tokio::spawn(worker));
    }
    Ok(workers)
}
