//! Retained messages, stored in a trie by topic level so a wildcard subscription finds its
//! retained messages without scanning every topic.

use crate::Message;
use rustc_hash::FxHashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
struct Node {
    children: FxHashMap<Box<str>, Node>,
    message: Option<Retained>,
}

/// A retained message and the user whose quota it counts against.
#[derive(Debug)]
struct Retained {
    message: Arc<Message>,
    owner: Option<Arc<str>>,
}

/// How much a user (or, under `None`, every anonymous publisher together) has retained.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub messages: usize,
    pub bytes: usize,
}

/// The caps on retained messages, in total and per publishing user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetainedLimits {
    pub messages: usize,
    pub bytes: usize,
    pub messages_per_user: usize,
    pub bytes_per_user: usize,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits {
            messages: usize::MAX,
            bytes: usize::MAX,
            messages_per_user: usize::MAX,
            bytes_per_user: usize::MAX,
        }
    }
}

/// What [`RetainedStore::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetainOutcome {
    /// Stored (or cleared, for an empty payload): the store changed.
    Changed,
    /// An empty payload for a topic with nothing retained.
    Unchanged,
    /// Not stored: it would take the publisher or the store over a limit. Whatever the topic
    /// held before stays.
    OverQuota,
}

/// The retained message store (in memory; the persister mirrors it to disk).
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    root: Node,
    total: Usage,
    per_owner: FxHashMap<Option<Arc<str>>, Usage>,
    limits: RetainedLimits,
}

/// What a retained message costs against the byte limits.
fn cost(message: &Message) -> usize {
    message.topic.len() + message.payload.len()
}

impl RetainedStore {
    pub fn new(limits: RetainedLimits) -> Self {
        RetainedStore {
            limits,
            ..Default::default()
        }
    }

    pub fn count(&self) -> usize {
        self.total.messages
    }

    pub fn bytes(&self) -> usize {
        self.total.bytes
    }

    /// What `owner` has retained.
    #[cfg(test)]
    pub fn usage(&self, owner: Option<&str>) -> Usage {
        let key: Option<Arc<str>> = owner.map(Into::into);
        self.per_owner.get(&key).copied().unwrap_or_default()
    }

    /// Stores `message` for its topic on `owner`'s account, or clears the topic when the
    /// payload is empty; refuses what would go over a limit.
    pub fn set(&mut self, message: Arc<Message>, owner: Option<Arc<str>>) -> RetainOutcome {
        if message.payload.is_empty() {
            return match self.remove(&message.topic) {
                true => RetainOutcome::Changed,
                false => RetainOutcome::Unchanged,
            };
        }
        if !self.admits(&message, owner.as_ref()) {
            return RetainOutcome::OverQuota;
        }
        self.insert(message, owner);
        RetainOutcome::Changed
    }

    /// Whether retaining `message` for `owner` stays within the limits (clearing always does).
    pub fn admits(&self, message: &Message, owner: Option<&Arc<str>>) -> bool {
        if message.payload.is_empty() {
            return true;
        }
        let new_cost = cost(message);
        let old = self.find(&message.topic);
        let (old_cost, old_same_owner) = match old {
            Some(old) => (cost(&old.message), old.owner.as_ref() == owner),
            None => (0, false),
        };
        let replaces = usize::from(old.is_some());
        let mine = self
            .per_owner
            .get(&owner.cloned())
            .copied()
            .unwrap_or_default();
        let (mine_messages, mine_bytes) = match old_same_owner {
            true => (mine.messages - 1, mine.bytes - old_cost),
            false => (mine.messages, mine.bytes),
        };
        let limits = self.limits;
        self.total.messages - replaces < limits.messages
            && self.total.bytes - old_cost + new_cost <= limits.bytes
            && mine_messages < limits.messages_per_user
            && mine_bytes + new_cost <= limits.bytes_per_user
    }

    /// Stores without checking the limits (messages restored at start were accepted under
    /// the limits of their day; dropping them now would lose data silently).
    pub fn insert(&mut self, message: Arc<Message>, owner: Option<Arc<str>>) {
        let topic = message.topic.clone();
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let added = cost(&message);
        let old = node.message.replace(Retained {
            message,
            owner: owner.clone(),
        });
        if let Some(old) = old {
            Self::uncount(&mut self.total, &mut self.per_owner, &old);
        }
        self.total.messages += 1;
        self.total.bytes += added;
        let usage = self.per_owner.entry(owner).or_default();
        usage.messages += 1;
        usage.bytes += added;
    }

    fn uncount(
        total: &mut Usage,
        per_owner: &mut FxHashMap<Option<Arc<str>>, Usage>,
        old: &Retained,
    ) {
        let removed = cost(&old.message);
        total.messages -= 1;
        total.bytes -= removed;
        if let Some(usage) = per_owner.get_mut(&old.owner) {
            usage.messages -= 1;
            usage.bytes -= removed;
            if usage.messages == 0 {
                per_owner.remove(&old.owner);
            }
        }
    }

    fn find(&self, topic: &str) -> Option<&Retained> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// The message retained for exactly `topic`.
    pub fn get(&self, topic: &str) -> Option<Arc<Message>> {
        self.find(topic).map(|r| r.message.clone())
    }

    pub fn remove(&mut self, topic: &str) -> bool {
        let levels: Vec<&str> = topic.split('/').collect();
        // Depth is bounded by the topic level limit, so the recursion is too.
        let Some(old) = Self::remove_at(&mut self.root, &levels) else {
            return false;
        };
        Self::uncount(&mut self.total, &mut self.per_owner, &old);
        true
    }

