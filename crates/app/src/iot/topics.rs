//! The IoT topic layout under `[iot] base_topic` (default `iot`) and who may do what there.
//!
//! ```text
//! <base>/devices/<id>/telemetry/<anything>   device -> server (stored)
//! <base>/devices/<id>/status/online|offline|heartbeat
//! <base>/devices/<id>/commands/<anything>    server/owner -> device
//! <base>/devices/<id>/commands/ack           device -> server (a command's answer)
//! <base>/devices/<id>/config                 server/owner -> device (retained)
//! <base>/fleet/<group>/commands              server/owner -> every device of the group
//! ```
//!
//! A device publishes only telemetry, status and command answers under its own id and reads
//! only its own commands and config and its fleet's commands; its owner reads everything of
//! its devices and may send them commands and config. Everything else under the base is
//! refused (administrators are superusers and never get here).

use crate::accounts::directory::Verdict;

/// What a topic under the base is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotTopic<'a> {
    Telemetry {
        device: &'a str,
        suffix: &'a str,
    },
    Status {
        device: &'a str,
        state: &'a str,
    },
    CommandAck {
        device: &'a str,
    },
    Command {
        device: &'a str,
        suffix: &'a str,
    },
    Config {
        device: &'a str,
    },
    /// Any other topic below a device.
    DeviceOther {
        device: &'a str,
    },
    FleetCommand {
        group: &'a str,
    },
    /// Under the base, but not a known shape.
    Unknown,
}

/// Splits `topic` if it lies under `base`; `None` for topics that are not IoT topics.
pub fn parse<'a>(base: &str, topic: &'a str) -> Option<IotTopic<'a>> {
    let rest = topic.strip_prefix(base)?.strip_prefix('/')?;
    let mut levels = rest.splitn(3, '/');
    Some(match (levels.next(), levels.next(), levels.next()) {
        (Some("devices"), Some(device), rest) if !device.is_empty() => {
            match rest.map(|r| r.split_once('/').unwrap_or((r, ""))) {
                Some(("telemetry", suffix)) => IotTopic::Telemetry { device, suffix },
                Some(("status", state)) => IotTopic::Status { device, state },
                Some(("commands", "ack")) => IotTopic::CommandAck { device },
                Some(("commands", suffix)) => IotTopic::Command { device, suffix },
                Some(("config", "")) => IotTopic::Config { device },
                _ => IotTopic::DeviceOther { device },
            }
        }
        (Some("fleet"), Some(group), Some("commands")) if !group.is_empty() => {
            IotTopic::FleetCommand { group }
        }
        _ => IotTopic::Unknown,
    })
}

/// Who is asking, as far as the IoT rules care.
#[derive(Clone, Copy)]
pub enum Actor<'a> {
    /// A device logged in with its own credentials.
    Device { id: &'a str, group: Option<&'a str> },
    /// A user (account); `owns` tells whether a device id is one of theirs.
    User {
        owns: &'a dyn Fn(&str) -> bool,
        owns_group: &'a dyn Fn(&str) -> bool,
    },
}

const STATES: [&str; 3] = ["online", "offline", "heartbeat"];

/// May `actor` publish to `topic`? `NotMine` when the topic is not under `base`.
pub fn may_publish(base: &str, actor: Actor<'_>, topic: &str) -> Verdict {
    let Some(parsed) = parse(base, topic) else {
        return Verdict::NotMine;
    };
    let allowed = match (actor, parsed) {
        (Actor::Device { id, .. }, IotTopic::Telemetry { device, .. })
        | (Actor::Device { id, .. }, IotTopic::CommandAck { device }) => id == device,
        (Actor::Device { id, .. }, IotTopic::Status { device, state }) => {
            id == device && STATES.contains(&state)
        }
        (Actor::Device { .. }, _) => false,
        (Actor::User { owns, .. }, IotTopic::Command { device, .. })
        | (Actor::User { owns, .. }, IotTopic::Config { device }) => owns(device),
        (Actor::User { owns_group, .. }, IotTopic::FleetCommand { group }) => owns_group(group),
        (Actor::User { .. }, _) => false,
    };
    verdict(allowed)
}

