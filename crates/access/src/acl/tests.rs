//! Table-driven tests mirroring mosquitto.conf(5)'s `acl_file` section, plus the choices
//! documented in the crate root. The broker-level behaviour is exercised with real clients in
//! `crates/mytracks/tests/it/access.rs`.

use super::*;
use proptest::prelude::*;

const ACL: &str = "\
# Anonymous clients: the rules before the first `user` line.
topic read public/#
topic deny public/secret
topic read $SYS/broker/version

user alice
topic readwrite owntracks/alice/#
topic deny owntracks/alice/private
topic owntracks/shared topic with spaces
topic write commands/#
topic read   spaced/ level two   

user bob
topic read owntracks/+/+
topic deny owntracks/alice/#
topic readwrite owntracks/bob/#

user admin
topic $SYS/#
topic #

user with space
topic read space/user

pattern write devices/%c/telemetry
pattern read owntracks/%u/+/cmd
pattern deny owntracks/%u/+/cmd/blocked
pattern readwrite inbox/%u/%c
pattern readwrite partial/dev-%c

# A second section for alice: merged with the first.
user alice
topic read friends/alice
";

fn acl() -> AclFile {
    AclFile::parse(ACL).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Read,
    Write,
}
use Op::{Read as R, Write as W};

/// (username, client id, operation, topic, expected)
type Row = (Option<&'static str>, &'static str, Op, &'static str, bool);

fn check_rows(acl: &AclFile, rows: &[Row]) {
    let mut failures = Vec::new();
    for &(username, client_id, op, topic_name, expected) in rows {
        let client = AclClient::new(username, client_id);
        let got = match op {
            Op::Read => acl.can_read(client, topic_name),
            Op::Write => acl.can_write(client, topic_name),
        };
        if got != expected {
            failures.push(format!(
                "{username:?}/{client_id} {op:?} {topic_name:?}: got {got}, expected {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn anonymous_section() {
    check_rows(
        &acl(),
        &[
            (None, "anon", R, "public/news", true),
            (None, "anon", R, "public/a/b/c", true),
            (None, "anon", R, "public", true), // `#` also matches the parent level
            (None, "anon", W, "public/news", false), // read only
            (None, "anon", R, "public/secret", false), // deny beats the broader read
            (None, "anon", R, "owntracks/alice/phone", false), // nothing grants it
            // The anonymous section is not a default for users.
            (Some("alice"), "phone", R, "public/news", false),
            (Some("mallory"), "phone", R, "public/news", false),
        ],
    );
}

#[test]
fn user_sections_and_access_words() {
    check_rows(
        &acl(),
        &[
            // readwrite
            (Some("alice"), "phone", R, "owntracks/alice/phone", true),
            (Some("alice"), "phone", W, "owntracks/alice/phone", true),
            (
                Some("alice"),
                "phone",
                W,
                "owntracks/alice/phone/event",
                true,
            ),
            // no access word = readwrite, and the topic is the rest of the line
            (
                Some("alice"),
                "phone",
                R,
                "owntracks/shared topic with spaces",
                true,
            ),
            (
                Some("alice"),
                "phone",
                W,
                "owntracks/shared topic with spaces",
                true,
            ),
            (Some("alice"), "phone", R, "owntracks/shared", false),
            // inner spaces kept, outer ones trimmed
            (Some("alice"), "phone", R, "spaced/ level two", true),
            (Some("alice"), "phone", R, "spaced/level two", false),
            // write only
            (Some("alice"), "phone", W, "commands/reboot", true),
            (Some("alice"), "phone", R, "commands/reboot", false),
            // the second `user alice` section is merged
            (Some("alice"), "phone", R, "friends/alice", true),
            // another user's section does not apply
            (Some("alice"), "phone", W, "owntracks/bob/phone", false),
            // usernames are matched exactly, spaces included
            (Some("with space"), "x", R, "space/user", true),
            (Some("with"), "x", R, "space/user", false),
            (Some("Alice"), "phone", R, "owntracks/alice/phone", false),
            // unknown users get only the patterns
            (Some("mallory"), "phone", R, "owntracks/alice/phone", false),
        ],
    );
}

#[test]
fn deny_wins_over_allow() {
    check_rows(
        &acl(),
        &[
            // same section, more specific deny
            (Some("alice"), "phone", R, "owntracks/alice/private", false),
            (Some("alice"), "phone", W, "owntracks/alice/private", false),
            (Some("alice"), "phone", R, "owntracks/alice/private2", true),
            // deny with a wildcard over a read with wildcards, whatever the order in the file
            (Some("bob"), "phone", R, "owntracks/alice/phone", false),
            (Some("bob"), "phone", R, "owntracks/carol/phone", true),
            (Some("bob"), "phone", W, "owntracks/carol/phone", false),
            (Some("bob"), "phone", W, "owntracks/bob/phone", true),
            // a pattern's deny beats a pattern's read
            (
                Some("alice"),
                "phone",
                R,
                "owntracks/alice/x/cmd/blocked",
                false,
            ),
        ],
    );
    // A pattern's deny also beats the user's own grant (Mosquitto 2.0 would let the own
    // section's grant win: the documented difference).
    let acl = AclFile::parse(
        "user alice\ntopic readwrite owntracks/#\npattern deny owntracks/%u/secret\n",
    )
    .unwrap();
    check_rows(
        &acl,
        &[
            (Some("alice"), "phone", R, "owntracks/alice/secret", false),
            (Some("alice"), "phone", R, "owntracks/alice/phone", true),
            (Some("alice"), "phone", R, "owntracks/bob/secret", true),
        ],
    );
}

#[test]
fn patterns_substitute_username_and_client_id_for_everyone() {
    check_rows(
        &acl(),
        &[
            // %c, whoever the client is
            (Some("mallory"), "dev1", W, "devices/dev1/telemetry", true),
            (None, "dev1", W, "devices/dev1/telemetry", true),
            (Some("alice"), "dev1", W, "devices/dev1/telemetry", true),
            (None, "dev1", W, "devices/dev2/telemetry", false),
            (None, "dev1", R, "devices/dev1/telemetry", false),
            // %u
            (Some("mallory"), "x", R, "owntracks/mallory/phone/cmd", true),
            (Some("mallory"), "x", R, "owntracks/alice/phone/cmd", false),
            // a %u pattern never applies to a client without a username
            (None, "x", R, "owntracks//phone/cmd", false),
            (None, "x", R, "owntracks/%u/phone/cmd", false),
            // both
            (Some("alice"), "phone", W, "inbox/alice/phone", true),
            (Some("alice"), "phone", W, "inbox/alice/tablet", false),
            (None, "phone", W, "inbox//phone", false),
            // substitution inside a level, as Mosquitto does (undocumented but accepted)
            (None, "abc", W, "partial/dev-abc", true),
            (None, "abc", W, "partial/dev-abd", false),
        ],
    );
}

#[test]
fn names_with_wildcards_get_no_pattern_grants() {
    check_rows(
        &acl(),
        &[
            // client id `+` would turn devices/%c/telemetry into devices/+/telemetry
            (None, "+", W, "devices/dev1/telemetry", false),
            (None, "+", W, "devices/+/telemetry", false),
            (None, "#", W, "devices/dev1/telemetry", false),
            (None, "a#", W, "devices/a#/telemetry", false),
            (Some("#"), "x", R, "owntracks/alice/phone/cmd", false),
            (Some("+"), "x", W, "inbox/alice/x", false),
            // the own section still works for such clients
            (None, "+", R, "public/news", true),
            // `/` is not a wildcard: it only reaches deeper into the client's own space
            (None, "a/b", W, "devices/a/b/telemetry", true),
            (None, "a/b", W, "devices/a/telemetry", false),
        ],
    );
    // A deny pattern still applies to them, widened by the wildcard (refusing more is safe).
    let acl = AclFile::parse("topic readwrite secret/#\npattern deny secret/%c\n").unwrap();
    check_rows(
        &acl,
        &[
            (None, "x", R, "secret/x", false),
            (None, "x", R, "secret/y", true),
            (None, "+", R, "secret/y", false),
            (None, "+", R, "secret/y/z", true),
        ],
    );
}

#[test]
fn wildcard_rules_match_concrete_topics() {
    let acl = AclFile::parse(
        "topic read a/+/c\ntopic read b/#\ntopic read +\ntopic write +/x/#\ntopic read /lead\n",
    )
    .unwrap();
    check_rows(
        &acl,
        &[
            (None, "c", R, "a/b/c", true),
            (None, "c", R, "a//c", true), // `+` matches an empty level
            (None, "c", R, "a/b/c/d", false),
            (None, "c", R, "a/c", false),
            (None, "c", R, "b", true),
            (None, "c", R, "b/x/y/z", true),
            (None, "c", R, "top", true),
            (None, "c", R, "top/level", false),
            (None, "c", W, "q/x", true),
            (None, "c", W, "q/x/deep/er", true),
            (None, "c", W, "q/y", false),
            (None, "c", R, "/lead", true),
            (None, "c", R, "lead", true), // by `+`, not by `/lead`
            (None, "c", R, "x/lead", false),
        ],
    );
}

#[test]
fn dollar_topics_need_a_rule_starting_with_dollar() {
    check_rows(
        &acl(),
        &[
            // `#` does not match `$SYS/...` (MQTT's `$` rule)
            (Some("admin"), "x", R, "anything/at/all", true),
            (Some("admin"), "x", W, "anything/at/all", true),
            (Some("admin"), "x", R, "$SYS/broker/uptime", true), // granted by `$SYS/#`
            (None, "x", R, "$SYS/broker/version", true),         // explicitly granted
            (None, "x", R, "$SYS/broker/uptime", false),
            (Some("bob"), "x", R, "$SYS/broker/version", false),
            // publishing into $SYS is refused even with a grant, except bridge status
            (Some("admin"), "x", W, "$SYS/broker/uptime", false),
            (
                Some("admin"),
                "x",
                W,
                "$SYS/broker/connection/br1/state",
                true,
            ),
            (Some("admin"), "x", W, "$share/g/topic", false),
        ],
    );
    let acl = AclFile::parse("topic read #\ntopic read +/broker/#\n").unwrap();
    check_rows(
        &acl,
        &[
            (None, "x", R, "$SYS/broker/uptime", false),
            (None, "x", R, "$other/x", false),
            (None, "x", R, "normal/broker/x", true),
        ],
    );
}

#[test]
fn no_rules_means_no_access() {
    let empty = AclFile::parse("# nothing\n\n").unwrap();
    assert_eq!(empty, AclFile::default());
    check_rows(
        &empty,
        &[
            (None, "x", R, "a", false),
            (Some("alice"), "x", W, "a", false),
        ],
    );
    let user_without_rules = AclFile::parse("user alice\n").unwrap();
    check_rows(&user_without_rules, &[(Some("alice"), "x", R, "a", false)]);
}

#[test]
fn wildcard_subscriptions_are_filtered_per_topic() {
    let acl = AclFile::parse(
        "user alice\ntopic readwrite owntracks/alice/#\n\
         user bob\ntopic read owntracks/+/+\ntopic deny owntracks/alice/#\n",
    )
    .unwrap();
    let alice = AclClient::new(Some("alice"), "phone");
    let bob = AclClient::new(Some("bob"), "phone");
    // `owntracks/+/+` and `#` are accepted...
    for filter in ["owntracks/+/+", "#", "owntracks/#", "+/+/+"] {
        assert_eq!(
            acl.check_subscribe(alice, filter),
            SubscribeDecision::Allowed
        );
        assert_eq!(acl.check_subscribe(bob, filter), SubscribeDecision::Allowed);
    }
    // ...and deliver only what the subscriber may read.
    let published = [
        "owntracks/alice/phone",
        "owntracks/bob/phone",
        "owntracks/carol/tablet",
        "owntracks/alice/phone/event",
        "other/topic",
    ];
    let delivered = |client: AclClient<'_>, filter: &str| -> Vec<&str> {
        published
            .iter()
            .copied()
            .filter(|t| topic::matches(filter, t) && acl.can_read(client, t))
            .collect()
    };
    assert_eq!(delivered(alice, "owntracks/+/+"), ["owntracks/alice/phone"]);
    assert_eq!(
        delivered(alice, "#"),
        ["owntracks/alice/phone", "owntracks/alice/phone/event"]
    );
    assert_eq!(
        delivered(bob, "owntracks/+/+"),
        ["owntracks/bob/phone", "owntracks/carol/tablet"]
    );
    assert_eq!(
        delivered(bob, "#"),
        ["owntracks/bob/phone", "owntracks/carol/tablet"]
    );
}

#[test]
fn subscribe_is_refused_only_when_a_deny_covers_the_filter() {
    let acl = acl();
    // (username, client id, filter, denied)
    let rows: &[(Option<&str>, &str, &str, bool)] = &[
        (Some("bob"), "p", "owntracks/alice/#", true),
        (Some("bob"), "p", "owntracks/alice/phone", true),
        (Some("bob"), "p", "owntracks/alice/+", true),
        (Some("bob"), "p", "owntracks/alice/+/event", true),
        (Some("bob"), "p", "$share/g/owntracks/alice/#", true),
        (Some("bob"), "p", "owntracks/+/phone", false), // partly readable
        (Some("bob"), "p", "owntracks/#", false),
        (Some("bob"), "p", "#", false),
        (Some("bob"), "p", "owntracks", false),
        (Some("bob"), "p", "nothing/granted/here", false), // allowed, delivers nothing
        (Some("alice"), "p", "owntracks/alice/private", true),
        (Some("alice"), "p", "owntracks/alice/private/+", false), // not covered
        (Some("alice"), "p", "owntracks/alice/+", false),
        (None, "p", "public/secret", true),
        (None, "p", "public/+", false),
        (Some("bob"), "p", "owntracks/bob/x/cmd/blocked", true), // a pattern deny (%u)
        (None, "p", "owntracks/bob/x/cmd/blocked", false),       // ... not for anonymous
    ];
    for &(username, client_id, filter, denied) in rows {
        let expected = if denied {
            SubscribeDecision::Denied
        } else {
            SubscribeDecision::Allowed
        };
        let client = AclClient::new(username, client_id);
        assert_eq!(
            acl.check_subscribe(client, filter),
            expected,
            "{username:?} {filter}"
        );
    }
    let all_denied = AclFile::parse("topic deny #\ntopic read $SYS/#\n").unwrap();
    let anon = AclClient::new(None, "x");
    assert_eq!(
        all_denied.check_subscribe(anon, "#"),
        SubscribeDecision::Denied
    );
    assert_eq!(
        all_denied.check_subscribe(anon, "+/x"),
        SubscribeDecision::Denied
    );
    // `#` does not cover `$SYS`.
    assert_eq!(
        all_denied.check_subscribe(anon, "$SYS/#"),
        SubscribeDecision::Allowed
    );
}

#[test]
fn covers_is_wildcard_aware() {
    // (rule, filter, covered)
    for (rule, filter, expected) in [
        ("a/#", "a/b/+", true),
        ("a/#", "a/#", true),
        ("a/#", "a", true),
        ("a/+", "a/b", true),
        ("a/+", "a/+", true),
        ("a/b", "a/+", false),
        ("a/+", "a/#", false),
        ("a/+/#", "a/#", false), // a/# also matches `a`
        ("#", "a/#", true),
        ("#", "$SYS/#", false),
        ("+/#", "$SYS/x", false),
        ("$SYS/#", "$SYS/broker/+", true),
        ("a/b", "a/b/c", false),
        ("a/b/c", "a/b", false),
    ] {
        assert_eq!(covers(rule, filter), expected, "{rule} covers {filter}");
    }
}

#[test]
fn parsing_follows_mosquitto() {
    let acl = AclFile::parse(
        "topic\tread\tspaced\tout\n   topic    write   lead/trail   \r\n\
         user   padded name  \ntopic deny x\npattern read p/%u/%c/%x\n",
    )
    .unwrap();
    assert_eq!(
        acl.anonymous,
        [
            Rule {
                access: Access::Read,
                filter: "spaced\tout".into()
            },
            Rule {
                access: Access::Write,
                filter: "lead/trail".into()
            }
        ]
    );
    assert_eq!(
        acl.users["padded name"],
        [Rule {
            access: Access::Deny,
            filter: "x".into()
        }]
    );
    let client = AclClient::new(Some("u"), "c");
    assert_eq!(acl.patterns[0].expand(client), "p/u/c/%x");
    // One pass: a username containing `%c` is not substituted again.
    let tricky = AclClient::new(Some("%c"), "id");
    assert_eq!(acl.patterns[0].expand(tricky), "p/%c/id/%x");
    // A lone access word is not a topic (Mosquitto would read `topic read` as topic "read").
    assert_eq!(
        AclFile::parse("topic read\n").unwrap_err().syntax_error(),
        Some(&SyntaxError::MissingTopic)
    );
}

#[test]
fn syntax_errors_name_the_line() {
    for (text, expected) in [
        ("user\n", "line 1: `user` needs a username"),
        ("user   \n", "line 1: `user` needs a username"),
        ("topic\n", "line 1: missing topic"),
        ("pattern deny   \n", "line 1: missing topic"),
        (
            "\n# c\ntopic read a/#/b\n",
            "line 3: invalid topic \"a/#/b\"",
        ),
        ("topic read a/b+\n", "line 1: invalid topic"),
        ("pattern read a/%u#\n", "line 1: invalid topic"),
        ("topics read a\n", "line 1: unknown keyword \"topics\""),
        ("Topic read a\n", "line 1: unknown keyword \"Topic\""),
        (
            "topic read a\nallow a\n",
            "line 2: unknown keyword \"allow\"",
        ),
    ] {
        let error = AclFile::parse(text).unwrap_err().to_string();
        assert!(
            error.starts_with(expected),
            "{error:?} should start with {expected:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl");
    std::fs::write(&file, "user alice\ntopic read ok\ntopic read bad/#/x\n").unwrap();
    let error = AclFile::load(&file).unwrap_err();
    assert_eq!(error.line(), Some(3));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:3: invalid topic", file.display())),
        "{error}"
    );
}

/// Small filters over a tiny alphabet, so that matches are common.
fn filter_strategy() -> impl Strategy<Value = String> {
    let level = prop_oneof![Just("a"), Just("b"), Just(""), Just("+"), Just("$s")];
    (prop::collection::vec(level, 1..4), any::<bool>()).prop_map(|(levels, hash)| {
        let mut filter = levels.join("/");
        if hash {
            filter.push_str("/#");
        }
        filter
    })
}

fn topic_strategy() -> impl Strategy<Value = String> {
    let level = prop_oneof![Just("a"), Just("b"), Just(""), Just("$s"), Just("c")];
    prop::collection::vec(level, 1..6).prop_map(|levels| levels.join("/"))
}

proptest! {
    /// Soundness of the SUBSCRIBE refusal: if a deny rule covers a filter, it matches every
    /// topic the filter matches (so refusing the subscription loses nothing readable).
    #[test]
    fn covers_is_sound(
        rule in prop_oneof![filter_strategy(), Just("#".to_owned())],
        filter in filter_strategy(),
        topics in prop::collection::vec(topic_strategy(), 1..20),
    ) {
        if covers(&rule, &filter) {
            for t in &topics {
                if topic::matches(&filter, t) {
                    prop_assert!(topic::matches(&rule, t), "{rule} covers {filter} but not {t}");
                }
            }
        }
        // A filter always covers itself.
        prop_assert!(covers(&filter, &filter));
    }

    /// Soundness of the strict (EMQX) check: filters that share a topic always intersect,
    /// so a deny rule that can match one of a filter's topics is never missed.
    #[test]
    fn intersects_is_sound(
        a in filter_strategy(),
        b in filter_strategy(),
        topics in prop::collection::vec(topic_strategy(), 1..20),
    ) {
        for t in &topics {
            if topic::matches(&a, t) && topic::matches(&b, t) {
                prop_assert!(intersects(&a, &b), "{a} and {b} both match {t}");
            }
        }
    }

    /// Whatever a client calls itself, patterns never grant it a topic outside the one its
    /// own names spell, and wildcard names get nothing from patterns.
    #[test]
    fn pattern_grants_cannot_be_widened_by_names(
        username in prop::option::of("[a-c+#/]{0,3}"),
        client_id in "[a-c+#/]{0,3}",
        topic_name in "devices/[a-c+#/]{0,3}/telemetry",
    ) {
        let acl = AclFile::parse("pattern readwrite devices/%c/telemetry\n").unwrap();
        let client = AclClient::new(username.as_deref(), &client_id);
        let allowed = acl.can_write(client, &topic_name);
        let own = format!("devices/{client_id}/telemetry");
        let wild = client_id.contains(['+', '#'])
            || username.as_deref().is_some_and(|u| u.contains(['+', '#']));
        prop_assert_eq!(allowed, !wild && topic_name == own);
    }
}

#[test]
fn reading_everything_a_filter_matches_needs_a_covering_grant_and_no_deny_inside() {
    let acl = AclFile::parse(
        "user alice\ntopic read sensors/#\ntopic deny sensors/secret\ntopic read public/+\n\
         pattern read devices/%u/#\n",
    )
    .unwrap();
    let alice = AclClient::new(Some("alice"), "c1");
    assert!(acl.can_read_everything(alice, "public/+"));
    assert!(acl.can_read_everything(alice, "public/news"));
    assert!(
        !acl.can_read_everything(alice, "public/#"),
        "public/a/b is not granted"
    );
    assert!(
        !acl.can_read_everything(alice, "sensors/#"),
        "sensors/secret is denied"
    );
    assert!(!acl.can_read_everything(alice, "sensors/+"));
    assert!(acl.can_read_everything(alice, "sensors/open/#"));
    assert!(acl.can_read_everything(alice, "devices/alice/#"));
    assert!(!acl.can_read_everything(alice, "devices/+/#"));
    assert!(!acl.can_read_everything(alice, "#"));
    assert!(acl.can_read_everything(alice, "$share/g/public/+"));
}
