//! The checks shared by the `password_file` and `acl_file` cargo-fuzz targets and the corpus
//! replay tests.

use crate::acl::{AclClient, AclFile, SubscribeDecision};
use crate::error::content_lines;
use crate::password::{self, Cost, PasswordFile};
use mytracks_codec::topic;

/// Parses `data` as a password file (it is read as UTF-8 text, like [`PasswordFile::load`]).
/// For a file that parses: every entry's hash is within the parser's cost bounds, each user
/// is found, the last line of a user is the hash used, and passwords are checked (for cheap
/// hashes only, to keep the fuzzer fast) without panicking, agreeing with
/// [`password::verify_hash`]. Panics on any violation.
#[doc(hidden)]
pub fn fuzz_check_password_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = PasswordFile::parse(text) else {
        return;
    };
    let mut last_hash = std::collections::HashMap::new();
    for (_, line) in content_lines(text) {
        let (user, hash) = line.split_once(':').expect("a parsed line has a colon");
        last_hash.insert(user.trim(), hash.trim());
    }
    assert_eq!(file.len(), last_hash.len(), "one entry per user");
    for (user, hash) in last_hash {
        assert!(file.contains(user), "{user:?} is missing");
        assert!(
            password::is_supported_hash(hash),
            "{hash:?} parsed in a file only"
        );
        let cost = file.cost(user).expect("a listed user has a hash");
        assert!(
            within_bounds(cost),
            "{user:?}: {cost:?} is beyond the bounds"
        );
        if cheap(cost) {
            for candidate in [&b""[..], b"password", user.as_bytes()] {
                assert_eq!(
                    file.verify(user, candidate),
                    password::verify_hash(hash, candidate)
                );
            }
        }
    }
    let stranger = "\0no such user\0";
    if !file.contains(stranger) && file.decoy_cost().is_some_and(cheap) {
        assert!(!file.verify(stranger, b"password"));
    }
}

fn within_bounds(cost: Cost) -> bool {
    match cost {
        Cost::Sha512 => true,
        Cost::Pbkdf2(iterations) => iterations <= password::MAX_PBKDF2_ITERATIONS,
        Cost::Argon2(memory, passes, lanes) => {
            memory <= password::MAX_ARGON2_MEMORY_KIB
                && passes <= password::MAX_ARGON2_PASSES
                && lanes <= password::MAX_ARGON2_LANES
        }
    }
}

fn cheap(cost: Cost) -> bool {
    match cost {
        Cost::Sha512 => true,
        Cost::Pbkdf2(iterations) => iterations <= 2_000,
        Cost::Argon2(memory, passes, _) => u64::from(memory) * u64::from(passes) <= 256,
    }
}

/// Parses `data` as an ACL file and, for a file that parses, asks every question the broker
/// and the EMQX endpoint ask, for a few fixed clients and the file's own users, with filters
/// taken from the file (placeholders substituted) and topics those filters match. Checks the
/// promises the server relies on:
///
/// * `can_read_everything(f)` (what EMQX is told) implies `can_read(t)` for every topic `t`
///   that `f` matches: EMQX never checks deliveries, so a yes must hold for each of them;
/// * a SUBSCRIBE refused (`Denied`) loses nothing: no topic it matches is readable;
/// * `$share/g/f` is judged as `f`;
/// * nobody publishes into `$SYS` (but the bridge state topic) or `$share`.
#[doc(hidden)]
pub fn fuzz_check_acl_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(acl) = AclFile::parse(text) else {
        return;
    };
    assert_eq!(AclFile::parse(text).ok().as_ref(), Some(&acl));
    // Sorted before taking a few: the sections live in a HashMap, and runs must repeat.
    let mut users: Vec<&str> = acl.usernames().collect();
    users.sort_unstable();
    users.truncate(4);
    let mut clients = vec![
        AclClient::new(None, "anonymous-client"),
        AclClient::new(Some("stranger"), "stranger-phone"),
        AclClient::new(Some("+"), "#"),
    ];
    clients.extend(users.iter().map(|&user| AclClient::new(Some(user), user)));
    let mut rule_filters: Vec<&str> = acl.filters().collect();
    rule_filters.sort_unstable();
    rule_filters.dedup();
    rule_filters.truncate(12);
    for client in clients {
        let mut filters: Vec<String> = vec!["#".into(), "+/+".into(), "$SYS/#".into()];
        filters.extend(rule_filters.iter().map(|f| substitute(f, client)));
        filters.extend(rule_filters.iter().map(|f| (*f).to_owned()));
        for filter in &filters {
            check_filter(&acl, client, filter);
        }
    }
}

/// `%u` and `%c` replaced as a pattern would be for `client`.
fn substitute(filter: &str, client: AclClient<'_>) -> String {
    let filter = match client.username {
        Some(name) => filter.replace("%u", name),
        None => filter.to_owned(),
    };
    filter.replace("%c", client.client_id)
}

fn check_filter(acl: &AclFile, client: AclClient<'_>, filter: &str) {
    // Answers for any string, valid or not, must come without a panic.
    let subscribe = acl.check_subscribe(client, filter);
    let everything = acl.can_read_everything(client, filter);
    let _ = acl.can_read(client, filter);
    let _ = acl.can_write(client, filter);
    if topic::validate_topic_filter(filter).is_err() || filter.starts_with("$share/") {
        return;
    }
    let shared = format!("$share/group/{filter}");
    assert_eq!(acl.check_subscribe(client, &shared), subscribe, "{shared}");
    assert_eq!(
        acl.can_read_everything(client, &shared),
        everything,
        "{shared}"
    );
    for topic_name in topics_matched_by(filter) {
        if topic::validate_topic_name(&topic_name).is_err() || !topic::matches(filter, &topic_name)
        {
            continue;
        }
        let readable = acl.can_read(client, &topic_name);
        if everything {
            assert!(
                readable,
                "{client:?}: everything of {filter} but not {topic_name}"
            );
        }
        if subscribe == SubscribeDecision::Denied {
            assert!(
                !readable,
                "{client:?}: {filter} denied but {topic_name} readable"
            );
        }
        let reserved = (topic_name.starts_with("$SYS")
            && !topic::matches("$SYS/broker/connection/+/state", &topic_name))
            || topic_name.starts_with("$share");
        if reserved {
            assert!(!acl.can_write(client, &topic_name), "{topic_name} writable");
        }
    }
}

/// A few concrete topics `filter` matches: wildcards replaced by one or two levels, and the
/// parent that `a/#` also matches.
fn topics_matched_by(filter: &str) -> Vec<String> {
    let mut topics = Vec::new();
    for (plus, hash) in [("x", "x"), ("y", "x/y"), ("", "")] {
        let levels: Vec<&str> = filter
            .split('/')
            .map(|level| match level {
                "+" => plus,
                "#" => hash,
                other => other,
            })
            .collect();
        topics.push(levels.join("/"));
    }
    if let Some(parent) = filter.strip_suffix("/#") {
        topics.push(parent.replace('+', "p"));
    }
    topics
}
