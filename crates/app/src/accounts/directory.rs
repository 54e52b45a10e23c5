//! An in-memory picture of who exists and who shares with whom: the broker asks it on every
//! publish, subscribe and delivery, so it must answer without touching the database. It is
//! rebuilt from the database whenever accounts or shares change (see [`super::Accounts`]).

use mytracks_store::{ShareView, User};
use std::collections::HashMap;

/// What the MQTT policy needs to know about an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: i64,
    pub active: bool,
    pub admin: bool,
}

/// Accounts and shares as of the last refresh.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    members: HashMap<String, Member>,
    /// (owner, viewer) -> history: the viewer may see the owner's live locations, and the
    /// history too when `true`.
    shares: HashMap<(String, String), bool>,
}

/// What the OwnTracks policy says about a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Not an account's OwnTracks topic: other rules (the ACL file) decide.
    NotMine,
}

impl Directory {
    pub fn new(users: &[User], shares: &[ShareView]) -> Directory {
        Directory {
            members: users
                .iter()
                .map(|u| {
                    let member = Member {
                        id: u.id,
                        active: u.is_active,
                        admin: u.is_admin,
                    };
                    (u.username.clone(), member)
                })
                .collect(),
            shares: shares
                .iter()
                .map(|s| ((s.owner.clone(), s.viewer.clone()), s.history))
                .collect(),
        }
    }

    pub fn member(&self, username: &str) -> Option<Member> {
        self.members.get(username).copied()
    }

    /// An active admin: may do anything over MQTT.
    pub fn is_admin(&self, username: &str) -> bool {
        self.member(username).is_some_and(|m| m.active && m.admin)
    }

    /// Does `owner` share with `viewer`?
    pub fn shares(&self, owner: &str, viewer: &str) -> bool {
        self.shares
            .contains_key(&(owner.to_owned(), viewer.to_owned()))
    }

    /// Does `owner` share their history with `viewer`?
    pub fn shares_history(&self, owner: &str, viewer: &str) -> bool {
        self.shares
            .get(&(owner.to_owned(), viewer.to_owned()))
            .copied()
            .unwrap_or(false)
    }

    /// The accounts whose live positions `viewer` may see: themself, everyone sharing with
    /// them (`history`: only those sharing their history too); all accounts for an admin.
    pub fn visible_owners(&self, viewer: &str, history: bool) -> Vec<(String, i64)> {
        let admin = self.is_admin(viewer);
        self.members
            .iter()
            .filter(|(name, _)| {
                admin
                    || name.as_str() == viewer
                    || match history {
                        true => self.shares_history(name, viewer),
                        false => self.shares(name, viewer),
                    }
            })
            .map(|(name, m)| (name.clone(), m.id))
            .collect()
    }

    /// May `viewer` see `owner`'s live positions (`history`: and their history)?
    pub fn can_see(&self, viewer: &str, owner: &str, history: bool) -> bool {
        viewer == owner
            || self.is_admin(viewer)
            || match history {
                true => self.shares_history(owner, viewer),
                false => self.shares(owner, viewer),
            }
    }

    /// The account name of a user id.
    pub fn name_of(&self, id: i64) -> Option<&str> {
        self.members
            .iter()
            .find(|(_, m)| m.id == id)
            .map(|(name, _)| name.as_str())
    }

    /// Accounts that were active here and are inactive or gone in `newer`.
    pub fn revoked_in<'a>(&'a self, newer: &'a Directory) -> impl Iterator<Item = &'a str> {
        self.members
            .iter()
            .filter(|(name, old)| old.active && !newer.member(name).is_some_and(|m| m.active))
            .map(|(name, _)| name.as_str())
    }