/// May `actor` receive a message on `topic` (and subscribe to that exact topic)?
pub fn may_read(base: &str, actor: Actor<'_>, topic: &str) -> Verdict {
    let Some(parsed) = parse(base, topic) else {
        return Verdict::NotMine;
    };
    let allowed = match (actor, parsed) {
        (Actor::Device { id, .. }, IotTopic::Command { device, .. })
        | (Actor::Device { id, .. }, IotTopic::Config { device }) => id == device,
        (Actor::Device { group, .. }, IotTopic::FleetCommand { group: fleet }) => {
            group == Some(fleet)
        }
        (Actor::Device { .. }, _) => false,
        (Actor::User { owns, .. }, IotTopic::Telemetry { device, .. })
        | (Actor::User { owns, .. }, IotTopic::Status { device, .. })
        | (Actor::User { owns, .. }, IotTopic::CommandAck { device })
        | (Actor::User { owns, .. }, IotTopic::Command { device, .. })
        | (Actor::User { owns, .. }, IotTopic::Config { device })
        | (Actor::User { owns, .. }, IotTopic::DeviceOther { device }) => owns(device),
        (Actor::User { owns_group, .. }, IotTopic::FleetCommand { group }) => owns_group(group),
        (Actor::User { .. }, IotTopic::Unknown) => false,
    };
    verdict(allowed)
}

/// May `actor` read every topic `filter` can match? For brokers that authorize a
/// subscription once and deliver everything it matches (EMQX). `NotMine` when the filter
/// cannot reach under `base`. A device reads its whole lane (what it publishes there is its
/// own) and its fleet's commands; a user the lanes of their own devices and their groups'
/// fleet commands; wildcards standing for a device or group id are refused.
pub fn may_subscribe_everything(base: &str, actor: Actor<'_>, filter: &str) -> Verdict {
    let base_levels: Vec<&str> = base.split('/').collect();
    if !crate::accounts::directory::could_reach(filter, &base_levels) {
        return Verdict::NotMine;
    }
    let Some(rest) = filter.strip_prefix(base).and_then(|r| r.strip_prefix('/')) else {
        // Reaches under the base through a wildcard: across every device.
        return Verdict::Deny;
    };
    let levels: Vec<&str> = rest.split('/').collect();
    let id = levels
        .get(1)
        .copied()
        .filter(|level| !matches!(*level, "+" | "#"));
    let allowed = match (levels.first().copied(), id) {
        (Some("devices"), Some(id)) => match actor {
            Actor::Device { id: me, .. } => id == me,
            Actor::User { owns, .. } => owns(id),
        },
        (Some("fleet"), Some(group)) if levels.len() == 3 && levels[2] == "commands" => match actor
        {
            Actor::Device { group: mine, .. } => mine == Some(group),
            Actor::User { owns_group, .. } => owns_group(group),
        },
        _ => false,
    };
    verdict(allowed)
}

