//! The subscription trie: which sessions want a topic.
//!
//! Filters are stored level by level; a topic is matched by walking literal, `+` and `#`
//! branches at once, so the cost grows with the topic's depth and the number of matching
//! subscriptions, not with the number of subscriptions in total.

use crate::session::Session;
use mytracks_codec::{QoS, SubscriptionOptions};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One subscription as the trie holds it.
#[derive(Clone, Debug)]
pub(crate) struct Subscriber {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}

/// Members of one `$share/<group>/<filter>`: each message goes to one of them.
#[derive(Debug, Default)]
struct SharedGroup {
    name: Box<str>,
    members: Vec<Subscriber>,
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Entries {
    plain: Vec<Subscriber>,
    shared: Vec<SharedGroup>,
}

impl Entries {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.shared.is_empty()
    }
}

#[derive(Debug, Default)]
struct Node {
    children: FxHashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Subscriptions whose filter ends with `#` right after this node's path.
    hash: Entries,
    /// Subscriptions whose filter ends exactly here.
    exact: Entries,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.exact.is_empty()
    }
}

/// A session a message should reach, with everything its matching subscriptions add up to.
#[derive(Debug)]
pub(crate) struct Target {
    pub session: Arc<Session>,
    pub qos: QoS,
    pub retain_as_published: bool,
    pub no_local: bool,
    pub subscription_ids: SmallVec<[u32; 2]>,
}

impl Target {
    /// Folds another matching subscription of the same session into this one.
    fn merge(&mut self, other: Target) {
        self.qos = self.qos.max(other.qos);
        self.retain_as_published |= other.retain_as_published;
        // No Local applies only if every matching subscription asked for it.
        self.no_local &= other.no_local;
        self.subscription_ids.extend(other.subscription_ids);
    }
}

/// Up to this many targets, duplicates are merged as they are found; beyond it they are
/// merged once at the end by sorting, so a 10,000-device fan-out stays O(n log n).
const LINEAR_DEDUP_LIMIT: usize = 16;

/// The trie.
#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    count: usize,
}

impl Router {
    /// Number of subscriptions (each shared member counts once).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds or replaces `session`'s subscription to `filter` (already validated), in `group`
    /// when it is a shared subscription. Returns true when it replaced an existing one.
    pub fn subscribe(&mut self, filter: &str, group: Option<&str>, subscriber: Subscriber) -> bool {
        let entries = Self::entries_mut(&mut self.root, filter);
        let list = match group {
            None => &mut entries.plain,
            Some(name) => {
                let index = match entries.shared.iter().position(|g| &*g.name == name) {
                    Some(i) => i,
                    None => {
                        entries.shared.push(SharedGroup {
                            name: name.into(),
                            ..Default::default()
                        });
                        entries.shared.len() - 1
                    }
                };
                &mut entries.shared[index].members
            }
        };
        if let Some(existing) = list
            .iter_mut()
            .find(|s| s.session.id == subscriber.session.id)
        {
            *existing = subscriber;
            true
        } else {
            list.push(subscriber);
            self.count += 1;
            false
        }
    }

    /// Removes `session_id`'s subscription to `filter`; true when there was one.
    pub fn unsubscribe(&mut self, filter: &str, group: Option<&str>, session_id: u64) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = Self::remove(&mut self.root, &levels, group, session_id);
        if removed {
            self.count -= 1;
        }
        removed
    }

    fn remove(node: &mut Node, levels: &[&str], group: Option<&str>, session_id: u64) -> bool {
        let entries = match levels {
            ["#"] => &mut node.hash,
            [] => &mut node.exact,
            [first, rest @ ..] => {
                let child = if *first == "+" {
                    node.plus.as_deref_mut()
                } else {
                    node.children.get_mut(*first)
                };
                let Some(child) = child else { return false };
                let removed = Self::remove(child, rest, group, session_id);
                if child.is_empty() {
                    if *first == "+" {
                        node.plus = None;
                    } else {
                        node.children.remove(*first);
                    }
                }
                return removed;
            }
        };
        match group {
            None => {
                let before = entries.plain.len();
                entries.plain.retain(|s| s.session.id != session_id);
                before != entries.plain.len()
            }
            Some(name) => {
                let Some(index) = entries.shared.iter().position(|g| &*g.name == name) else {
                    return false;
                };
                let members = &mut entries.shared[index].members;
                let before = members.len();
                members.retain(|s| s.session.id != session_id);
                let removed = before != members.len();
                if members.is_empty() {
                    entries.shared.remove(index);
                }
                removed
            }
        }
    }

    fn entries_mut<'a>(root: &'a mut Node, filter: &str) -> &'a mut Entries {
        let mut node = root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return &mut node.hash;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        &mut node.exact
    }

    /// Every session that should receive a message on `topic`, one entry per session with the
    /// highest granted QoS of its matching subscriptions and all their identifiers.
    pub fn matches(&self, topic: &str) -> SmallVec<[Target; 4]> {
        let mut out: SmallVec<[Target; 4]> = SmallVec::new();
        let dollar = topic.starts_with('$');
        let levels: SmallVec<[&str; 8]> = topic.split('/').collect();
        Self::walk(&self.root, &levels, 0, dollar, &mut out);
        if out.len() > LINEAR_DEDUP_LIMIT {
            // Large fan-outs were appended without the linear duplicate check: merge now.
            out.sort_by_key(|t| t.session.id);
            let mut merged: SmallVec<[Target; 4]> = SmallVec::with_capacity(out.len());
            for target in out {
                match merged.last_mut() {
                    Some(last) if last.session.id == target.session.id => last.merge(target),
                    _ => merged.push(target),
                }
            }
            return merged;
        }
        out
    }

    fn walk(
        node: &Node,
        levels: &[&str],
        depth: usize,
        dollar: bool,
        out: &mut SmallVec<[Target; 4]>,
    ) {
        let wildcard_allowed = depth > 0 || !dollar;
        if wildcard_allowed {
            Self::collect(&node.hash, out);
        }
        let Some(level) = levels.get(depth) else {
            Self::collect(&node.exact, out);
            return;
        };
        if let Some(child) = node.children.get(*level) {
            Self::walk(child, levels, depth + 1, dollar, out);
        }
        if wildcard_allowed {
            if let Some(child) = node.plus.as_deref() {
                Self::walk(child, levels, depth + 1, dollar, out);
            }
        }
    }

    fn collect(entries: &Entries, out: &mut SmallVec<[Target; 4]>) {
        for subscriber in &entries.plain {
            Self::add(subscriber, out);
        }
        for group in &entries.shared {
            if group.members.is_empty() {
                continue;
            }
            // Round robin, preferring a member that is connected right now.
            let start = group.next.fetch_add(1, Ordering::Relaxed);
            let count = group.members.len();
            let chosen = (0..count)
                .map(|i| &group.members[(start + i) % count])
                .find(|m| m.session.state.lock().owner.is_some())
                .unwrap_or(&group.members[start % count]);
            Self::add(chosen, out);
        }
    }

    fn add(subscriber: &Subscriber, out: &mut SmallVec<[Target; 4]>) {
        let target = Target {
            session: subscriber.session.clone(),
            qos: subscriber.options.qos,
            retain_as_published: subscriber.options.retain_as_published,
            no_local: subscriber.options.no_local,
            subscription_ids: subscriber.identifier.into_iter().collect(),
        };
        if out.len() <= LINEAR_DEDUP_LIMIT {
            if let Some(existing) = out.iter_mut().find(|t| t.session.id == target.session.id) {
                existing.merge(target);
                return;
            }
        }
        out.push(target);
    }
}
