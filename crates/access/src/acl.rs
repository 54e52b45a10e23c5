//! Mosquitto ACL files (`acl_file`), with Mosquitto's semantics.
//!
//! ```text
//! # Before the first `user` line: rules for anonymous clients (no username).
//! topic read $SYS/#
//!
//! user alice
//! topic readwrite owntracks/alice/#
//! topic deny owntracks/alice/secret
//!
//! # For every client; %u is the username, %c the client id.
//! pattern write owntracks/%u/%c
//! ```
//!
//! * `topic [read|write|readwrite|deny] TOPIC`: the access word is optional (readwrite);
//!   the topic is the rest of the line and may contain spaces and wildcards.
//! * `user NAME` starts the rules of that user. `pattern` lines apply to every client
//!   wherever they appear; a pattern using `%u` never matches a client without a username.
//! * A client's applicable rules are its own section (or the anonymous one) plus all patterns.
//!   A matching `deny` wins; otherwise access needs a matching rule granting it; nothing
//!   matching means no access.
//! * Rule topics are filters: `owntracks/+/+` in a rule matches `owntracks/bob/phone`. MQTT's
//!   `$` rule holds, so `#` never grants `$SYS/...`: only a rule starting with `$SYS` does.
//!
//! Subscriptions are checked against explicit denials only (a `deny` rule covering the whole
//! filter refuses the SUBSCRIBE); what a wildcard subscription may actually receive is decided
//! per delivered message by [`AclFile::can_read`], so `#` delivers exactly the readable topics.

use crate::AccessError;
use mytracks_codec::topic;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn grants(self, wanted: Access) -> bool {
        self == wanted || (self == Access::ReadWrite && wanted != Access::Deny)
    }
}

#[derive(Clone, Debug)]
struct Rule {
    access: Access,
    filter: String,
}

#[derive(Clone, Debug)]
struct UserRules {
    name: String,
    rules: Vec<Rule>,
}

/// Who is asking, as the ACL sees it.
#[derive(Clone, Copy, Debug)]
pub struct AclClient<'a> {
    pub username: Option<&'a str>,
    pub client_id: &'a str,
}

/// The answer to a SUBSCRIBE check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeDecision {
    Allowed,
    /// A `deny` rule covers the whole filter: SUBACK failure.
    Denied,
}

/// A parsed ACL file.
#[derive(Clone, Debug, Default)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: Vec<UserRules>,
    patterns: Vec<Rule>,
}

impl AclFile {
    pub fn load(path: &Path) -> Result<AclFile, AccessError> {
        AclFile::parse(&crate::error::read(path)?, path)
    }