    /// Accounts that may read less in `newer`: admins no longer, viewers of a share that is
    /// gone or lost its history flag (and with it the regions). A broker that checks a
    /// subscription only when it is made (EMQX, rmqtt) would go on delivering to them what
    /// they may no longer read.
    pub fn narrowed_in<'a>(&'a self, newer: &'a Directory) -> impl Iterator<Item = &'a str> {
        let demoted = self
            .members
            .iter()
            .filter(|(name, old)| old.admin && !newer.member(name).is_some_and(|m| m.admin))
            .map(|(name, _)| name.as_str());
        let unshared = self
            .shares
            .iter()
            .filter(|(key, history)| match newer.shares.get(*key) {
                None => true,
                Some(newer_history) => **history && !newer_history,
            })
            .map(|((_, viewer), _)| viewer.as_str());
        demoted.chain(unshared)
    }

    /// Accounts that exist here and are gone (deleted) in `newer`.
    pub fn deleted_in<'a>(&'a self, newer: &'a Directory) -> impl Iterator<Item = &'a str> {
        self.members
            .keys()
            .filter(|name| newer.member(name).is_none())
            .map(String::as_str)
    }

    /// Is `topic` (or a filter, `$share/...` included) inside the OwnTracks namespace of a
    /// name that is no account (`owntracks/<nobody>/...`)? Such a namespace is reserved: data
    /// or commands planted there would greet an account created later under that name.
    /// Wildcards in the name level (`owntracks/+/...`) are not a namespace.
    pub fn unclaimed(&self, topic: &str) -> bool {
        let topic = match mytracks_codec::topic::parse_shared(topic) {
            Ok(Some((_group, inner))) => inner,
            _ => topic,
        };
        let Some(rest) = topic.strip_prefix("owntracks/") else {
            return false;
        };
        let name = rest.split('/').next().unwrap_or_default();
        !matches!(name, "+" | "#") && !self.members.contains_key(name)
    }

