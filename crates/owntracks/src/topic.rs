//! OwnTracks MQTT topics: `owntracks/<user>/<device>[/<suffix>]`.
//!
//! The apps publish a device's locations (and its will, `lwt`) to the base topic and everything
//! else to one level below it (`/event`, `/info`, `/cmd`, ...). The prefix is the apps' default
//! `pubTopicBase` (`owntracks/%u/%d`); the server only speaks that layout, because it derives the
//! user and the device (and so the access rules and the storage key) from the topic.
//!
//! Parsing is strict: anything that is not exactly this layout is `None`, so callers can treat
//! such a publish as "not OwnTracks" instead of guessing which level is the user.

/// The one-level suffixes the apps use below a base topic.
///
/// `event` (transitions), `info` (cards), `cmd` (commands to the device), `waypoint` (one region,
/// on creation), `waypoints` (an export of all regions), `dump` (a configuration dump),
/// `status`, `step` (step counts), `beacon` (beacon ranging) and `request` (iOS tours).
pub const SUFFIXES: &[&str] = &[
    "event",
    "info",
    "cmd",
    "waypoint",
    "waypoints",
    "dump",
    "status",
    "step",
    "beacon",
    "request",
];

/// The first level of every OwnTracks topic.
pub const PREFIX: &str = "owntracks";

/// A parsed OwnTracks topic, borrowing from the topic string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Topic<'a> {
    /// The user level: in the apps' default layout, the MQTT username.
    pub user: &'a str,
    /// The device level (`deviceId`).
    pub device: &'a str,
    /// `None` on the base topic (locations, `lwt`), else one of [`SUFFIXES`].
    pub suffix: Option<&'a str>,
}

impl Topic<'_> {
    /// The base topic of this topic's device.
    pub fn base(&self) -> String {
        base_topic(self.user, self.device)
    }
}

/// Parses `owntracks/<user>/<device>` or `owntracks/<user>/<device>/<suffix>`.
///
/// `None` unless the topic has exactly 3 or 4 levels, starts with `owntracks`, has a non-empty
/// user and device without wildcards (`+`, `#` are not valid in topic names, so such a string
/// is a filter, not a publish topic), and its suffix, if any, is one of [`SUFFIXES`].
pub fn parse_topic(topic: &str) -> Option<Topic<'_>> {
    let mut levels = topic.split('/');
    if levels.next()? != PREFIX {
        return None;
    }
    let user = levels.next().filter(|level| is_name(level))?;
    let device = levels.next().filter(|level| is_name(level))?;
    let suffix = match levels.next() {
        None => None,
        Some(suffix) if SUFFIXES.contains(&suffix) => Some(suffix),
        Some(_) => return None,
    };
    if levels.next().is_some() {
        return None;
    }
    Some(Topic {
        user,
        device,
        suffix,
    })
}

/// `owntracks/<user>/<device>`: where a device publishes its locations and where commands'
/// `/cmd` and cards' `/info` hang off.
pub fn base_topic(user: &str, device: &str) -> String {
    format!("{PREFIX}/{user}/{device}")
}

/// `owntracks/<user>/<device>/cmd`: where a device listens for commands
/// ([`crate::command`]).
pub fn cmd_topic(user: &str, device: &str) -> String {
    format!("{PREFIX}/{user}/{device}/cmd")
}

/// A user or device level: non-empty and free of MQTT wildcards.
fn is_name(level: &str) -> bool {
    !level.is_empty() && !level.contains(['+', '#'])
}

/// The longest device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 100;

/// A device name the server does not store under: see [`check_device_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a device name must be 1 to 100 characters without '/', '+', '#' or control characters")]
pub struct InvalidDeviceName;

/// The one rule for device names, whichever door they come through (MQTT topic level, HTTP
/// mode, setup page): 1 to [`MAX_DEVICE_NAME_CHARS`] characters, no topic separator or
/// wildcard, no control characters (they end up in exports, file names and XML, which
/// forbids most of them).
pub fn check_device_name(name: &str) -> Result<(), InvalidDeviceName> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_DEVICE_NAME_CHARS
        && !name.contains(['/', '+', '#'])
        && !name.chars().any(char::is_control);
    valid.then_some(()).ok_or(InvalidDeviceName)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic<'a>(user: &'a str, device: &'a str, suffix: Option<&'a str>) -> Option<Topic<'a>> {
        Some(Topic {
            user,
            device,
            suffix,
        })
    }

    #[test]
    fn parses_base_topics_and_every_known_suffix() {
        assert_eq!(
            parse_topic("owntracks/alice/phone"),
            topic("alice", "phone", None)
        );
        for suffix in SUFFIXES {
            let name = format!("owntracks/alice/phone/{suffix}");
            assert_eq!(
                parse_topic(&name),
                topic("alice", "phone", Some(suffix)),
                "{name}"
            );
        }
    }

    #[test]
    fn keeps_unusual_but_valid_names() {
        // Usernames are whatever the broker accepts: spaces, dots, capitals, non-ASCII.
        assert_eq!(
            parse_topic("owntracks/Jane Doe/iPhone 15.2"),
            topic("Jane Doe", "iPhone 15.2", None)
        );
        assert_eq!(
            parse_topic("owntracks/jürgen/händy/info"),
            topic("jürgen", "händy", Some("info"))
        );
    }

    #[test]
    fn rejects_everything_else() {
        for name in [
            "",
            "owntracks",
            "owntracks/",
            "owntracks/alice",
            "owntracks/alice/",
            "owntracks//phone",
            "owntracks/alice//event",
            "owntracks/alice/phone/",
            "owntracks/alice/phone/unknown",
            "owntracks/alice/phone/event/extra",
            "owntracks/alice/phone/cmd/",
            "owntracks/+/+",
            "owntracks/alice/#",
            "owntracks/+/phone/event",
            "OwnTracks/alice/phone",
            "/owntracks/alice/phone",
            "other/alice/phone",
            "owntracks/alice/phone/Event",
        ] {
            assert_eq!(parse_topic(name), None, "{name:?}");
        }
    }

    #[test]
    fn device_names_follow_one_rule() {
        for good in [
            "phone",
            "iPhone 15.2",
            "händy",
            &"x".repeat(100),
            &"é".repeat(100),
        ] {
            assert_eq!(check_device_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "ctl\u{1}dev",
            "tab\there",
            "new\nline",
            "del\u{7f}",
            "c1\u{85}",
            "a/b",
            "a+b",
            "a#b",
            &"x".repeat(101),
        ] {
            assert_eq!(check_device_name(bad), Err(InvalidDeviceName), "{bad:?}");
        }
    }

    #[test]
    fn base_topic_is_the_inverse_of_parsing() {
        let name = base_topic("alice", "phone");
        assert_eq!(name, "owntracks/alice/phone");
        let parsed = parse_topic(&name).unwrap();
        assert_eq!(parsed.base(), name);
        assert_eq!(
            parse_topic("owntracks/alice/phone/event").unwrap().base(),
            name
        );
        assert_eq!(
            parse_topic(&cmd_topic("alice", "phone")),
            topic("alice", "phone", Some("cmd"))
        );
    }
}
