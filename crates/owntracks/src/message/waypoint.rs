//! `waypoint` and `waypoints`: regions (geofences or BLE beacons) defined on a device.

use super::{latitude, longitude, raw};
use crate::error::ParseError;
use crate::fields::{Fields, Object};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One region (`_type: waypoint`): a circle around `lat`/`lon`, a BLE beacon, or both.
///
/// Also what [`crate::command::set_waypoints`] and [`crate::DeviceConfig`] send to devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Waypoint {
    /// Name of the region; it appears in transitions and in locations' `inregions`.
    pub desc: String,
    /// Centre latitude, degrees.
    pub lat: f64,
    /// Centre longitude, degrees.
    pub lon: f64,
    /// Radius, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rad: Option<f64>,
    /// Creation time, epoch seconds; copied into transitions' `wtst`. The booklet calls it the
    /// key by which `setWaypoints` replaces an existing region (iOS matches by `desc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tst: Option<i64>,
    /// Region id, copied into locations' `inrids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// BLE beacon UUID (iOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// BLE beacon major number (iOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// BLE beacon minor number (iOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Waypoint {
    /// A circular region with only the required fields.
    pub fn new(desc: impl Into<String>, lat: f64, lon: f64) -> Waypoint {
        Waypoint {
            desc: desc.into(),
            lat,
            lon,
            rad: None,
            tst: None,
            rid: None,
            uuid: None,
            major: None,
            minor: None,
            raw: Value::Null,
        }
    }

    /// Reads one waypoint; its `_type`, if any, is not checked (elements of a `waypoints`
    /// list and of configurations sometimes lack it).
    pub(crate) fn from_object(object: Map<String, Value>) -> Result<Waypoint, ParseError> {
        let f = Fields(&object);
        let desc = f.string_required("desc")?;
        let lat = latitude(f)?;
        let lon = longitude(f)?;
        Ok(Waypoint {
            desc,
            lat,
            lon,
            rad: f.f64("rad"),
            tst: f.i64("tst"),
            rid: f.string("rid"),
            uuid: f.string("uuid"),
            major: f.i64("major"),
            minor: f.i64("minor"),
            raw: raw(object),
        })
    }

    /// The canonical OwnTracks object (`_type: waypoint`), built from the typed fields.
    pub fn to_json(&self) -> Value {
        let mut o = Object::typed("waypoint");
        o.put("desc", self.desc.clone());
        o.put("lat", self.lat);
        o.put("lon", self.lon);
        o.num("rad", self.rad);
        o.opt("tst", self.tst);
        o.opt("rid", self.rid.clone());
        o.opt("uuid", self.uuid.clone());
        o.opt("major", self.major);
        o.opt("minor", self.minor);
        o.into_value()
    }
}

/// All regions of a device (`_type: waypoints`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Waypoints {
    /// The regions, in the order sent.
    pub waypoints: Vec<Waypoint>,
    /// Who made the list (`_creator`); ignored by the apps.
    #[serde(rename = "_creator", default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Waypoints {
    /// A bad element fails the whole list, naming its index: storing a partial export would
    /// silently lose regions the user believes were saved.
    pub(crate) fn from_object(object: Map<String, Value>) -> Result<Waypoints, ParseError> {
        let f = Fields(&object);
        let waypoints = waypoint_list(f.get("waypoints"))?;
        Ok(Waypoints {
            waypoints,
            creator: f.string("_creator"),
            raw: raw(object),
        })
    }

    /// The canonical OwnTracks object (`_type: waypoints`), each element with its `_type`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::typed("waypoints");
        o.put("waypoints", list_json(&self.waypoints));
        o.opt("_creator", self.creator.clone());
        o.into_value()
    }
}

