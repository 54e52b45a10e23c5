//! OwnTracks JSON payloads (`_type` objects), parsed as leniently as the apps parse them.
//!
//! [`parse`] turns one MQTT payload or HTTP body into a [`Message`]. Rules, in order:
//!
//! 1. An empty payload is [`ParseError::Empty`]: on a retained base topic it clears a contact,
//!    which callers handle before anything else.
//! 2. It must be a JSON object with a string `_type`. Unknown `_type`s are not errors but
//!    [`Message::Unknown`], so new app versions do not break the server.
//! 3. Unknown fields are ignored (each struct keeps the whole object in `raw` for storage).
//!    Types are read leniently, like the apps read them: numbers may be JSON strings
//!    (`"52.1"`), integers may be floats (`1.7e9`, truncated), booleans may be `0`/`1`, a
//!    number stands for a string (`"tid": 12`). Unusable *optional* fields are treated as
//!    absent: losing a location over a garbage battery level would be worse.
//! 4. The fields a message is useless without (`lat`, `lon`, `tst` of a location or transition;
//!    `desc`, `lat`, `lon` of a waypoint; `data` of an encrypted payload) are required and
//!    range-checked: a location at latitude 300 would poison maps, distances and statistics.
//!
//! Types the server only stores or forwards (`status`, `configuration`, `cmd`, `request`) are
//! kept as JSON values: their contents differ between iOS and Android and change often.

mod location;
mod other;
pub(crate) mod waypoint;

pub use location::{Location, Transition};
pub use other::{Beacon, Card, Encrypted, Lwt, Steps};
pub use waypoint::{Waypoint, Waypoints};

use crate::error::ParseError;
use crate::fields::Fields;
use serde_json::{Map, Value};

/// Timestamps must be below this (2^41 s, far beyond any real date): a bound that still admits
/// millisecond timestamps would not catch much, but it does catch overflowing garbage.
pub const MAX_TST: i64 = 1 << 41;

/// One OwnTracks message, by `_type`.
///
/// Not boxed although `Location` is the largest variant: it is also by far the most common
/// one, so boxing would add an allocation to nearly every parse to shrink the rare ones, and
/// a `Message` is short-lived (parsed, handled, dropped).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `location`: a position fix (base topic, or HTTP).
    Location(Location),
    /// `transition`: entering or leaving a region (`/event`).
    Transition(Transition),
    /// `waypoint`: one region, published when created on the device (`/waypoint`).
    Waypoint(Waypoint),
    /// `waypoints`: all regions of a device (`/waypoints`, answer to the `waypoints` command).
    Waypoints(Waypoints),
    /// `card`: a user's name and picture (`/info`, retained).
    Card(Card),
    /// `status`: app and OS state, differing per platform (`/status`).
    Status(Value),
    /// `configuration`: the device's settings (`/dump`).
    Configuration(Value),
    /// `steps`: a step count (iOS, `/step`).
    Steps(Steps),
    /// `beacon`: a ranged BLE beacon (iOS, `/beacon`).
    Beacon(Beacon),
    /// `lwt`: the device's MQTT will, published by the broker when it vanished.
    Lwt(Lwt),
    /// `cmd`: a command (normally sent *to* a device, on `/cmd`).
    Cmd(Value),
    /// `encrypted`: a secretbox around another message; see [`crate::crypto`].
    Encrypted(Encrypted),
    /// `request`: iOS tour requests (`/request`).
    Request(Value),
    /// A `_type` this crate does not know, kept whole.
    Unknown {
        /// The `_type`.
        kind: String,
        /// The whole object.
        raw: Value,
    },
}

impl Message {
    /// Parses one payload; see the [module documentation](self) for the rules.
    pub fn parse(payload: &[u8]) -> Result<Message, ParseError> {
        parse(payload)
    }

    /// Reads an already-decoded JSON value (an element of an HTTP batch, a decrypted payload).
    pub fn from_value(value: Value) -> Result<Message, ParseError> {
        let Value::Object(object) = value else {
            return Err(ParseError::NotAnObject);
        };
        let Some(kind) = object.get("_type").and_then(Value::as_str) else {
            return Err(ParseError::MissingType);
        };
        Ok(match kind {
            "location" => Message::Location(Location::from_object(object)?),
            "transition" => Message::Transition(Transition::from_object(object)?),
            "waypoint" => Message::Waypoint(Waypoint::from_object(object)?),
            "waypoints" => Message::Waypoints(Waypoints::from_object(object)?),
            "card" => Message::Card(Card::from_object(object)),
            "steps" => Message::Steps(Steps::from_object(object)),
            "beacon" => Message::Beacon(Beacon::from_object(object)),
            "lwt" => Message::Lwt(Lwt::from_object(object)),
            "encrypted" => Message::Encrypted(Encrypted::from_object(&object)?),
            "status" => Message::Status(Value::Object(object)),
            "configuration" => Message::Configuration(Value::Object(object)),
            "cmd" => Message::Cmd(Value::Object(object)),
            "request" => Message::Request(Value::Object(object)),
            _ => Message::Unknown {
                kind: kind.to_owned(),
                raw: Value::Object(object),
            },
        })
    }

