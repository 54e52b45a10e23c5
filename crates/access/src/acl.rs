//! Mosquitto ACL files (`acl_file`), with Mosquitto 2.x semantics; see the crate
//! documentation for the decision rules and where they deliberately differ.
//!
//! ```text
//! # Before the first `user` line: rules for anonymous clients (no username).
//! topic read $SYS/broker/version
//!
//! user alice
//! topic readwrite owntracks/alice/#
//! topic deny owntracks/alice/private
//!
//! # For every client, wherever the line is; %u is the username, %c the client id.
//! pattern write devices/%c/telemetry
//! ```
//!
//! Syntax, as Mosquitto parses it:
//!
//! * `user NAME`: the rest of the line (trimmed) is the username; later `topic` lines belong
//!   to it. A user may have several sections; they are merged.
//! * `topic [read|write|readwrite|deny] TOPIC` and `pattern [...] TOPIC`: the access word is
//!   optional (readwrite); TOPIC is the rest of the line, trimmed, so it may contain spaces
//!   (then the access word is required, or the first word would be taken as one). TOPIC is a
//!   filter (`+`, `#` allowed) and must be valid as one.
//! * Blank lines and `#` comments are ignored. Anything else is an error naming the line
//!   (Mosquitto refuses to start on those too). Stricter than Mosquitto: `topic read` with no
//!   topic is an error, where Mosquitto would grant readwrite on a topic called `read`.

use crate::error::{content_lines, read, syntax, SyntaxError};
use crate::AccessError;
use mytracks_codec::topic;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// The access word of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// What a check asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wanted {
    Read,
    Write,
}

impl Access {
    fn grants(self, wanted: Wanted) -> bool {
        matches!(
            (self, wanted),
            (Access::ReadWrite, _) | (Access::Read, Wanted::Read) | (Access::Write, Wanted::Write)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    access: Access,
    filter: String,
    uses_username: bool,
    uses_client_id: bool,
}

impl Pattern {
    /// The filter with `%u` and `%c` replaced in one pass (a username containing `%c` stays
    /// as it is), wherever they occur, as Mosquitto does. Borrowed when there is nothing to
    /// replace, so plain patterns cost no allocation on the delivery path.
    fn expand<'s>(&'s self, client: AclClient<'_>) -> Cow<'s, str> {
        if !self.uses_username && !self.uses_client_id {
            return Cow::Borrowed(&self.filter);
        }
        let mut out = String::with_capacity(self.filter.len() + 32);
        let mut rest = self.filter.as_str();
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let value = match (rest.as_bytes().get(at + 1), client.username) {
                (Some(b'c'), _) => Some(client.client_id),
                (Some(b'u'), Some(username)) => Some(username),
                _ => None,
            };
            match value {
                Some(value) => {
                    out.push_str(value);
                    rest = &rest[at + 2..];
                }
                None => {
                    out.push('%');
                    rest = &rest[at + 1..];
                }
            }
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

/// Who is asking, as the ACL sees it: the authenticated username (`None` for anonymous
/// clients) and the client id (after the broker assigned one to an empty id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclClient<'a> {
    pub username: Option<&'a str>,
    pub client_id: &'a str,
}

impl<'a> AclClient<'a> {
    pub fn new(username: Option<&'a str>, client_id: &'a str) -> Self {
        AclClient {
            username,
            client_id,
        }
    }

    /// May patterns grant this client anything? Not when its username or client id holds a
    /// wildcard: `pattern read devices/%c/#` must not become `devices/#/#` for a client
    /// calling itself `#` (Mosquitto's fix for CVE-2017-7650 refuses such clients the same).
    fn pattern_grants_allowed(self) -> bool {
        let tame = |s: &str| !s.contains(['+', '#']);
        self.username.is_none_or(tame) && tame(self.client_id)
    }
}

/// The answer to a SUBSCRIBE check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeDecision {
    /// Subscribe; what is delivered is still checked message by message with
    /// [`AclFile::can_read`].
    Allowed,
    /// A `deny` rule covers every topic of the filter: answer SUBACK 0x80 (3.x) / 0x87 (5).
    Denied,
}

/// A parsed ACL file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Pattern>,
}

impl AclFile {
    /// Reads and parses `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<AclFile, AccessError> {
        AclFile::parse_from(&read(path)?, Some(path))
    }

