//! Retained messages, stored in a trie by topic level so a wildcard subscription finds its
//! retained messages without scanning every topic.

use crate::Message;
use rustc_hash::FxHashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
struct Node {
    children: FxHashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

/// The retained message store (in memory; the persister mirrors it to disk).
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    root: Node,
    count: usize,
}

impl RetainedStore {
    pub fn count(&self) -> usize {
        self.count
    }

    /// Stores `message` for its topic, or clears the topic when the payload is empty.
    /// Returns true when the store changed.
    pub fn set(&mut self, message: Arc<Message>) -> bool {
        let topic = message.topic.clone();
        if message.payload.is_empty() {
            return self.remove(&topic);
        }
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.replace(message).is_none() {
            self.count += 1;
        }
        true
    }

    pub fn remove(&mut self, topic: &str) -> bool {
        let levels: Vec<&str> = topic.split('/').collect();
        let removed = Self::remove_at(&mut self.root, &levels);
        if removed {
            self.count -= 1;
        }
        removed
    }

    fn remove_at(node: &mut Node, levels: &[&str]) -> bool {
        match levels {
            [] => node.message.take().is_some(),
            [first, rest @ ..] => {
                let Some(child) = node.children.get_mut(*first) else {
                    return false;
                };
                let removed = Self::remove_at(child, rest);
                if child.message.is_none() && child.children.is_empty() {
                    node.children.remove(*first);
                }
                removed
            }
        }
    }

    /// Every retained message whose topic matches `filter` (topics starting with `$` are not
    /// matched by a leading wildcard).
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        Self::walk(&self.root, &levels, true, &mut out);
        out
    }

    fn walk(node: &Node, levels: &[&str], at_root: bool, out: &mut Vec<Arc<Message>>) {
        match levels {
            [] => out.extend(node.message.clone()),
            ["#"] => {
                // `a/#` also matches `a` itself.
                out.extend(node.message.clone());
                for (name, child) in &node.children {
                    if !(at_root && name.starts_with('$')) {
                        Self::collect_all(child, out);
                    }
                }
            }
            ["+", rest @ ..] => {
                for (name, child) in &node.children {
                    if !(at_root && name.starts_with('$')) {
                        Self::walk(child, rest, false, out);
                    }
                }
            }
            [level, rest @ ..] => {
                if let Some(child) = node.children.get(*level) {
                    Self::walk(child, rest, false, out);
                }
            }
        }
    }

    fn collect_all(node: &Node, out: &mut Vec<Arc<Message>>) {
        out.extend(node.message.clone());
        for child in node.children.values() {
            Self::collect_all(child, out);
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
            store.set(msg(t));
        }
        assert_eq!(store.count(), 6);
        assert_eq!(topics(&store, "a/#"), ["a", "a//b", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "#"), ["/x", "a", "a//b", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "+/x"), ["/x"]);
        assert_eq!(topics(&store, "a/+"), ["a/b"]);
        assert_eq!(topics(&store, "a/+/b"), ["a//b"]);
        assert_eq!(topics(&store, "$SYS/#"), ["$SYS/up"]);
        store.set(Arc::new(Message::new(
            "a/b",
            &b""[..],
            QoS::AtMostOnce,
            true,
        )));
        assert_eq!(store.count(), 5);
        assert_eq!(topics(&store, "a/#"), ["a", "a//b", "a/b/c"]);
    }
}