    /// The `_type` of the message.
    pub fn kind(&self) -> &str {
        match self {
            Message::Location(_) => "location",
            Message::Transition(_) => "transition",
            Message::Waypoint(_) => "waypoint",
            Message::Waypoints(_) => "waypoints",
            Message::Card(_) => "card",
            Message::Status(_) => "status",
            Message::Configuration(_) => "configuration",
            Message::Steps(_) => "steps",
            Message::Beacon(_) => "beacon",
            Message::Lwt(_) => "lwt",
            Message::Cmd(_) => "cmd",
            Message::Encrypted(_) => "encrypted",
            Message::Request(_) => "request",
            Message::Unknown { kind, .. } => kind,
        }
    }
}

/// Parses one MQTT payload or HTTP body; see the [module documentation](self) for the rules.
pub fn parse(payload: &[u8]) -> Result<Message, ParseError> {
    if payload.is_empty() {
        return Err(ParseError::Empty);
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|err| ParseError::InvalidJson(err.to_string()))?;
    Message::from_value(value)
}

/// Reads a required latitude in [-90, 90].
fn latitude(fields: Fields<'_>) -> Result<f64, ParseError> {
    in_range(fields, "lat", 90.0)
}

/// Reads a required longitude in [-180, 180].
fn longitude(fields: Fields<'_>) -> Result<f64, ParseError> {
    in_range(fields, "lon", 180.0)
}

fn in_range(fields: Fields<'_>, field: &'static str, limit: f64) -> Result<f64, ParseError> {
    let value = fields.f64_required(field)?;
    if (-limit..=limit).contains(&value) {
        Ok(value)
    } else {
        Err(ParseError::invalid(
            field,
            format!("{value} is outside [-{limit}, {limit}]"),
        ))
    }
}

/// Checks a required timestamp read from `field`: after the epoch and below [`MAX_TST`].
fn timestamp(field: &'static str, tst: i64) -> Result<i64, ParseError> {
    if tst > 0 && tst < MAX_TST {
        Ok(tst)
    } else {
        Err(ParseError::invalid(
            field,
            format!("{tst} is not a timestamp in (0, 2^41)"),
        ))
    }
}

/// The object a struct was read from, for its `raw` field.
fn raw(object: Map<String, Value>) -> Value {
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_errors() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert!(matches!(parse(b" "), Err(ParseError::InvalidJson(_))));
        assert!(matches!(parse(b"{"), Err(ParseError::InvalidJson(_))));
        assert!(matches!(parse(b"\xff"), Err(ParseError::InvalidJson(_))));
        assert_eq!(parse(b"[]"), Err(ParseError::NotAnObject));
        assert_eq!(parse(b"\"location\""), Err(ParseError::NotAnObject));
        assert_eq!(parse(b"null"), Err(ParseError::NotAnObject));
        assert_eq!(parse(b"{}"), Err(ParseError::MissingType));
        assert_eq!(parse(br#"{"_type":5}"#), Err(ParseError::MissingType));
    }

    #[test]
    fn kind_is_the_type() {
        for kind in [
            "location",
            "transition",
            "waypoint",
            "waypoints",
            "card",
            "status",
            "configuration",
            "steps",
            "beacon",
            "lwt",
            "cmd",
            "encrypted",
            "request",
            "tour",
        ] {
            let value = json!({
                "_type": kind, "lat": 1, "lon": 2, "tst": 3, "event": "enter", "desc": "d",
                "waypoints": [], "data": "AAAA"
            });
            let message = Message::from_value(value).unwrap();
            assert_eq!(message.kind(), kind);
        }
    }

    #[test]
    fn unknown_types_are_kept_whole() {
        let message = parse(br#"{"_type":"tour","x":[1,2]}"#).unwrap();
        assert_eq!(
            message,
            Message::Unknown {
                kind: "tour".into(),
                raw: json!({"_type": "tour", "x": [1, 2]})
            }
        );
    }

    #[test]
    fn opaque_types_are_kept_whole() {
        let status = json!({"_type": "status", "android": {"wifi": 1, "ps": 0}});
        assert_eq!(
            Message::from_value(status.clone()).unwrap(),
            Message::Status(status)
        );
        let cmd = json!({"_type": "cmd", "action": "reportLocation"});
        assert_eq!(Message::from_value(cmd.clone()).unwrap(), Message::Cmd(cmd));
    }

    #[test]
    fn timestamps_must_be_plausible() {
        assert_eq!(timestamp("tst", 1), Ok(1));
        assert_eq!(timestamp("tst", MAX_TST - 1), Ok(MAX_TST - 1));
        for tst in [0, -1, MAX_TST, i64::MAX] {
            assert_eq!(timestamp("tst", tst).unwrap_err().field(), Some("tst"));
        }
    }
}
