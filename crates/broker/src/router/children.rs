//! A trie node's literal children, and what they cost in heap bytes.
//!
//! Most nodes have one child or a few (a chain of levels, a user's devices), so they are
//! kept in a tight vector and searched linearly; a hash map is used only past
//! [`FEW_CHILDREN`]. A map of one child costs four buckets (over 600 bytes): a vector costs
//! exactly one entry, so a flood of deep, distinct filters takes a quarter of the memory.
//!
//! The bytes are measured from the containers' real capacities, so the router's memory
//! bound (`max_subscription_memory`) counts what the allocator hands out, not a guess. A map
//! never shrinks its table while it has entries, so its bytes are the largest table it has
//! had until it is emptied. Its hasher is keyed (std's `RandomState`): clients choose the
//! keys, and with a fixed hash they could make every insert probe the whole table.

use super::Node;
use std::collections::HashMap;

/// Children kept in a vector up to this many; a map beyond.
const FEW_CHILDREN: usize = 8;

/// What the allocator (glibc's malloc) takes for a request of `bytes`: 16-byte granules
/// plus a header. Zero-size requests allocate nothing.
pub(super) fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes.div_ceil(16) * 16 + 16
    }
}

type Entry = (Box<str>, Node);

#[derive(Debug)]
pub(super) enum Children {
    Few(Vec<Entry>),
    Many {
        map: HashMap<Box<str>, Node>,
        /// Bytes of the largest table the map has had (tables do not shrink on removal).
        bytes: usize,
    },
}

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    pub fn is_empty(&self) -> bool {
        match self {
            Children::Few(few) => few.is_empty(),
            Children::Many { map, .. } => map.is_empty(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Children::Few(few) => few.iter().find(|(k, _)| &**k == key).map(|(_, n)| n),
            Children::Many { map, .. } => map.get(key),
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Children::Few(few) => few.iter_mut().find(|(k, _)| &**k == key).map(|(_, n)| n),
            Children::Many { map, .. } => map.get_mut(key),
        }
    }

    /// The child under `key`, created if missing; also the heap bytes that creating it took
    /// (the container's growth and the key), zero when it existed.
    pub fn get_or_insert(&mut self, key: &str) -> (&mut Node, usize) {
        let mut added = 0;
        if !self.contains(key) {
            let before = self.container_bytes();
            if let Children::Few(few) = self {
                if few.len() == FEW_CHILDREN {
                    let mut map = HashMap::with_capacity(FEW_CHILDREN + 1);
                    map.extend(few.drain(..));
                    *self = Children::Many { map, bytes: 0 };
                }
            }
            match self {
                Children::Few(few) => {
                    // Exact growth: a vector's doubling would cost four entries for one.
                    few.reserve_exact(1);
                    few.push((key.into(), Node::default()));
                }
                Children::Many { map, bytes } => {
                    map.insert(key.into(), Node::default());
                    *bytes = (*bytes).max(table_bytes(map.capacity()));
                }
            }
            added = allocation(key.len()) + self.container_bytes() - before;
        }
        let node = self.get_mut(key).expect("present or just inserted");
        (node, added)
    }

    fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Removes the child under `key`; the heap bytes freed (the key and any shrinking).
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.container_bytes();
        let removed = match self {
            Children::Few(few) => few
                .iter()
                .position(|(k, _)| &**k == key)
                .map(|index| few.remove(index)),
            Children::Many { map, .. } => map.remove_entry(key),
        };
        let Some((key, _)) = removed else { return 0 };
        if self.is_empty() {
            // An empty node owns no heap, so removing it later frees only its slot.
            *self = Children::default();
        }
        allocation(key.len()) + before - self.container_bytes()
    }

    /// Heap bytes of the container itself (entries and, for a map, its control bytes);
    /// keys' own allocations are counted as they are inserted and removed.
    pub fn container_bytes(&self) -> usize {
        match self {
            Children::Few(few) => allocation(few.capacity() * std::mem::size_of::<Entry>()),
            Children::Many { bytes, .. } => *bytes,
        }
    }
}

/// Heap bytes of a hash table holding `capacity` entries: hashbrown's buckets are a power of
/// two holding 7/8 of them at most (all of them below 8), one control byte each plus a group
/// of 16.
fn table_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    allocation(buckets * (std::mem::size_of::<Entry>() + 1) + 16)
}