    fn remove_at(node: &mut Node, levels: &[&str]) -> Option<Retained> {
        match levels {
            [] => node.message.take(),
            [first, rest @ ..] => {
                let child = node.children.get_mut(*first)?;
                let removed = Self::remove_at(child, rest);
                if child.message.is_none() && child.children.is_empty() {
                    node.children.remove(*first);
                }
                removed
            }
        }
    }

    /// Every retained message whose topic matches `filter` (topics starting with `$` are not
    /// matched by a leading wildcard). Iterative: no recursion however deep the trie.
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        // (node, index of the next filter level to match)
        let mut pending: Vec<(&Node, usize)> = vec![(&self.root, 0)];
        while let Some((node, depth)) = pending.pop() {
            let at_root = depth == 0;
            let visible = |name: &str| !(at_root && name.starts_with('$'));
            match levels.get(depth) {
                None => out.extend(node.message.as_ref().map(|r| r.message.clone())),
                Some(&"#") => {
                    // `a/#` also matches `a` itself.
                    out.extend(node.message.as_ref().map(|r| r.message.clone()));
                    for (name, child) in &node.children {
                        if visible(name) {
                            Self::collect_all(child, &mut out);
                        }
                    }
                }
                Some(&"+") => {
                    for (name, child) in &node.children {
                        if visible(name) {
                            pending.push((child, depth + 1));
                        }
                    }
                }
                Some(level) => {
                    if let Some(child) = node.children.get(*level) {
                        pending.push((child, depth + 1));
                    }
                }
            }
        }
        out
    }

    fn collect_all(start: &Node, out: &mut Vec<Arc<Message>>) {
        let mut pending = vec![start];
        while let Some(node) = pending.pop() {
            out.extend(node.message.as_ref().map(|r| r.message.clone()));
            pending.extend(node.children.values());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mytracks_codec::QoS;

    fn msg(topic: &str) -> Arc<Message> {
        Arc::new(Message::new(
            topic.to_string(),
            &b"x"[..],
            QoS::AtMostOnce,
            true,
        ))
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut t: Vec<String> = store
            .matching(filter)
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        t.sort();
        t
    }

    #[test]
    fn wildcards_and_dollar_rule() {
        let mut store = RetainedStore::default();
        for t in ["a", "a/b", "a/b/c", "/x", "$SYS/up", "a//b"] {
            store.set(msg(t), None);
        }
        assert_eq!(store.count(), 6);
        assert_eq!(topics(&store, "a/#"), ["a", "a//b", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "#"), ["/x", "a", "a//b", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "+/x"), ["/x"]);
        assert_eq!(topics(&store, "a/+"), ["a/b"]);
        assert_eq!(topics(&store, "a/+/b"), ["a//b"]);
        assert_eq!(topics(&store, "$SYS/#"), ["$SYS/up"]);
        store.set(
            Arc::new(Message::new("a/b", &b""[..], QoS::AtMostOnce, true)),
            None,
        );
        assert_eq!(store.count(), 5);
        assert_eq!(topics(&store, "a/#"), ["a", "a//b", "a/b/c"]);
    }

    #[test]
    fn limits_per_user_and_in_total() {
        let limits = RetainedLimits {
            messages: 3,
            bytes: 1000,
            messages_per_user: 2,
            bytes_per_user: 1000,
        };
        let mut store = RetainedStore::new(limits);
        let alice: Option<Arc<str>> = Some("alice".into());
        let bob: Option<Arc<str>> = Some("bob".into());
        assert_eq!(store.set(msg("a/1"), alice.clone()), RetainOutcome::Changed);
        assert_eq!(store.set(msg("a/2"), alice.clone()), RetainOutcome::Changed);
        assert_eq!(
            store.set(msg("a/3"), alice.clone()),
            RetainOutcome::OverQuota
        );
        // Replacing one's own message costs nothing extra.
        assert_eq!(store.set(msg("a/2"), alice.clone()), RetainOutcome::Changed);
        assert_eq!(store.set(msg("b/1"), bob.clone()), RetainOutcome::Changed);
        // The store is full (3), even for a user under their own limit.
        assert_eq!(store.set(msg("b/2"), bob.clone()), RetainOutcome::OverQuota);
        assert_eq!(
            store.usage(Some("alice")),
            Usage {
                messages: 2,
                bytes: 8
            }
        );
        // Clearing frees the budget.
        let empty = Arc::new(Message::new("a/1", &b""[..], QoS::AtMostOnce, true));
        assert_eq!(store.set(empty, alice.clone()), RetainOutcome::Changed);
        assert_eq!(store.set(msg("b/2"), bob.clone()), RetainOutcome::Changed);
        assert_eq!(store.count(), 3);
        assert_eq!(store.usage(Some("alice")).messages, 1);
        assert_eq!(store.usage(Some("bob")).messages, 2);
    }

    #[test]
    fn byte_limit_counts_topic_and_payload() {
        let limits = RetainedLimits {
            bytes_per_user: 10,
            ..RetainedLimits::default()
        };
        let mut store = RetainedStore::new(limits);
        let big = Arc::new(Message::new("t", vec![b'x'; 10], QoS::AtMostOnce, true));
        assert_eq!(store.set(big, None), RetainOutcome::OverQuota);
        let fits = Arc::new(Message::new("t", vec![b'x'; 9], QoS::AtMostOnce, true));
        assert_eq!(store.set(fits, None), RetainOutcome::Changed);
        assert_eq!(store.bytes(), 10);
    }
}
