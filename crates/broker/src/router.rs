//! The subscription trie: which sessions want a topic.
//!
//! Filters are stored level by level; a topic is matched by walking literal, `+` and `#`
//! branches at once, so the cost grows with the topic's depth and the number of matching
//! subscriptions, not with the number of subscriptions in total.

mod children;
#[cfg(test)]
mod tests;

use crate::session::Session;
use children::{allocation, Children};
use mytracks_codec::{QoS, SubscriptionOptions};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One subscription as the trie holds it.
#[derive(Clone, Debug)]
pub(crate) struct Subscriber {
    pub session: Arc<Session>,
    /// Whose budget the subscription's memory counts against (`None`: anonymous clients
    /// and the application's own, together).
    pub username: Option<Arc<str>>,
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

    /// Heap bytes of the plain list and the group list (not the groups' own allocations).
    fn lists_bytes(&self) -> usize {
        allocation(self.plain.capacity() * std::mem::size_of::<Subscriber>())
            + allocation(self.shared.capacity() * std::mem::size_of::<SharedGroup>())
    }
}

impl SharedGroup {
    fn heap_bytes(&self) -> usize {
        allocation(self.name.len())
            + allocation(self.members.capacity() * std::mem::size_of::<Subscriber>())
    }
}

#[derive(Debug, Default)]
struct Node {
    children: Children,
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

/// Heap bytes of a boxed `+` child.
fn plus_node_bytes() -> usize {
    allocation(std::mem::size_of::<Node>())
}

/// The trie. Its depth is bounded by the topic level limit (filters are validated against
/// it before they get here), which bounds the recursion of `walk` and `remove`.
#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    count: usize,
    /// Heap bytes of the trie: nodes, keys, subscriber lists, as the allocator sizes them.
    memory: usize,
    /// The same, split by the username whose subscription made it grow (shared nodes count
    /// for whoever made them; a user is never credited below zero).
    by_user: FxHashMap<Option<Arc<str>>, usize>,
}

impl Router {
    /// Number of subscriptions (each shared member counts once).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Heap bytes of the trie, in bytes.
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Heap bytes of the trie that `username`'s subscriptions made.
    pub fn memory_of(&self, username: Option<&Arc<str>>) -> usize {
        self.by_user.get(&username.cloned()).copied().unwrap_or(0)
    }

    fn charge(&mut self, username: Option<Arc<str>>, before: usize) {
        let grown = self.memory - before;
        if grown > 0 {
            *self.by_user.entry(username).or_default() += grown;
        }
    }

    fn credit(&mut self, username: Option<Arc<str>>, freed: usize) {
        if let Some(held) = self.by_user.get_mut(&username) {
            *held = held.saturating_sub(freed);
            if *held == 0 {
                self.by_user.remove(&username);
                if self.by_user.is_empty() {
                    self.by_user = FxHashMap::default(); // an empty trie owns no heap
                }
            }
        }
    }

    /// Adds or replaces `session`'s subscription to `filter` (already validated), in `group`
    /// when it is a shared subscription. Returns true when it replaced an existing one.
    pub fn subscribe(&mut self, filter: &str, group: Option<&str>, subscriber: Subscriber) -> bool {
        let memory_before = self.memory;
        let username = subscriber.username.clone();
        let replaced = self.insert(filter, group, subscriber);
        self.charge(username, memory_before);
        replaced
    }

