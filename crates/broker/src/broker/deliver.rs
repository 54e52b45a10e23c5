//! Queueing deliveries for a session: its limits, backpressure for publishers, and what
//! happens to a subscriber that is not draining (see ARCHITECTURE.md, "What happens when a
//! queue is full").

use super::{Backpressure, Pace, Shared, KEEPING_UP};
use crate::session::{ConnLink, Delivery, Session, SessionState};
use mytracks_codec::QoS;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Shared {
    /// Appends one published delivery to a session's queue, applying the queue limits and the
    /// delivery hook. Returns the session when it is online and now over its limits
    /// (backpressure).
    pub fn deliver(
        &self,
        session: &Arc<Session>,
        delivery: Delivery,
        check_hook: bool,
    ) -> Backpressure {
        self.enqueue(session, delivery, check_hook, false)
    }

    /// Appends a retained message sent on subscribe. Nobody can be paced for those (they come
    /// from the store, in a burst): beyond twice the queue limits they are not sent (counted
    /// as dropped), and the subscriber is never disconnected for them.
    pub fn deliver_retained(&self, session: &Arc<Session>, delivery: Delivery, check_hook: bool) {
        self.enqueue(session, delivery, check_hook, true);
    }

    fn enqueue(
        &self,
        session: &Arc<Session>,
        delivery: Delivery,
        check_hook: bool,
        retained_on_subscribe: bool,
    ) -> Backpressure {
        let mut state = session.state.lock();
        if state.ended {
            return None;
        }
        if check_hook
            && !self
                .hooks
                .authorize_delivery(&state.client, &delivery.message)
        {
            return None;
        }
        let online = state.owner.is_some();
        let global_full = self.counters.queued_bytes.load(Ordering::Relaxed)
            >= self.config.max_queued_bytes_total;
        let full = state.over_limits(
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        ) || (!online && global_full);
        let keeping_up = online && state.last_drain.elapsed() < KEEPING_UP;
        if full && (delivery.qos == QoS::AtMostOnce || !online) {
            // A subscriber that is draining its queue paces QoS 0 publishers (few drops,
            // nobody starves); one that is stuck only loses its own QoS 0 messages.
            drop(state);
            self.counters
                .messages_dropped
                .fetch_add(1, Ordering::Relaxed);
            return (keeping_up && !retained_on_subscribe).then(|| Pace {
                session: session.clone(),
                hard: false,
            });
        }
        // Online and QoS 1/2. Past its limits the queue may grow to twice them while the
        // subscriber drains (publishers wait on it) or until it is found stuck; not past that,
        // nor past the broker-wide bound, unless it is keeping up (then each waiting
        // publisher adds one message at most).
        let ceiling = full
            && (global_full
                || state.over_limits(
                    2 * self.config.max_queued_messages,
                    2 * self.config.max_queued_bytes,
                ));
        if ceiling && (retained_on_subscribe || !keeping_up) {
            let owner = state.owner.clone().filter(|_| !retained_on_subscribe);
            if let Some(owner) = &owner {
                // Not keeping up with what it subscribed to: disconnected; its session keeps
                // what fits its limits, as an offline session would.
                self.trim_to_limits(session, &mut state);
                if owner.close_once(ConnLink::TOO_SLOW) {
                    tracing::info!(client_id = %session.client_id, "disconnecting a subscriber over its queue limits that is not draining");
                    self.counters
                        .slow_subscribers_disconnected
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(state);
            self.counters
                .messages_dropped
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if state.queue.is_empty() {
            // It was caught up: how long it takes from here is what counts as stalling.
            state.last_drain = Instant::now();
        }
        state.queued_bytes += delivery.message.cost();
        self.counters
            .queued_bytes
            .fetch_add(delivery.message.cost(), Ordering::Relaxed);
        let persist = state.persistent() && delivery.qos != QoS::AtMostOnce;
        state.queue.push_back(delivery);
        let now_full = state.over_limits(
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        let owner = state.owner.clone();
        if persist {
            self.persister.mark_dirty(session, &mut state);
        }
        drop(state);
        let owner = owner?;
        owner.wake.notify_one();
        (now_full && !retained_on_subscribe).then(|| Pace {
            session: session.clone(),
            hard: true,
        })
    }

    /// Drops a session's newest queued deliveries beyond its limits (counted as dropped).
    fn trim_to_limits(&self, session: &Arc<Session>, state: &mut SessionState) {
        let mut dropped = 0;
        while state.over_limits(
            self.config.max_queued_messages + 1,
            self.config.max_queued_bytes + 1,
        ) {
            let Some(last) = state.queue.pop_back() else {
                break;
            };
            let cost = last.message.cost();
            state.queued_bytes -= cost;
            self.counters
                .queued_bytes
                .fetch_sub(cost, Ordering::Relaxed);
            dropped += 1;
        }
        if dropped > 0 {
            self.counters
                .messages_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            if state.persistent() {
                self.persister.mark_dirty(session, state);
            }
        }
    }
}
