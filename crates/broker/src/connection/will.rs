//! After the connection: session cleanup, wills (immediate or delayed), disconnect hooks.

use super::*;

/// Cleanup after the connection closed: detach from the session, end or keep it, publish the
/// will if due, tell the hooks.
pub(super) fn finish(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    link: &Arc<ConnLink>,
    client: &Arc<ClientInfo>,
    end: End,
    will: Option<Box<Will>>,
) {
    shared
        .counters
        .clients_connected
        .fetch_sub(1, Ordering::Relaxed);
    let (still_owner, ends_now, persistent, resumed_elsewhere) = {
        let mut state = session.state.lock();
        let still_owner = state.owner.as_ref().is_some_and(|o| o.id == link.id);
        // Taken over by a connection that resumes the session: the client is back, so its
        // will is not due (Mosquitto does not send it either). The new connection waits for
        // this one to finish before it attaches; after too long a wait it attaches anyway.
        let resumed_elsewhere = if still_owner {
            link.close_reason.load(Ordering::SeqCst) == ConnLink::RESUMED_ELSEWHERE
                && state.persistent()
        } else {
            !state.ended && state.owner.is_some()
        };
        if still_owner {
            state.owner = None;
            state.disconnected_at = Some(Instant::now());
            if state.persistent() {
                shared.persister.mark_dirty(session, &mut state);
            }
        }
        (
            still_owner,
            still_owner && !state.persistent(),
            state.persistent(),
            resumed_elsewhere,
        )
    };
    // Publishers blocked on this session's queue must not wait for a reader that is gone.
    session.space.notify_waiters();
    if ends_now {
        let mut sessions = shared.sessions.lock();
        shared.end_session(&mut sessions, session);
    }
    let reason = match end {
        End::ClientDisconnect { .. } => DisconnectReason::Client(ReasonCode::SUCCESS),
        End::TakenOver => DisconnectReason::Server(ReasonCode::SESSION_TAKEN_OVER),
        End::Shutdown => DisconnectReason::Server(ReasonCode::SERVER_SHUTTING_DOWN),
        End::Network => DisconnectReason::Network,
        End::Error(reason) => DisconnectReason::Server(reason),
    };
    tracing::debug!(client_id = %client.client_id, ?reason, "client disconnected");
    shared.hooks.on_disconnect(client, &reason);

    let publish_will = match end {
        End::ClientDisconnect { publish_will } => publish_will,
        End::Shutdown => false,
        End::TakenOver => !resumed_elsewhere,
        End::Network | End::Error(_) => true,
    };
    let Some(will) = will.filter(|_| publish_will) else {
        return;
    };
    let delay = will.properties.will_delay_interval.unwrap_or(0);
    let message = will_message(*will);
    if delay == 0 || end == End::TakenOver || !still_owner || !persistent {
        // The session is over, so the will is due now (MQTT 5 3.1.2.5).
        publish_internal(shared.clone(), client.clone(), message, session.id);
        return;
    }
    let pending = PendingWill::new();
    session.state.lock().pending_will = Some(pending.clone());
    let shared = shared.clone();
    let client = client.clone();
    let session = session.clone();
    let background = shared.background.clone();
    background.spawn(async move {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {}
            _ = pending.cancel.cancelled() => {
                if !pending.publish_now.load(Ordering::SeqCst) {
                    return;
                }
            }
        }
        {
            let mut state = session.state.lock();
            if state
                .pending_will
                .as_ref()
                .is_some_and(|w| Arc::ptr_eq(&w.publish_now, &pending.publish_now))
            {
                state.pending_will = None;
            }
        }
        publish_internal(shared, client, message, session.id);
    });
}

pub(super) fn will_message(will: Will) -> Message {
    let mut properties = will.properties;
    properties.will_delay_interval = None;
    let expires_at = properties
        .message_expiry_interval
        .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
    Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: (!properties.is_empty()).then(|| Box::new(properties)),
        expires_at,
    }
}

/// Publishes a message on a client's behalf outside its connection (wills), through the same
/// authorization and gate as its own publishes.
pub(super) fn publish_internal(
    shared: Arc<Shared>,
    client: Arc<ClientInfo>,
    message: Message,
    origin: u64,
) {
    if !shared
        .hooks
        .authorize_publish(&client, &message.topic, message.qos, message.retain)
    {
        return;
    }
    let message = Arc::new(message);
    match shared.hooks.on_publish(&client, &message) {
        PublishGate::Accept => {
            shared.route(message, origin, client.username.as_ref());
        }
        PublishGate::Reject(_) => {}
        PublishGate::Wait(future) => {
            let background = shared.background.clone();
            background.spawn(async move {
                if future.await.is_ok() {
                    shared.route(message, origin, client.username.as_ref());
                }
            });
        }
    }
}