    fn insert(&mut self, filter: &str, group: Option<&str>, subscriber: Subscriber) -> bool {
        let (entries, added) = Self::entries_mut(&mut self.root, filter);
        self.memory += added;
        let before = entries.lists_bytes();
        let (list, group_before) = match group {
            None => (&mut entries.plain, 0),
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
                let group = &mut entries.shared[index];
                let group_before = if group.members.is_empty() {
                    0 // just created: its name is new too
                } else {
                    group.heap_bytes()
                };
                (&mut group.members, group_before)
            }
        };
        let replaced = if let Some(existing) = list
            .iter_mut()
            .find(|s| s.session.id == subscriber.session.id)
        {
            *existing = subscriber;
            true
        } else {
            list.push(subscriber);
            self.count += 1;
            false
        };
        let group_after = group.map_or(0, |name| {
            entries
                .shared
                .iter()
                .find(|g| &*g.name == name)
                .map_or(0, SharedGroup::heap_bytes)
        });
        self.memory += entries.lists_bytes() + group_after - before - group_before;
        replaced
    }

    /// Removes `session_id`'s subscription to `filter`; true when there was one. The bytes it
    /// frees are credited to the username of the subscription removed.
    pub fn unsubscribe(&mut self, filter: &str, group: Option<&str>, session_id: u64) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut freed = 0;
        let removed = Self::remove(&mut self.root, &levels, group, session_id, &mut freed);
        self.memory -= freed;
        let Some(username) = removed else {
            return false;
        };
        self.count -= 1;
        self.credit(username, freed);
        true
    }

    fn remove(
        node: &mut Node,
        levels: &[&str],
        group: Option<&str>,
        session_id: u64,
        freed: &mut usize,
    ) -> Option<Option<Arc<str>>> {
        let entries = match levels {
            ["#"] => &mut node.hash,
            [] => &mut node.exact,
            [first, rest @ ..] => {
                let child = if *first == "+" {
                    node.plus.as_deref_mut()
                } else {
                    node.children.get_mut(first)
                };
                let child = child?;
                let removed = Self::remove(child, rest, group, session_id, freed);
                // An empty node owns no heap (emptied lists are released): removing it
                // frees its place in the parent and its key.
                if child.is_empty() {
                    if *first == "+" {
                        node.plus = None;
                        *freed += plus_node_bytes();
                    } else {
                        *freed += node.children.remove(first);
                    }
                }
                return removed;
            }
        };
        let before = entries.lists_bytes();
        let removed = match group {
            None => {
                let index = entries
                    .plain
                    .iter()
                    .position(|s| s.session.id == session_id);
                let removed = index.map(|i| entries.plain.swap_remove(i).username);
                release_if_empty(&mut entries.plain);
                removed
            }
            Some(name) => {
                let index = entries.shared.iter().position(|g| &*g.name == name)?;
                let group = &mut entries.shared[index];
                let group_before = group.heap_bytes();
                let member = group
                    .members
                    .iter()
                    .position(|s| s.session.id == session_id);
                let removed = member.map(|i| group.members.remove(i).username);
                if group.members.is_empty() {
                    entries.shared.remove(index);
                    release_if_empty(&mut entries.shared);
                    *freed += group_before;
                } else {
                    *freed += group_before - group.heap_bytes();
                }
                removed
            }
        };
        *freed += before - entries.lists_bytes();
        removed
    }

    /// The entries for `filter`, creating the nodes on the way; also the estimated bytes of
    /// the nodes created.
    fn entries_mut<'a>(root: &'a mut Node, filter: &str) -> (&'a mut Entries, usize) {
        let mut node = root;
        let mut added = 0;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return (&mut node.hash, added);
            }
            node = if level == "+" {
                if node.plus.is_none() {
                    added += plus_node_bytes();
                }
                node.plus.get_or_insert_with(Default::default)
            } else {
                let (child, bytes) = node.children.get_or_insert(level);
                added += bytes;
                child
            };
        }
        (&mut node.exact, added)
    }

    /// Every session that should receive a message on `topic`, one entry per session with the
    /// highest granted QoS of its matching subscriptions and all their identifiers.
    ///
    /// `may_read` says whether a shared-group member may receive the message: a group's
    /// message goes to one member that may read it (preferring one connected right now), so
    /// members that may not read it neither receive it nor make the group lose it.
    pub fn matches(
        &self,
        topic: &str,
        may_read: &dyn Fn(&Subscriber) -> bool,
    ) -> SmallVec<[Target; 4]> {
        let mut out: SmallVec<[Target; 4]> = SmallVec::new();
        let dollar = topic.starts_with('$');
        let levels: SmallVec<[&str; 8]> = topic.split('/').collect();
        let mut walk = Walk {
            levels: &levels,
            dollar,
            may_read,
            out: &mut out,
        };
        walk.node(&self.root, 0);
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

/// Gives an emptied list's allocation back, so that an empty node owns no heap.
fn release_if_empty<T>(list: &mut Vec<T>) {
    if list.is_empty() {
        *list = Vec::new();
    }
}

/// One topic's walk down the trie: literal, `+` and `#` branches at once.
struct Walk<'a, 'o> {
    levels: &'a [&'a str],
    dollar: bool,
    may_read: &'a dyn Fn(&Subscriber) -> bool,
    out: &'o mut SmallVec<[Target; 4]>,
}

impl Walk<'_, '_> {
    fn node(&mut self, node: &Node, depth: usize) {
        let wildcard_allowed = depth > 0 || !self.dollar;
        if wildcard_allowed {
            self.collect(&node.hash);
        }
        let Some(level) = self.levels.get(depth) else {
            self.collect(&node.exact);
            return;
        };
        if let Some(child) = node.children.get(level) {
            self.node(child, depth + 1);
        }
        if wildcard_allowed {
            if let Some(child) = node.plus.as_deref() {
                self.node(child, depth + 1);
            }
        }
    }

    fn collect(&mut self, entries: &Entries) {
        for subscriber in &entries.plain {
            Router::add(subscriber, self.out);
        }
        for group in &entries.shared {
            if let Some(chosen) = self.choose(group) {
                Router::add(chosen, self.out);
            }
        }
    }

    /// Round robin over the members that may read the message, preferring one that is
    /// connected right now.
    fn choose<'g>(&self, group: &'g SharedGroup) -> Option<&'g Subscriber> {
        let count = group.members.len();
        if count == 0 {
            return None;
        }
        let start = group.next.fetch_add(1, Ordering::Relaxed);
        let mut offline = None;
        for member in (0..count).map(|i| &group.members[(start + i) % count]) {
            if !(self.may_read)(member) {
                continue;
            }
            if member.session.state.lock().owner.is_some() {
                return Some(member);
            }
            offline.get_or_insert(member);
        }
        offline
    }
}