    /// Parses file contents; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AclFile, AccessError> {
        let mut acl = AclFile::default();
        let mut current_user: Option<usize> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r').trim_start();
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |reason: &str| AccessError::syntax(path, index + 1, reason);
            let (keyword, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let rest = rest.trim_start();
            match keyword {
                "user" => {
                    let name = rest.trim_end();
                    if name.is_empty() {
                        return Err(syntax("`user` needs a username"));
                    }
                    current_user = Some(match acl.users.iter().position(|u| u.name == name) {
                        Some(i) => i,
                        None => {
                            acl.users.push(UserRules {
                                name: name.to_owned(),
                                rules: Vec::new(),
                            });
                            acl.users.len() - 1
                        }
                    });
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(|reason| syntax(&reason))?;
                    match (keyword, current_user) {
                        ("pattern", _) => acl.patterns.push(rule),
                        (_, Some(user)) => acl.users[user].rules.push(rule),
                        (_, None) => acl.anonymous.push(rule),
                    }
                }
                other => {
                    return Err(syntax(&format!(
                        "unknown keyword {other:?} (expected user, topic or pattern)"
                    )))
                }
            }
        }
        Ok(acl)
    }

    /// May `client` receive a message published on `topic`?
    pub fn can_read(&self, client: AclClient<'_>, topic_name: &str) -> bool {
        self.check(client, Access::Read, |filter| {
            topic::matches(filter, topic_name)
        })
    }

    /// May `client` publish on `topic`?
    pub fn can_write(&self, client: AclClient<'_>, topic_name: &str) -> bool {
        self.check(client, Access::Write, |filter| {
            topic::matches(filter, topic_name)
        })
    }

    /// May `client` subscribe to `filter`? Only an explicit `deny` covering it says no.
    pub fn check_subscribe(&self, client: AclClient<'_>, filter: &str) -> SubscribeDecision {
        let denied = self
            .rules_for(client)
            .any(|(rule, expanded)| rule.access == Access::Deny && covers(&expanded, filter));
        if denied {
            SubscribeDecision::Denied
        } else {
            SubscribeDecision::Allowed
        }
    }

    fn check(&self, client: AclClient<'_>, wanted: Access, matches: impl Fn(&str) -> bool) -> bool {
        let mut granted = false;
        for (rule, expanded) in self.rules_for(client) {
            if !matches(&expanded) {
                continue;
            }
            if rule.access == Access::Deny {
                return false;
            }
            granted |= rule.access.grants(wanted);
        }
        granted
    }

    /// The rules that apply to `client`, with `%u`/`%c` substituted in patterns.
    fn rules_for<'s>(
        &'s self,
        client: AclClient<'s>,
    ) -> impl Iterator<Item = (&'s Rule, std::borrow::Cow<'s, str>)> + 's {
        let own: &[Rule] = match client.username {
            Some(name) => self
                .users
                .iter()
                .find(|u| u.name == name)
                .map_or(&[], |u| &u.rules),
            None => &self.anonymous,
        };
        let own = own
            .iter()
            .map(|rule| (rule, std::borrow::Cow::Borrowed(rule.filter.as_str())));
        let patterns = self.patterns.iter().filter_map(move |rule| {
            if rule.filter.contains("%u") && client.username.is_none() {
                return None;
            }
            let expanded = rule
                .filter
                .replace("%u", client.username.unwrap_or_default())
                .replace("%c", client.client_id);
            Some((rule, std::borrow::Cow::Owned(expanded)))
        });
        own.chain(patterns)
    }
}

fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, after) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let (access, filter) = match first {
        "read" => (Access::Read, after.trim_start()),
        "write" => (Access::Write, after.trim_start()),
        "readwrite" => (Access::ReadWrite, after.trim_start()),
        "deny" => (Access::Deny, after.trim_start()),
        _ => (Access::ReadWrite, rest),
    };
    let filter = filter.trim_end();
    if filter.is_empty() {
        return Err("missing topic".into());
    }
    // `%u`/`%c` are substituted later; what is left must be a valid filter.
    let probe = filter.replace("%u", "u").replace("%c", "c");
    topic::validate_topic_filter(&probe)
        .map_err(|reason| format!("invalid topic {filter:?}: {reason}"))?;
    Ok(Rule {
        access,
        filter: filter.to_owned(),
    })
}