fn verdict(allowed: bool) -> Verdict {
    if allowed {
        Verdict::Allow
    } else {
        Verdict::Deny
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(v: Verdict) -> Option<bool> {
        match v {
            Verdict::Allow => Some(true),
            Verdict::Deny => Some(false),
            Verdict::NotMine => None,
        }
    }

    #[test]
    fn topics_parse() {
        assert_eq!(
            parse("iot", "iot/devices/s1/telemetry/temp/inside"),
            Some(IotTopic::Telemetry {
                device: "s1",
                suffix: "temp/inside"
            })
        );
        assert_eq!(
            parse("iot", "iot/devices/s1/telemetry"),
            Some(IotTopic::Telemetry {
                device: "s1",
                suffix: ""
            })
        );
        assert_eq!(
            parse("iot", "iot/devices/s1/commands/ack"),
            Some(IotTopic::CommandAck { device: "s1" })
        );
        assert_eq!(
            parse("iot", "iot/devices/s1/commands/reboot"),
            Some(IotTopic::Command {
                device: "s1",
                suffix: "reboot"
            })
        );
        assert_eq!(
            parse("iot", "iot/devices/s1/config"),
            Some(IotTopic::Config { device: "s1" })
        );
        assert_eq!(
            parse("iot", "iot/fleet/greenhouse/commands"),
            Some(IotTopic::FleetCommand {
                group: "greenhouse"
            })
        );
        assert_eq!(parse("iot", "iot/elsewhere"), Some(IotTopic::Unknown));
        assert_eq!(parse("iot", "iotx/devices/s1/config"), None);
        assert_eq!(parse("iot", "owntracks/a/b"), None);
        assert_eq!(
            parse("site/iot", "site/iot/devices/s1/status/online"),
            Some(IotTopic::Status {
                device: "s1",
                state: "online"
            })
        );
    }

    #[test]
    fn devices_stay_in_their_lane() {
        let me = Actor::Device {
            id: "s1",
            group: Some("greenhouse"),
        };
        let publish = |t| allowed(may_publish("iot", me, t));
        let read = |t| allowed(may_read("iot", me, t));
        assert_eq!(publish("iot/devices/s1/telemetry/temp"), Some(true));
        assert_eq!(publish("iot/devices/s1/status/online"), Some(true));
        assert_eq!(publish("iot/devices/s1/status/sleepy"), Some(false));
        assert_eq!(publish("iot/devices/s1/commands/ack"), Some(true));
        assert_eq!(
            publish("iot/devices/s1/commands/reboot"),
            Some(false),
            "not to itself"
        );
        assert_eq!(
            publish("iot/devices/s2/telemetry/temp"),
            Some(false),
            "not as another"
        );
        assert_eq!(publish("iot/fleet/greenhouse/commands"), Some(false));
        assert_eq!(read("iot/devices/s1/commands/reboot"), Some(true));
        assert_eq!(read("iot/devices/s1/config"), Some(true));
        assert_eq!(read("iot/fleet/greenhouse/commands"), Some(true));
        assert_eq!(read("iot/fleet/barn/commands"), Some(false));
        assert_eq!(read("iot/devices/s2/commands/reboot"), Some(false));
        assert_eq!(
            read("iot/devices/s1/telemetry/temp"),
            Some(false),
            "not its own data"
        );
        assert_eq!(publish("owntracks/x/y"), None, "other rules decide");
    }

    #[test]
    fn owners_see_their_devices() {
        let owns = |d: &str| d == "s1";
        let owns_group = |g: &str| g == "greenhouse";
        let owner = Actor::User {
            owns: &owns,
            owns_group: &owns_group,
        };
        let publish = |t| allowed(may_publish("iot", owner, t));
        let read = |t| allowed(may_read("iot", owner, t));
        assert_eq!(read("iot/devices/s1/telemetry/temp"), Some(true));
        assert_eq!(read("iot/devices/s1/status/offline"), Some(true));
        assert_eq!(read("iot/devices/s1/commands/ack"), Some(true));
        assert_eq!(read("iot/devices/s2/telemetry/temp"), Some(false));
        assert_eq!(publish("iot/devices/s1/commands/reboot"), Some(true));
        assert_eq!(publish("iot/devices/s1/config"), Some(true));
        assert_eq!(
            publish("iot/devices/s1/telemetry/temp"),
            Some(false),
            "no forging"
        );
        assert_eq!(publish("iot/devices/s2/commands/reboot"), Some(false));
        assert_eq!(publish("iot/fleet/greenhouse/commands"), Some(true));
        assert_eq!(publish("iot/fleet/barn/commands"), Some(false));
        assert_eq!(read("iot/whatever"), Some(false));
    }
}
