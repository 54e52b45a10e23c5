//! The router's memory accounting against what the allocator is really asked for.

use super::{Router, Subscriber};
use crate::hooks::ClientInfo;
use crate::session::Session;
use mytracks_codec::{ProtocolVersion, QoS, SubscriptionOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

/// Counts the bytes this thread asks for while counting is on (tests run on threads of
/// their own, so others' allocations do not interfere).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    if COUNTING.with(Cell::get) {
        LIVE.with(|live| live.set(live.get() + delta));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes requested (net) by `work` on this thread.
fn requested(work: impl FnOnce()) -> isize {
    LIVE.with(|live| live.set(0));
    COUNTING.with(|on| on.set(true));
    work();
    COUNTING.with(|on| on.set(false));
    LIVE.with(Cell::get)
}

fn subscriber(id: u64) -> Subscriber {
    let client = Arc::new(ClientInfo {
        client_id: format!("client-{id}").into(),
        username: None,
        superuser: false,
        protocol: ProtocolVersion::V5,
        peer: None,
        listener: "test".into(),
        local: false,
        connection: 0,
    });
    Subscriber {
        session: Arc::new(Session::new(id, client, 0)),
        username: None,
        options: SubscriptionOptions::with_qos(QoS::AtMostOnce),
        identifier: None,
    }
}

/// Deep chains, a wide level (a map), `+` branches, shared groups and plain lists.
fn filters() -> Vec<(String, Option<&'static str>)> {
    let mut filters = Vec::new();
    for i in 0..200 {
        filters.push((format!("{i:03}{}", "/".repeat(127)), None));
    }
    for i in 0..300 {
        filters.push((format!("owntracks/user{i}/phone"), None));
        filters.push((format!("owntracks/user{i}/+/cmd"), Some("g")));
    }
    filters.push(("owntracks/#".to_string(), None));
    filters.push(("+/+/+".to_string(), Some("other")));
    filters
}

#[test]
fn memory_counts_what_the_allocator_is_asked_for_and_returns_to_zero() {
    let subscribers: Vec<Subscriber> = (0..3).map(subscriber).collect();
    let filters = filters();
    let mut router = Router::default();
    let used = requested(|| {
        for (filter, group) in &filters {
            for s in &subscribers {
                router.subscribe(filter, *group, s.clone());
            }
        }
    });
    let counted = router.memory() as isize;
    // The model rounds each request up as malloc does, so it is at or above the requests,
    // and not far above (before, a node was counted at a fifth of its cost).
    assert!(counted >= used, "counted {counted} < requested {used}");
    assert!(
        counted <= used * 2,
        "counted {counted} > 2 x requested {used}"
    );

    let freed = requested(|| {
        for (filter, group) in &filters {
            for s in &subscribers {
                assert!(router.unsubscribe(filter, *group, s.session.id));
            }
        }
    });
    assert_eq!(router.count(), 0);
    assert_eq!(router.memory(), 0, "all counted memory is given back");
    assert!(router.by_user.is_empty(), "and every user's share");
    assert!(freed <= -used, "the trie kept {} bytes", used + freed);
}

#[test]
fn a_chain_of_single_children_costs_about_one_entry_per_level() {
    let s = subscriber(1);
    let mut router = Router::default();
    let used = requested(|| {
        router.subscribe(&"/".repeat(127), None, s.clone());
    });
    // 128 levels: each one child in a vector of exactly one entry (a map of one child took
    // four buckets, over 600 bytes).
    let per_level = used / 128;
    assert!(per_level < 200, "{per_level} bytes per level");
}

#[test]
fn a_wide_level_thinned_out_is_still_counted_at_its_table_size() {
    let s = subscriber(1);
    let filters: Vec<String> = (0..1000).map(|i| format!("wide/{i}")).collect();
    let mut router = Router::default();
    let added = requested(|| {
        for filter in &filters {
            router.subscribe(filter, None, s.clone());
        }
    });
    let removed = requested(|| {
        for filter in &filters[10..] {
            router.unsubscribe(filter, None, s.session.id);
        }
    });
    // The hash table keeps its size while it has entries: so does the count.
    let live = added + removed;
    assert!(
        router.memory() as isize >= live,
        "counted {} < live {live}",
        router.memory()
    );
}