    /// The account whose OwnTracks namespace `topic` (or filter) is in: the second level of
    /// `owntracks/<user>/...`, when that names an account.
    fn owner_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix("owntracks/")?;
        let user = rest.split('/').next().unwrap_or_default();
        self.members.contains_key(user).then_some(user)
    }

    /// May `username` (`None`: anonymous or a file user) publish on `topic`? Only an account
    /// writes in its own namespace; admins anywhere.
    pub fn may_publish(&self, username: Option<&str>, topic: &str) -> Verdict {
        let Some(owner) = self.owner_of(topic) else {
            return Verdict::NotMine;
        };
        match username {
            Some(name) if self.is_admin(name) => Verdict::Allow,
            Some(name) if name == owner && self.is_active(name) => Verdict::Allow,
            _ => Verdict::Deny,
        }
    }

    /// May `username` receive a message published on `topic` (a concrete topic)? The owner
    /// gets everything in its namespace (its `/cmd` included); a viewer the owner shares with
    /// gets `owntracks/<owner>/<device>` and its `/info` and `/event`; a viewer of a share with
    /// the history flag also its regions, `/waypoint` and `/waypoints` (the REST rule of M10).
    pub fn may_read(&self, username: Option<&str>, topic: &str) -> Verdict {
        let Some(owner) = self.owner_of(topic) else {
            return Verdict::NotMine;
        };
        let Some(name) = username.filter(|n| self.is_active(n)) else {
            return Verdict::Deny;
        };
        if name == owner || self.is_admin(name) {
            return Verdict::Allow;
        }
        let levels: Vec<&str> = topic.split('/').collect();
        let allowed = match SharedKind::of(&levels) {
            Some(SharedKind::Live) => self.shares(owner, name),
            Some(SharedKind::Regions) => self.shares_history(owner, name),
            None => false,
        };
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    /// May `username` subscribe to `filter`? Refused when the filter lies wholly inside
    /// another account's namespace and that account shares nothing with them; wildcard
    /// filters across accounts (`owntracks/#`) are accepted and filtered per delivery.
    pub fn may_subscribe(&self, username: Option<&str>, filter: &str) -> Verdict {
        let filter = match mytracks_codec::topic::parse_shared(filter) {
            Ok(Some((_group, inner))) => inner,
            _ => filter,
        };
        let Some(owner) = self.owner_of(filter) else {
            return Verdict::NotMine;
        };
        let Some(name) = username.filter(|n| self.is_active(n)) else {
            return Verdict::Deny;
        };
        if name == owner || self.is_admin(name) || self.shares(owner, name) {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    /// May `username` read every topic `filter` can match in the accounts' namespaces? For
    /// brokers that authorize a subscription once and deliver everything it matches (EMQX):
    /// the owner's whole namespace to the owner; to a viewer the owner shares with, only
    /// filters that cannot match more than the shared shapes (`owntracks/<owner>/<device>`
    /// and its `/info` and `/event`; `/waypoint(s)` with the history flag). `NotMine` when the
    /// filter cannot reach `owntracks/`.
    pub fn may_subscribe_everything(&self, username: Option<&str>, filter: &str) -> Verdict {
        if !could_reach(filter, &["owntracks"]) {
            return Verdict::NotMine;
        }
        let levels: Vec<&str> = filter.split('/').collect();
        let owner = match levels.as_slice() {
            ["owntracks", owner, ..] if !matches!(*owner, "+" | "#") => *owner,
            // `+/...`, `#`, `owntracks/+/...`: across accounts.
            _ => return Verdict::Deny,
        };
        let Some(name) = username.filter(|n| self.is_active(n)) else {
            return Verdict::Deny;
        };
        if !self.members.contains_key(owner) {
            return Verdict::Deny;
        }
        // `#` as the device level could match more than the shared shapes.
        let shared = match levels.as_slice() {
            [_, _, "#", ..] => false,
            _ => match SharedKind::of(&levels) {
                Some(SharedKind::Live) => self.shares(owner, name),
                Some(SharedKind::Regions) => self.shares_history(owner, name),
                None => false,
            },
        };
        let allowed = name == owner || shared;
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    fn is_active(&self, username: &str) -> bool {
        self.member(username).is_some_and(|m| m.active)
    }
}

/// What a viewer may read of an account's OwnTracks topics, by the shape of the topic.
enum SharedKind {
    /// `owntracks/<owner>/<device>` and its `/info` and `/event`: any share.
    Live,
    /// `/waypoint` and `/waypoints`, the owner's regions (home, work): shares with the history
    /// flag only, as over REST (finding M10).
    Regions,
}

impl SharedKind {
    /// `levels`: a topic (or filter) split at `/`, `owntracks` first. Everything else (`/cmd`,
    /// `/dump`, `/step`, deeper levels, `#`) is the owner's alone.
    fn of(levels: &[&str]) -> Option<SharedKind> {
        match levels {
            [_, _, device] if *device != "#" => Some(SharedKind::Live),
            [_, _, _, "info" | "event"] => Some(SharedKind::Live),
            [_, _, _, "waypoint" | "waypoints"] => Some(SharedKind::Regions),
            _ => None,
        }
    }
}

/// Can `filter` match a topic that starts with the levels of `prefix` and has at least one
/// level more?
pub fn could_reach(filter: &str, prefix: &[&str]) -> bool {
    let mut levels = filter.split('/');
    for want in prefix {
        match levels.next() {
            Some("#") => return true,
            Some("+") => {}
            Some(level) if level == *want => {}
            _ => return false,
        }
    }
    levels.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, name: &str, active: bool, admin: bool) -> User {
        crate::fixtures::user(id, name, "", admin, active)
    }

    fn share(owner: &str, viewer: &str) -> ShareView {
        ShareView {
            id: 1,
            owner_id: 0,
            owner: owner.into(),
            viewer_id: 0,
            viewer: viewer.into(),
            history: false,
            created_at: 0,
        }
    }

    fn directory() -> Directory {
        Directory::new(
            &[
                user(1, "alice", true, false),
                user(2, "bob", true, false),
                user(3, "root", true, true),
                user(4, "gone", false, false),
            ],
            &[share("alice", "bob")],
        )
    }

    use Verdict::*;

    #[test]
    fn publishing() {
        let d = directory();
        assert_eq!(d.may_publish(Some("alice"), "owntracks/alice/phone"), Allow);
        assert_eq!(
            d.may_publish(Some("alice"), "owntracks/alice/phone/event"),
            Allow
        );
        assert_eq!(d.may_publish(Some("bob"), "owntracks/alice/phone"), Deny);
        assert_eq!(
            d.may_publish(Some("bob"), "owntracks/alice/phone/cmd"),
            Deny
        );
        assert_eq!(
            d.may_publish(Some("root"), "owntracks/alice/phone/cmd"),
            Allow
        );
        assert_eq!(d.may_publish(Some("gone"), "owntracks/gone/phone"), Deny);
        assert_eq!(d.may_publish(None, "owntracks/alice/phone"), Deny);
        assert_eq!(d.may_publish(Some("filer"), "owntracks/alice/x"), Deny);
        // Not an account's namespace: other rules decide.
        assert_eq!(
            d.may_publish(Some("bob"), "owntracks/nobody/phone"),
            NotMine
        );
        assert_eq!(d.may_publish(Some("bob"), "sensors/1"), NotMine);
        assert_eq!(d.may_publish(Some("bob"), "owntracks"), NotMine);
    }

    #[test]
    fn namespaces_of_nobody_are_unclaimed() {
        let d = directory();
        assert!(d.unclaimed("owntracks/dave/phone/cmd"));
        assert!(d.unclaimed("owntracks/dave/#"));
        assert!(d.unclaimed("$share/g/owntracks/dave/+"));
        assert!(d.unclaimed("owntracks/"));
        assert!(!d.unclaimed("owntracks/alice/phone"));
        assert!(
            !d.unclaimed("owntracks/gone/phone"),
            "inactive is still an account"
        );
        assert!(!d.unclaimed("owntracks/+/+"));
        assert!(!d.unclaimed("owntracks/#"));
        assert!(!d.unclaimed("owntracks"));
        assert!(!d.unclaimed("sensors/dave"));
        let newer = Directory::new(&[user(1, "alice", true, false)], &[]);
        let mut deleted: Vec<&str> = d.deleted_in(&newer).collect();
        deleted.sort();
        assert_eq!(deleted, ["bob", "gone", "root"]);
    }

    #[test]
    fn who_may_read_less() {
        let d = directory();
        let same = directory();
        assert_eq!(d.narrowed_in(&same).count(), 0);
        // root demoted, alice's share with bob gone, alice made admin (reads more: not listed).
        let newer = Directory::new(
            &[
                user(1, "alice", true, true),
                user(2, "bob", true, false),
                user(3, "root", true, false),
                user(4, "gone", false, false),
            ],
            &[],
        );
        let mut narrowed: Vec<&str> = d.narrowed_in(&newer).collect();
        narrowed.sort();
        assert_eq!(narrowed, ["bob", "root"]);
    }

    #[test]
    fn reading() {
        let d = directory();
        assert_eq!(
            d.may_read(Some("alice"), "owntracks/alice/phone/cmd"),
            Allow
        );
        assert_eq!(d.may_read(Some("bob"), "owntracks/alice/phone"), Allow);
        assert_eq!(d.may_read(Some("bob"), "owntracks/alice/phone/info"), Allow);
        assert_eq!(
            d.may_read(Some("bob"), "owntracks/alice/phone/event"),
            Allow
        );
        assert_eq!(d.may_read(Some("bob"), "owntracks/alice/phone/cmd"), Deny);
        assert_eq!(
            d.may_read(Some("bob"), "owntracks/alice/phone/waypoints"),
            Deny
        );
        assert_eq!(
            d.may_read(Some("alice"), "owntracks/bob/phone"),
            Deny,
            "one-way"
        );
        assert_eq!(d.may_read(Some("root"), "owntracks/bob/phone/cmd"), Allow);
        assert_eq!(d.may_read(Some("gone"), "owntracks/gone/phone"), Deny);
        assert_eq!(d.may_read(None, "owntracks/alice/phone"), Deny);
        assert_eq!(d.may_read(Some("bob"), "other/topic"), NotMine);
    }

    /// Finding M10: the owner's regions go to history sharers, never to live-only sharers;
    /// nothing else widens (commands, dumps, deeper levels stay the owner's).
    #[test]
    fn reading_regions_and_what_stays_private() {
        let mut history = share("alice", "hist");
        history.history = true;
        let d = Directory::new(
            &[
                user(1, "alice", true, false),
                user(2, "live", true, false),
                user(3, "hist", true, false),
                user(4, "other", true, false),
                user(5, "root", true, true),
            ],
            &[share("alice", "live"), history],
        );
        let table: &[(&str, [Verdict; 5])] = &[
            // topic: alice, live, hist, other, root
            ("owntracks/alice/phone", [Allow, Allow, Allow, Deny, Allow]),
            (
                "owntracks/alice/phone/event",
                [Allow, Allow, Allow, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/info",
                [Allow, Allow, Allow, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/waypoint",
                [Allow, Deny, Allow, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/waypoints",
                [Allow, Deny, Allow, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/cmd",
                [Allow, Deny, Deny, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/dump",
                [Allow, Deny, Deny, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/step",
                [Allow, Deny, Deny, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/status",
                [Allow, Deny, Deny, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/waypoints/x",
                [Allow, Deny, Deny, Deny, Allow],
            ),
            (
                "owntracks/alice/phone/cmd/waypoints",
                [Allow, Deny, Deny, Deny, Allow],
            ),
            ("owntracks/alice", [Allow, Deny, Deny, Deny, Allow]),
        ];
        let readers = ["alice", "live", "hist", "other", "root"];
        for (topic, verdicts) in table {
            for (reader, want) in readers.iter().zip(verdicts) {
                assert_eq!(d.may_read(Some(reader), topic), *want, "{reader} {topic}");
            }
        }
        // The subscription check of brokers that authorize once (EMQX) follows the same rule
        // (admins are let through before it, by `authorize_subscribe_strictly`).
        let filters: &[(&str, [Verdict; 5])] = &[
            (
                "owntracks/alice/phone/waypoints",
                [Allow, Deny, Allow, Deny, Deny],
            ),
            (
                "owntracks/alice/+/waypoint",
                [Allow, Deny, Allow, Deny, Deny],
            ),
            ("owntracks/alice/+/+", [Allow, Deny, Deny, Deny, Deny]),
            ("owntracks/alice/#", [Allow, Deny, Deny, Deny, Deny]),
            ("owntracks/alice/+/event", [Allow, Allow, Allow, Deny, Deny]),
            ("owntracks/alice/+/cmd", [Allow, Deny, Deny, Deny, Deny]),
        ];
        for (filter, verdicts) in filters {
            for (reader, want) in readers.iter().zip(verdicts) {
                let got = d.may_subscribe_everything(Some(reader), filter);
                assert_eq!(got, *want, "{reader} subscribes {filter}");
            }
        }
    }

    #[test]
    fn losing_the_history_flag_narrows() {
        let mut history = share("alice", "bob");
        history.history = true;
        let users = [user(1, "alice", true, false), user(2, "bob", true, false)];
        let old = Directory::new(&users, &[history]);
        let live = Directory::new(&users, &[share("alice", "bob")]);
        assert_eq!(old.narrowed_in(&live).collect::<Vec<_>>(), ["bob"]);
        assert_eq!(live.narrowed_in(&old).count(), 0, "gaining history widens");
    }

    #[test]
    fn subscribing() {
        let d = directory();
        assert_eq!(d.may_subscribe(Some("bob"), "owntracks/alice/#"), Allow);
        assert_eq!(d.may_subscribe(Some("alice"), "owntracks/bob/#"), Deny);
        assert_eq!(
            d.may_subscribe(Some("alice"), "$share/g/owntracks/bob/+"),
            Deny
        );
        assert_eq!(d.may_subscribe(Some("alice"), "owntracks/+/+"), NotMine);
        assert_eq!(d.may_subscribe(Some("alice"), "owntracks/#"), NotMine);
    }

    #[test]
    fn revocations() {
        let old = directory();
        let new = Directory::new(
            &[user(1, "alice", false, false), user(3, "root", true, true)],
            &[],
        );
        let mut revoked: Vec<&str> = old.revoked_in(&new).collect();
        revoked.sort();
        assert_eq!(revoked, ["alice", "bob"]);
    }
}