    /// Does the file have a `user <username>` section?
    pub fn has_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// Parses file contents (errors give the line number only).
    pub fn parse(text: &str) -> Result<AclFile, AccessError> {
        AclFile::parse_from(text, None)
    }

    /// The usernames of the `user` sections; for the fuzz check.
    pub(crate) fn usernames(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// The filters of every rule and pattern, as written; for the fuzz check.
    pub(crate) fn filters(&self) -> impl Iterator<Item = &str> {
        let rules = self.anonymous.iter().chain(self.users.values().flatten());
        rules
            .map(|rule| rule.filter.as_str())
            .chain(self.patterns.iter().map(|p| p.filter.as_str()))
    }

    fn parse_from(text: &str, path: Option<&Path>) -> Result<AclFile, AccessError> {
        let mut acl = AclFile::default();
        let mut current_user: Option<String> = None;
        for (line, content) in content_lines(text) {
            let error = |kind| syntax(path, line, kind);
            let (keyword, rest) = split_word(content.trim_start());
            match keyword {
                "user" => {
                    let name = rest.trim();
                    if name.is_empty() {
                        return Err(error(SyntaxError::MissingUsername));
                    }
                    acl.users.entry(name.to_owned()).or_default();
                    current_user = Some(name.to_owned());
                }
                "topic" | "pattern" => {
                    let (access, filter) = parse_rule(rest).map_err(error)?;
                    if keyword == "pattern" {
                        acl.patterns.push(Pattern {
                            access,
                            uses_username: filter.contains("%u"),
                            uses_client_id: filter.contains("%c"),
                            filter,
                        });
                    } else {
                        let rules = match &current_user {
                            Some(user) => acl.users.entry(user.clone()).or_default(),
                            None => &mut acl.anonymous,
                        };
                        rules.push(Rule { access, filter });
                    }
                }
                other => return Err(error(SyntaxError::UnknownKeyword(other.to_owned()))),
            }
        }
        Ok(acl)
    }

    /// May `client` receive a message published on `topic` (a concrete topic)? Checked for
    /// every delivery, retained messages included, so a wildcard subscription delivers
    /// exactly the readable topics.
    pub fn can_read(&self, client: AclClient<'_>, topic_name: &str) -> bool {
        self.decide(client, Wanted::Read, |filter| {
            topic::matches(filter, topic_name)
        })
    }

    /// May `client` publish on `topic` (a concrete topic)? Publishing into `$SYS` is refused
    /// whatever the rules say, except `$SYS/broker/connection/+/state` (bridge status), and so
    /// is publishing to `$share/...`: both as Mosquitto.
    pub fn can_write(&self, client: AclClient<'_>, topic_name: &str) -> bool {
        if topic_name.starts_with("$SYS")
            && !topic::matches("$SYS/broker/connection/+/state", topic_name)
        {
            return false;
        }
        if topic_name.starts_with("$share") {
            return false;
        }
        self.decide(client, Wanted::Write, |filter| {
            topic::matches(filter, topic_name)
        })
    }

    /// May `client` subscribe to `filter`? Refused only when an applicable `deny` rule covers
    /// every topic the filter can match (for `$share/GROUP/F`, the filter F). Otherwise
    /// allowed, even if nothing under it is readable: deliveries are filtered by
    /// [`AclFile::can_read`].
    pub fn check_subscribe(&self, client: AclClient<'_>, filter: &str) -> SubscribeDecision {
        let filter = match topic::parse_shared(filter) {
            Ok(Some((_group, inner))) => inner,
            _ => filter,
        };
        let own = self.own_rules(client);
        let denied = own
            .iter()
            .filter(|rule| rule.access == Access::Deny)
            .any(|rule| covers(&rule.filter, filter))
            || self
                .patterns
                .iter()
                .filter(|p| p.access == Access::Deny && applies(p, client))
                .any(|p| covers(&p.expand(client), filter));
        if denied {
            SubscribeDecision::Denied
        } else {
            SubscribeDecision::Allowed
        }
    }

    /// May `client` read every topic `filter` can match? For brokers that authorize a
    /// subscription once and never check its deliveries (EMQX): true only when a rule granting
    /// read covers the whole filter and no applicable `deny` rule can match any of its topics.
    pub fn can_read_everything(&self, client: AclClient<'_>, filter: &str) -> bool {
        let filter = match topic::parse_shared(filter) {
            Ok(Some((_group, inner))) => inner,
            _ => filter,
        };
        let own = self.own_rules(client);
        let patterns = || self.patterns.iter().filter(|p| applies(p, client));
        let denied = own
            .iter()
            .filter(|rule| rule.access == Access::Deny)
            .any(|rule| intersects(&rule.filter, filter))
            || patterns()
                .filter(|p| p.access == Access::Deny)
                .any(|p| intersects(&p.expand(client), filter));
        if denied {
            return false;
        }
        let granting = |access: Access| access.grants(Wanted::Read);
        own.iter()
            .any(|rule| granting(rule.access) && covers(&rule.filter, filter))
            || (client.pattern_grants_allowed()
                && patterns().any(|p| granting(p.access) && covers(&p.expand(client), filter)))
    }

    /// The decision rule: a matching applicable `deny` refuses; otherwise a matching rule
    /// granting the access allows; otherwise refused.
    fn decide(
        &self,
        client: AclClient<'_>,
        wanted: Wanted,
        matches: impl Fn(&str) -> bool,
    ) -> bool {
        let mut granted = false;
        for rule in self.own_rules(client) {
            if matches(&rule.filter) {
                if rule.access == Access::Deny {
                    return false;
                }
                granted |= rule.access.grants(wanted);
            }
        }
        let grants_allowed = client.pattern_grants_allowed();
        for pattern in &self.patterns {
            if !applies(pattern, client) {
                continue;
            }
            let is_deny = pattern.access == Access::Deny;
            // Once granted only a deny can change the answer; a grant from a pattern needs a
            // client without wildcards in its names. A deny is applied even then: substituted
            // wildcards only widen what it refuses.
            if !is_deny && (granted || !grants_allowed || !pattern.access.grants(wanted)) {
                continue;
            }
            if matches(&pattern.expand(client)) {
                if is_deny {
                    return false;
                }
                granted = true;
            }
        }
        granted
    }

    /// The client's own section: its user's rules, or the anonymous rules.
    fn own_rules(&self, client: AclClient<'_>) -> &[Rule] {
        match client.username {
            Some(name) => self.users.get(name).map_or(&[], Vec::as_slice),
            None => &self.anonymous,
        }
    }
}

/// A pattern using `%u` applies only to clients with a username.
fn applies(pattern: &Pattern, client: AclClient<'_>) -> bool {
    !(pattern.uses_username && client.username.is_none())
}

/// Splits off the first word (separated by spaces or tabs); the rest is left-trimmed.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

fn parse_rule(rest: &str) -> Result<(Access, String), SyntaxError> {
    let (first, after) = split_word(rest);
    let (access, filter) = match first {
        "read" => (Access::Read, after),
        "write" => (Access::Write, after),
        "readwrite" => (Access::ReadWrite, after),
        "deny" => (Access::Deny, after),
        _ => (Access::ReadWrite, rest),
    };
    let filter = filter.trim();
    if filter.is_empty() {
        return Err(SyntaxError::MissingTopic);
    }
    // `%u`/`%c` are substituted at check time; what surrounds them must be a valid filter.
    let probe = filter.replace("%u", "u").replace("%c", "c");
    topic::validate_topic_filter(&probe).map_err(|problem| SyntaxError::InvalidTopic {
        topic: filter.to_owned(),
        problem,
    })?;
    Ok((access, filter.to_owned()))
}

/// True when every topic `filter` can match is also matched by `rule` (both are filters), so
/// a `deny` rule refuses the whole subscription. Conservative: when in doubt, not covered.
fn covers(rule: &str, filter: &str) -> bool {
    // MQTT's `$` rule: a rule starting with a wildcard never matches `$` topics.
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

/// Can some topic match both filters? (`$` topics are not special here: saying yes more
/// often only refuses more.)
fn intersects(a: &str, b: &str) -> bool {
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;