/// Reads a required `waypoints` array.
pub(crate) fn waypoint_list(value: Option<&Value>) -> Result<Vec<Waypoint>, ParseError> {
    const FIELD: &str = "waypoints";
    let Some(value) = value else {
        return Err(ParseError::MissingField(FIELD));
    };
    let Value::Array(items) = value else {
        return Err(ParseError::invalid(FIELD, "not an array"));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(object) => Waypoint::from_object(object.clone())
                .map_err(|err| ParseError::invalid(FIELD, format!("element {index}: {err}"))),
            _ => Err(ParseError::invalid(
                FIELD,
                format!("element {index}: not an object"),
            )),
        })
        .collect()
}

/// `[waypoint, ...]` as canonical objects.
pub(crate) fn list_json(waypoints: &[Waypoint]) -> Value {
    Value::Array(waypoints.iter().map(Waypoint::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use serde_json::json;

    #[test]
    fn beacon_waypoint() {
        let value = json!({
            "_type": "waypoint", "desc": "Office", "lat": "48.1", "lon": 11.5, "rad": 50,
            "tst": 1_600_000_000, "rid": "abc", "uuid": "E2C56DB5-DFFB-48D2-B060-D0F5A71096E0",
            "major": "1", "minor": 2
        });
        let Message::Waypoint(waypoint) = Message::from_value(value.clone()).unwrap() else {
            panic!("not a waypoint");
        };
        assert_eq!(waypoint.lat, 48.1);
        assert_eq!(waypoint.major, Some(1));
        assert_eq!(waypoint.raw, value);
        let mut canonical = value;
        canonical["lat"] = json!(48.1);
        canonical["lon"] = json!(11.5);
        canonical["major"] = json!(1);
        assert_eq!(waypoint.to_json(), canonical);
    }

    #[test]
    fn waypoint_requires_desc_and_position() {
        for (value, field) in [
            (json!({"_type": "waypoint", "lat": 1, "lon": 2}), "desc"),
            (json!({"_type": "waypoint", "desc": "x", "lon": 2}), "lat"),
            (json!({"_type": "waypoint", "desc": "x", "lat": 1}), "lon"),
            (
                json!({"_type": "waypoint", "desc": "x", "lat": 91, "lon": 2}),
                "lat",
            ),
            (
                json!({"_type": "waypoint", "desc": {}, "lat": 1, "lon": 2}),
                "desc",
            ),
        ] {
            assert_eq!(
                Message::from_value(value.clone()).unwrap_err().field(),
                Some(field),
                "{value}"
            );
        }
    }

    #[test]
    fn waypoint_lists() {
        let value = json!({
            "_type": "waypoints", "_creator": "test",
            "waypoints": [
                {"_type": "waypoint", "desc": "Home", "lat": 1, "lon": 2, "rad": 100, "tst": 5},
                {"desc": "Work", "lat": 3, "lon": 4}
            ]
        });
        let Message::Waypoints(list) = Message::from_value(value).unwrap() else {
            panic!("not waypoints");
        };
        assert_eq!(list.creator.as_deref(), Some("test"));
        assert_eq!(list.waypoints.len(), 2);
        assert_eq!(list.waypoints[1].desc, "Work");
        assert_eq!(list.to_json()["waypoints"][1]["_type"], "waypoint");
    }

    #[test]
    fn bad_lists_name_the_element() {
        let missing = json!({"_type": "waypoints"});
        assert_eq!(
            Message::from_value(missing).unwrap_err(),
            ParseError::MissingField("waypoints")
        );
        let not_array = json!({"_type": "waypoints", "waypoints": {}});
        assert_eq!(
            Message::from_value(not_array).unwrap_err().field(),
            Some("waypoints")
        );
        let bad = json!({"_type": "waypoints", "waypoints": [
            {"desc": "ok", "lat": 1, "lon": 2}, {"desc": "bad", "lat": 100, "lon": 2}
        ]});
        let err = Message::from_value(bad).unwrap_err();
        assert_eq!(err.field(), Some("waypoints"));
        assert!(err.to_string().contains("element 1"), "{err}");
        assert!(err.to_string().contains("lat"), "{err}");
    }
}
