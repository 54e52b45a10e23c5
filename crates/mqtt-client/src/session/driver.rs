//! The session task: dial the urls in turn, run one connection at a time ([`super::link`]),
//! wait out the backoff between rounds, and stop when asked (or when nobody is left).

use super::link::{End, Link};
use super::outbound::Outbound;
use super::{Delivery, Request, SessionOptions, Status, MAX_OUTBOUND_IN_FLIGHT};
use crate::backoff::Backoff;
use crate::connection::{ConnectOptions, Dialer};
use crate::url::BrokerUrl;
use mytracks_codec::ConnAck;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A connection that stayed up this long resets the backoff; one that broke sooner (a broker
/// that accepts and then kicks us, a refused delivery) keeps it growing.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(10);

pub(crate) struct Driver {
    pub(super) options: SessionOptions,
    pub(super) requests: mpsc::Receiver<Request>,
    /// False once every `Session` handle is gone (no more publishes can come).
    pub(super) requests_open: bool,
    pub(super) deliveries: mpsc::Sender<Delivery>,
    status: watch::Sender<Status>,
    stop: watch::Receiver<bool>,
    pub(super) outbound: Outbound,
    backoff: Backoff,
}

impl Driver {
    pub(crate) fn new(
        options: SessionOptions,
        requests: mpsc::Receiver<Request>,
        deliveries: mpsc::Sender<Delivery>,
        status: watch::Sender<Status>,
        stop: watch::Receiver<bool>,
    ) -> Driver {
        let backoff = Backoff::new(options.reconnect_min, options.reconnect_max);
        Driver {
            options,
            requests,
            requests_open: true,
            deliveries,
            status,
            stop,
            outbound: Outbound::new(),
            backoff,
        }
    }

    /// Connects, runs the connection, waits, again, until stopped.
    pub(crate) async fn run(mut self) {
        // Clones, so that waiting for them does not borrow the whole driver.
        let mut stop = self.stop.clone();
        let deliveries = self.deliveries.clone();
        loop {
            self.status.send_replace(Status::Connecting);
            let reason = tokio::select! {
                biased;
                _ = stop_requested(&mut stop, &deliveries) => break,
                round = self.dial_round() => match round {
                    Ok((link, url, ack)) => match self.serve(link, url, ack).await {
                        End::Stopped => break,
                        End::Broken(reason) => reason,
                    },
                    Err(reason) => reason,
                },
            };
            tracing::info!(reason, "MQTT session disconnected");
            self.status.send_replace(Status::Disconnected { reason });
            let delay = self.backoff.next_delay();
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop, &deliveries) => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.outbound.close_all();
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            let _ = request.reply.send(Err(super::SessionError::Closed));
        }
        let closed = "the session was closed".to_owned();
        self.status
            .send_replace(Status::Disconnected { reason: closed });
    }

    /// One connection from CONNACK to its end.
    async fn serve(&mut self, link: Link, url: BrokerUrl, ack: ConnAck) -> End {
        let broker_maximum = ack.properties.receive_maximum.unwrap_or(u16::MAX);
        let capacity = broker_maximum.min(MAX_OUTBOUND_IN_FLIGHT);
        self.outbound.connected(capacity, ack.session_present);
        tracing::info!(%url, session_present = ack.session_present, "MQTT session connected");
        self.status.send_replace(Status::Connected {
            url,
            session_present: ack.session_present,
        });
        let started = Instant::now();
        let stop = self.stop.clone();
        let end = link.run(self, stop).await;
        if started.elapsed() >= HEALTHY_CONNECTION {
            self.backoff.reset();
        }
        end
    }

    /// Every url in turn; the first CONNACK wins. The error says why each failed.
    async fn dial_round(&self) -> Result<(Link, BrokerUrl, ConnAck), String> {
        let mut failures = Vec::new();
        for url in &self.options.urls {
            match self.dial(url).await {
                Ok((link, ack)) => return Ok((link, url.clone(), ack)),
                Err(reason) => {
                    tracing::debug!(%url, reason, "MQTT dial failed");
                    failures.push(format!("{url}: {reason}"));
                }
            }
        }
        if failures.is_empty() {
            return Err("no broker url configured".to_owned());
        }
        Err(failures.join("; "))
    }

    async fn dial(&self, url: &BrokerUrl) -> Result<(Link, ConnAck), String> {
        let options = &self.options;
        let dialer = Dialer::for_url(url, &options.tls)
            .map_err(|e| e.to_string())?
            .with_timeout(options.connect_timeout);
        let connect = ConnectOptions {
            username: options.username.as_deref(),
            password: options.password.as_deref(),
            version: options.version,
            keep_alive: options.keep_alive,
            clean_start: options.clean_start,
            session_expiry: Some(options.session_expiry).filter(|&s| s > 0),
            receive_maximum: Some(options.receive_maximum.max(1)),
            max_packet_size: Some(options.max_packet_size.max(64)),
            ..ConnectOptions::new(&options.client_id)
        };
        let (connection, ack) = dialer
            .connect_with_ack(&connect)
            .await
            .map_err(|e| e.to_string())?;
        Ok((Link::new(connection, options, &ack), ack))
    }
}

/// Resolves when the task must stop: `close()` was called, or every `Session` handle and the
/// deliveries receiver are gone.
pub(super) async fn stop_requested(
    stop: &mut watch::Receiver<bool>,
    deliveries: &mpsc::Sender<Delivery>,
) {
    if stop.wait_for(|closing| *closing).await.is_ok() {
        return;
    }
    deliveries.closed().await;
}
