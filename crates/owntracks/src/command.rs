//! Commands to devices (`_type: cmd`), published to `owntracks/<user>/<device>/cmd`
//! ([`crate::topic::cmd_topic`]) or returned in an HTTP-mode response.
//!
//! Only the builders live here; when to send them is the server's business. Platform support
//! differs, and a device ignores what it does not know:
//!
//! | Builder | `action` | Apps |
//! |---|---|---|
//! | [`report_location`] | `reportLocation` | iOS, Android (needs `allowRemoteLocation`) |
//! | [`set_waypoints`] | `setWaypoints` | iOS, Android (merged with existing regions) |
//! | [`clear_waypoints`] | `clearWaypoints` | Android |
//! | [`set_configuration`] | `setConfiguration` | iOS, Android (needs `remoteConfiguration`) |
//! | [`request_waypoints`] | `waypoints` | iOS, Android (device publishes `waypoints`) |
//! | [`status`] | `status` | Android (device publishes `status`) |
//! | [`dump`] | `dump` | iOS (device publishes `configuration` on `/dump`) |
//! | [`report_steps`] | `reportSteps` | iOS (device publishes `steps`) |
//!
//! Devices act on commands only when remote commands are enabled (`cmd`, on by default on
//! Android, off on iOS). Send with QoS 1 or 2 to a persistent session: the phone is usually
//! asleep and picks the command up when it next connects.

use crate::fields::Object;
use crate::message::Waypoint;
use crate::message::Waypoints;
use serde_json::Value;

/// A `cmd` object with `action`.
fn command(action: &str) -> Object {
    let mut o = Object::typed("cmd");
    o.put("action", action);
    o
}

/// Asks for an immediate location report (`t: "r"` in the answer).
pub fn report_location() -> Value {
    command("reportLocation").into_value()
}

/// Imports `waypoints` into the device's regions. Each element carries `_type: waypoint` and
/// the wrapper `_type: waypoints`, which the apps require.
pub fn set_waypoints(waypoints: &[Waypoint]) -> Value {
    let list = Waypoints {
        waypoints: waypoints.to_vec(),
        creator: None,
        raw: Value::Null,
    };
    let mut o = command("setWaypoints");
    o.put("waypoints", list.to_json());
    o.into_value()
}

/// Deletes all regions on the device.
pub fn clear_waypoints() -> Value {
    command("clearWaypoints").into_value()
}

/// Applies settings. `configuration` is usually a [`crate::DeviceConfig::to_otrc`] or a subset
/// of one; `_type: configuration` is added to an object that lacks it, since the apps ignore
/// an untyped configuration. Anything else is sent as given.
pub fn set_configuration(configuration: Value) -> Value {
    let configuration = match configuration {
        Value::Object(mut object) => {
            object
                .entry("_type")
                .or_insert_with(|| Value::from("configuration"));
            Value::Object(object)
        }
        other => other,
    };
    let mut o = command("setConfiguration");
    o.put("configuration", configuration);
    o.into_value()
}

/// Asks the device to publish all its regions as a `waypoints` message.
pub fn request_waypoints() -> Value {
    command("waypoints").into_value()
}

/// Asks an Android device to publish a `status` message.
pub fn status() -> Value {
    command("status").into_value()
}

/// Asks an iOS device to publish its configuration on `/dump`.
pub fn dump() -> Value {
    command("dump").into_value()
}

/// Asks an iOS device for its step count between `from` and `to` (epoch seconds; the app
/// picks defaults for absent bounds).
pub fn report_steps(from: Option<i64>, to: Option<i64>) -> Value {
    let mut o = command("reportSteps");
    o.opt("from", from);
    o.opt("to", to);
    o.into_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, Waypoints};
    use serde_json::json;

    #[test]
    fn simple_commands() {
        for (value, action) in [
            (report_location(), "reportLocation"),
            (clear_waypoints(), "clearWaypoints"),
            (request_waypoints(), "waypoints"),
            (status(), "status"),
            (dump(), "dump"),
        ] {
            assert_eq!(value, json!({"_type": "cmd", "action": action}));
            assert_eq!(Message::from_value(value).unwrap().kind(), "cmd");
        }
    }

    #[test]
    fn set_waypoints_wraps_typed_waypoints() {
        let mut home = Waypoint::new("Home", 52.5, 13.4);
        home.rad = Some(100.0);
        home.tst = Some(1_600_000_000);
        home.raw = json!({"ignored": true});
        let value = set_waypoints(&[home.clone()]);
        assert_eq!(
            value,
            json!({
                "_type": "cmd",
                "action": "setWaypoints",
                "waypoints": {
                    "_type": "waypoints",
                    "waypoints": [{
                        "_type": "waypoint", "desc": "Home", "lat": 52.5, "lon": 13.4,
                        "rad": 100, "tst": 1_600_000_000
                    }]
                }
            })
        );
        // The inner list is itself a valid `waypoints` message.
        let Message::Waypoints(Waypoints { waypoints, .. }) =
            Message::from_value(value["waypoints"].clone()).unwrap()
        else {
            panic!("not waypoints");
        };
        assert_eq!(waypoints[0].desc, home.desc);
        assert_eq!(set_waypoints(&[])["waypoints"]["waypoints"], json!([]));
    }

    #[test]
    fn set_configuration_types_the_configuration() {
        assert_eq!(
            set_configuration(json!({"monitoring": 2})),
            json!({
                "_type": "cmd",
                "action": "setConfiguration",
                "configuration": {"_type": "configuration", "monitoring": 2}
            })
        );
        let typed = json!({"_type": "configuration", "tid": "ab"});
        assert_eq!(set_configuration(typed.clone())["configuration"], typed);
    }

    #[test]
    fn report_steps_bounds_are_optional() {
        assert_eq!(
            report_steps(None, None),
            json!({"_type": "cmd", "action": "reportSteps"})
        );
        assert_eq!(
            report_steps(Some(1), Some(2)),
            json!({"_type": "cmd", "action": "reportSteps", "from": 1, "to": 2})
        );
    }
}