/// True when every topic matched by `filter` is also matched by `rule` (wildcard-aware), so
/// a deny `rule` refuses the whole subscription.
fn covers(rule: &str, filter: &str) -> bool {
    if filter.starts_with('$') && (rule.starts_with('+') || rule.starts_with('#')) {
        return false;
    }
    let mut rule_levels = rule.split('/');
    let mut filter_levels = filter.split('/');
    loop {
        match (rule_levels.next(), filter_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(r), Some(f)) if r == f && f != "+" && f != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACL: &str = "\
# anonymous clients
topic read public/#
topic read $SYS/broker/version

user alice
topic readwrite owntracks/alice/#
topic deny owntracks/alice/secret
topic owntracks/shared topic with spaces
topic write commands/#

user bob
topic read owntracks/+/+
topic deny owntracks/alice/#

user admin
topic $SYS/#
topic #

pattern write devices/%c/telemetry
pattern read owntracks/%u/+/cmd
";

    fn acl() -> AclFile {
        AclFile::parse(ACL, Path::new("acl")).unwrap()
    }

    fn who(username: Option<&'static str>) -> AclClient<'static> {
        AclClient {
            username,
            client_id: "phone",
        }
    }

    #[test]
    fn reads_and_writes_follow_mosquitto_semantics() {
        let acl = acl();
        // (username, access, topic, expected)
        let table: &[(Option<&str>, &str, &str, bool)] = &[
            // anonymous section
            (None, "read", "public/news", true),
            (None, "write", "public/news", false),
            (None, "read", "$SYS/broker/version", true),
            (None, "read", "$SYS/broker/uptime", false),
            (None, "read", "owntracks/alice/phone", false),
            // a user's own rules, readwrite by default, deny wins
            (Some("alice"), "read", "owntracks/alice/phone", true),
            (Some("alice"), "write", "owntracks/alice/phone", true),
            (Some("alice"), "write", "owntracks/alice/secret", false),
            (Some("alice"), "read", "owntracks/alice/secret", false),
            (
                Some("alice"),
                "read",
                "owntracks/shared topic with spaces",
                true,
            ),
            (Some("alice"), "write", "commands/reboot", true),
            (Some("alice"), "read", "commands/reboot", false),
            (Some("alice"), "read", "public/news", false),
            // wildcard rules match concrete topics; deny beats a broader grant
            (Some("bob"), "read", "owntracks/carol/phone", true),
            (Some("bob"), "read", "owntracks/alice/phone", false),
            (Some("bob"), "write", "owntracks/bob/phone", false),
            (Some("bob"), "read", "owntracks/carol/phone/event", false),
            // `#` does not grant $SYS: only a rule starting with $SYS does
            (Some("admin"), "read", "$SYS/broker/uptime", true),
            (Some("admin"), "write", "anything/at/all", true),
            // unknown users have no section: only patterns apply
            (Some("mallory"), "read", "public/news", false),
            // patterns: %c and %u, for everyone
            (Some("mallory"), "write", "devices/phone/telemetry", true),
            (None, "write", "devices/phone/telemetry", true),
            (Some("mallory"), "write", "devices/other/telemetry", false),
            (Some("mallory"), "read", "owntracks/mallory/phone/cmd", true),
            (None, "read", "owntracks//phone/cmd", false),
        ];
        for &(username, access, topic_name, expected) in table {
            let client = who(username);
            let got = match access {
                "read" => acl.can_read(client, topic_name),
                _ => acl.can_write(client, topic_name),
            };
            assert_eq!(got, expected, "{username:?} {access} {topic_name}");
        }
    }

    #[test]
    fn wildcard_subscriptions_are_filtered_per_topic_and_denied_only_explicitly() {
        let acl = acl();
        let bob = who(Some("bob"));
        assert_eq!(
            acl.check_subscribe(bob, "owntracks/+/+"),
            SubscribeDecision::Allowed
        );
        assert_eq!(acl.check_subscribe(bob, "#"), SubscribeDecision::Allowed);
        assert_eq!(
            acl.check_subscribe(bob, "owntracks/alice/#"),
            SubscribeDecision::Denied
        );
        assert_eq!(
            acl.check_subscribe(bob, "owntracks/alice/phone"),
            SubscribeDecision::Denied
        );
        // What `owntracks/+/+` delivers is then decided topic by topic.
        assert!(acl.can_read(bob, "owntracks/carol/phone"));
        assert!(!acl.can_read(bob, "owntracks/alice/phone"));
        let alice = who(Some("alice"));
        assert_eq!(
            acl.check_subscribe(alice, "owntracks/alice/secret"),
            SubscribeDecision::Denied
        );
        assert_eq!(
            acl.check_subscribe(alice, "owntracks/alice/+"),
            SubscribeDecision::Allowed
        );
    }

    #[test]
    fn covers_is_wildcard_aware() {
        assert!(covers("a/#", "a/b/+"));
        assert!(covers("a/+", "a/b"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(covers("#", "a/#"));
        assert!(!covers("#", "$SYS/#"));
        assert!(covers("$SYS/#", "$SYS/broker/+"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, expected) in [
            ("user\n", "acl:1: `user` needs a username"),
            ("topic read\n", "acl:1: missing topic"),
            ("\ntopic read a/#/b\n", "acl:2: invalid topic"),
            ("topics read a\n", "acl:1: unknown keyword \"topics\""),
        ] {
            let error = AclFile::parse(text, Path::new("acl"))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(expected),
                "{error:?} should start with {expected:?}"
            );
        }
    }
}
