//! `location` and `transition`: the two messages that carry a position.

use super::{latitude, longitude, raw, timestamp};
use crate::error::ParseError;
use crate::fields::{Fields, Object};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A position fix (`_type: location`).
///
/// Field names are the protocol's; serde uses the protocol's keys too (`t`, `m`, `SSID`, `p`,
/// ...), so a stored `Location` reads like the JSON the phone sent. The wire format is read by
/// [`crate::parse`], which is lenient where serde is not; the derived `Deserialize` is for
/// values this crate serialized itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude in degrees, in [-90, 90].
    pub lat: f64,
    /// Longitude in degrees, in [-180, 180].
    pub lon: f64,
    /// Time of the fix, epoch seconds (not when it was sent: see `created_at`).
    pub tst: i64,
    /// Horizontal accuracy, metres. Apps omit zero values of `acc`, `alt`, `vac`, `vel`, `cog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
    /// Altitude above sea level, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
    /// Vertical accuracy of `alt`, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vac: Option<f64>,
    /// Speed, km/h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vel: Option<f64>,
    /// Course over ground, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cog: Option<f64>,
    /// Battery level, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batt: Option<i64>,
    /// Battery status: 0 unknown, 1 unplugged, 2 charging, 3 full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bs: Option<i64>,
    /// Tracker id: the two characters a map shows for this device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Connectivity: `w` wifi, `m` mobile, `o` offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<String>,
    /// Why the report was sent (`t`): `p` ping, `c` region, `b` beacon, `r` reply to
    /// `reportLocation`, `u` manual, `t` timer, `v` frequent locations. Absent: automatic.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Monitoring mode (`m`): -1 quiet, 0 manual, 1 significant, 2 move.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<i64>,
    /// Names of the regions the device is in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inregions: Vec<String>,
    /// Ids (`rid`) of the regions the device is in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inrids: Vec<String>,
    /// Name of the WLAN the device is on.
    #[serde(rename = "SSID", default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<String>,
    /// Access point the device is on.
    #[serde(rename = "BSSID", default, skip_serializing_if = "Option::is_none")]
    pub bssid: Option<String>,
    /// When the message was built, epoch seconds (differs from `tst` for queued reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// The MQTT topic the app would have used (HTTP mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Point of interest the user named when publishing manually (iOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poi: Option<String>,
    /// Free-form tag the user set (iOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Barometric pressure (`p`), kPa (iOS).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<f64>,
    /// The whole object as received, unknown fields included (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Location {
    /// A location with only the required fields.
    pub fn new(lat: f64, lon: f64, tst: i64) -> Location {
        Location {
            lat,
            lon,
            tst,
            acc: None,
            alt: None,
            vac: None,
            vel: None,
            cog: None,
            batt: None,
            bs: None,
            tid: None,
            conn: None,
            trigger: None,
            monitoring: None,
            inregions: Vec::new(),
            inrids: Vec::new(),
            ssid: None,
            bssid: None,
            created_at: None,
            topic: None,
            poi: None,
            tag: None,
            pressure: None,
            raw: Value::Null,
        }
    }

    pub(crate) fn from_object(object: Map<String, Value>) -> Result<Location, ParseError> {
        let f = Fields(&object);
        let lat = latitude(f)?;
        let lon = longitude(f)?;
        let tst = timestamp("tst", f.i64_required("tst")?)?;
        Ok(Location {
            lat,
            lon,
            tst,
            acc: f.f64("acc"),
            alt: f.f64("alt"),
            vac: f.f64("vac"),
            vel: f.f64("vel"),
            cog: f.f64("cog"),
            batt: f.i64("batt"),
            bs: f.i64("bs"),
            tid: f.string("tid"),
            conn: f.string("conn"),
            trigger: f.string("t"),
            monitoring: f.i64("m"),
            inregions: f.strings("inregions"),
            inrids: f.strings("inrids"),
            ssid: f.string("SSID"),
            bssid: f.string("BSSID"),
            created_at: f.i64("created_at"),
            topic: f.string("topic"),
            poi: f.string("poi"),
            tag: f.string("tag"),
            pressure: f.f64("p"),
            raw: raw(object),
        })
    }

    /// The canonical OwnTracks object for this location, with `_type`, for republishing and
    /// HTTP responses.
    ///
    /// Built from the typed fields only, never from `raw`: what is passed on to other users
    /// is exactly what this crate understood (and validated), not whatever else the sending
    /// device put in. Absent fields are left out; integral values of `acc`, `alt`, ... are
    /// written as integers, as the apps write them.
    pub fn to_json(&self) -> Value {
        let mut o = Object::typed("location");
        o.put("lat", self.lat);
        o.put("lon", self.lon);
        o.put("tst", self.tst);
        o.num("acc", self.acc);
        o.num("alt", self.alt);
        o.num("vac", self.vac);
        o.num("vel", self.vel);
        o.num("cog", self.cog);
        o.opt("batt", self.batt);
        o.opt("bs", self.bs);
        o.opt("tid", self.tid.clone());
        o.opt("conn", self.conn.clone());
        o.opt("t", self.trigger.clone());
        o.opt("m", self.monitoring);
        o.strings("inregions", &self.inregions);
        o.strings("inrids", &self.inrids);
        o.opt("SSID", self.ssid.clone());
        o.opt("BSSID", self.bssid.clone());
        o.opt("created_at", self.created_at);
        o.opt("topic", self.topic.clone());
        o.opt("poi", self.poi.clone());
        o.opt("tag", self.tag.clone());
        o.num("p", self.pressure);
        o.into_value()
    }
}

/// Entering or leaving a region (`_type: transition`, on `/event`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Creation time of the region (its `tst`), which identifies it on older apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wtst: Option<i64>,
    /// When the transition happened, epoch seconds. Taken from `wtst` when `tst` is absent
    /// (very old apps sent only that).
    pub tst: i64,
    /// Latitude where the event fired.
    pub lat: f64,
    /// Longitude where the event fired.
    pub lon: f64,
    /// Accuracy of `lat`/`lon`, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
    /// `enter` or `leave` (lowercased).
    pub event: String,
    /// Name of the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Tracker id of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Region id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// `t`: `c` circular region, `b` beacon, `l` location update (Android).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Transition {
    pub(crate) fn from_object(object: Map<String, Value>) -> Result<Transition, ParseError> {
        let f = Fields(&object);
        let lat = latitude(f)?;
        let lon = longitude(f)?;
        let tst = match (f.get("tst"), f.get("wtst")) {
            (None, Some(_)) => timestamp("wtst", f.i64_required("wtst")?)?,
            _ => timestamp("tst", f.i64_required("tst")?)?,
        };
        let event = f.string_required("event")?.to_ascii_lowercase();
        if event != "enter" && event != "leave" {
            return Err(ParseError::invalid(
                "event",
                format!("{event:?} is neither enter nor leave"),
            ));
        }
        Ok(Transition {
            wtst: f.i64("wtst"),
            tst,
            lat,
            lon,
            acc: f.f64("acc"),
            event,
            desc: f.string("desc"),
            tid: f.string("tid"),
            rid: f.string("rid"),
            trigger: f.string("t"),
            raw: raw(object),
        })
    }

    /// The canonical OwnTracks object, with `_type`, for republishing (friends' `/event`
    /// subscriptions) and HTTP responses. Built from the typed fields only.
    pub fn to_json(&self) -> Value {
        let mut o = Object::typed("transition");
        o.opt("wtst", self.wtst);
        o.put("tst", self.tst);
        o.put("lat", self.lat);
        o.put("lon", self.lon);
        o.num("acc", self.acc);
        o.put("event", self.event.clone());
        o.opt("desc", self.desc.clone());
        o.opt("tid", self.tid.clone());
        o.opt("rid", self.rid.clone());
        o.opt("t", self.trigger.clone());
        o.into_value()
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ParseError;
    use crate::message::{parse, Location, Message, Transition};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn location(value: Value) -> Result<Location, ParseError> {
        match Message::from_value(value)? {
            Message::Location(location) => Ok(location),
            other => panic!("not a location: {other:?}"),
        }
    }

    fn transition(value: Value) -> Result<Transition, ParseError> {
        match Message::from_value(value)? {
            Message::Transition(transition) => Ok(transition),
            other => panic!("not a transition: {other:?}"),
        }
    }

    #[test]
    fn minimal_location() {
        let value = json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": 1_700_000_000});
        let parsed = location(value.clone()).unwrap();
        assert_eq!(
            parsed,
            Location {
                raw: value,
                ..Location::new(52.5, 13.4, 1_700_000_000)
            }
        );
    }

    #[test]
    fn renamed_keys_are_read() {
        let parsed = location(json!({
            "_type": "location", "lat": 1, "lon": 2, "tst": 3, "t": "u", "m": 2,
            "SSID": "home", "BSSID": "aa:bb", "p": 101.3, "ssid": "ignored"
        }))
        .unwrap();
        assert_eq!(parsed.trigger.as_deref(), Some("u"));
        assert_eq!(parsed.monitoring, Some(2));
        assert_eq!(parsed.ssid.as_deref(), Some("home"));
        assert_eq!(parsed.bssid.as_deref(), Some("aa:bb"));
        assert_eq!(parsed.pressure, Some(101.3));
    }

    #[test]
    fn required_fields_are_named() {
        let base = json!({"_type": "location", "lat": 1, "lon": 2, "tst": 3});
        for field in ["lat", "lon", "tst"] {
            let mut missing = base.clone();
            missing.as_object_mut().unwrap().remove(field);
            assert_eq!(location(missing), Err(ParseError::MissingField(field)));
            let mut null = base.clone();
            null[field] = Value::Null;
            assert_eq!(location(null), Err(ParseError::MissingField(field)));
            let mut garbage = base.clone();
            garbage[field] = json!("abc");
            assert_eq!(location(garbage).unwrap_err().field(), Some(field));
            let mut boolean = base.clone();
            boolean[field] = json!(true);
            assert_eq!(location(boolean).unwrap_err().field(), Some(field));
        }
    }

    #[test]
    fn ranges_are_checked() {
        for (field, value, ok) in [
            ("lat", json!(90), true),
            ("lat", json!(-90), true),
            ("lat", json!(90.000001), false),
            ("lat", json!("-91"), false),
            ("lon", json!(180), true),
            ("lon", json!(-180), true),
            ("lon", json!(180.5), false),
            ("tst", json!(1), true),
            ("tst", json!(0), false),
            ("tst", json!(-5), false),
            ("tst", json!(2_199_023_255_551_i64), true),
            ("tst", json!(2_199_023_255_552_i64), false),
            ("tst", json!(1e300), false),
        ] {
            let mut value_json = json!({"_type": "location", "lat": 1, "lon": 2, "tst": 3});
            value_json[field] = value.clone();
            let result = location(value_json);
            if ok {
                assert!(result.is_ok(), "{field} = {value}: {result:?}");
            } else {
                assert!(
                    matches!(&result, Err(ParseError::InvalidField { field: f, .. }) if *f == field),
                    "{field} = {value}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn unusable_optional_fields_are_dropped() {
        let parsed = location(json!({
            "_type": "location", "lat": 1, "lon": 2, "tst": 3,
            "acc": "far", "batt": {}, "tid": ["x"], "inregions": "Home", "created_at": "soon"
        }))
        .unwrap();
        assert_eq!(parsed.acc, None);
        assert_eq!(parsed.batt, None);
        assert_eq!(parsed.tid, None);
        assert_eq!(parsed.created_at, None);
        assert_eq!(parsed.inregions, ["Home"]);
    }

    #[test]
    fn to_json_is_canonical() {
        let mut location = Location::new(52.0, 13.25, 1_700_000_000);
        location.acc = Some(12.0);
        location.vel = Some(3.5);
        location.trigger = Some("p".into());
        location.inregions = vec!["Home".into()];
        location.raw = json!({"secret": "not republished"});
        assert_eq!(
            location.to_json(),
            json!({
                "_type": "location", "lat": 52.0, "lon": 13.25, "tst": 1_700_000_000,
                "acc": 12, "vel": 3.5, "t": "p", "inregions": ["Home"]
            })
        );
        assert_eq!(location.to_json()["acc"].to_string(), "12");
    }

    #[test]
    fn serde_uses_protocol_keys() {
        let mut location = Location::new(1.0, 2.0, 3);
        location.trigger = Some("u".into());
        location.ssid = Some("net".into());
        let value = serde_json::to_value(&location).unwrap();
        assert_eq!(
            value,
            json!({"lat": 1.0, "lon": 2.0, "tst": 3, "t": "u", "SSID": "net"})
        );
        let back: Location = serde_json::from_value(value).unwrap();
        assert_eq!(back, location);
    }

    #[test]
    fn transitions() {
        let value = json!({
            "_type": "transition", "wtst": 1_600_000_000, "tst": 1_700_000_000, "lat": 1,
            "lon": 2, "acc": 10, "event": "Enter", "desc": "Home", "t": "c", "rid": "r1"
        });
        let parsed = transition(value.clone()).unwrap();
        assert_eq!(parsed.event, "enter");
        assert_eq!(parsed.tst, 1_700_000_000);
        assert_eq!(parsed.wtst, Some(1_600_000_000));
        assert_eq!(parsed.trigger.as_deref(), Some("c"));
        assert_eq!(parsed.raw, value);
        assert_eq!(parsed.to_json()["event"], "enter");
        assert_eq!(parsed.to_json()["_type"], "transition");
    }

    #[test]
    fn transition_time_falls_back_to_wtst() {
        let parsed = transition(json!({
            "_type": "transition", "wtst": 1_600_000_000, "lat": 1, "lon": 2, "event": "leave"
        }))
        .unwrap();
        assert_eq!(parsed.tst, 1_600_000_000);
        assert_eq!(
            transition(json!({"_type": "transition", "lat": 1, "lon": 2, "event": "leave"})),
            Err(ParseError::MissingField("tst"))
        );
        assert_eq!(
            transition(json!({
                "_type": "transition", "wtst": 0, "lat": 1, "lon": 2, "event": "leave"
            }))
            .unwrap_err()
            .field(),
            Some("wtst")
        );
    }

    #[test]
    fn transition_events_are_checked() {
        let base = json!({"_type": "transition", "tst": 5, "lat": 1, "lon": 2});
        assert_eq!(
            transition(base.clone()),
            Err(ParseError::MissingField("event"))
        );
        let mut odd = base;
        odd["event"] = json!("dance");
        assert_eq!(transition(odd).unwrap_err().field(), Some("event"));
    }

    fn optional<T: std::fmt::Debug>(
        inner: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Option<T>> {
        proptest::option::of(inner)
    }

    prop_compose! {
        fn any_location()(
            lat in -90.0..=90.0f64,
            lon in -180.0..=180.0f64,
            tst in 1..super::super::MAX_TST,
            floats in proptest::array::uniform5(optional(-1e7..1e7f64)),
            ints in proptest::array::uniform4(optional(any::<i64>())),
            strings in proptest::array::uniform8(optional("\\PC{0,12}")),
            inregions in proptest::collection::vec("\\PC{0,8}", 0..3),
            inrids in proptest::collection::vec("[0-9a-f]{6}", 0..3),
            pressure in optional(any::<f64>().prop_filter("finite", |p| p.is_finite())),
        ) -> Location {
            let [acc, alt, vac, vel, cog] = floats;
            let [batt, bs, monitoring, created_at] = ints;
            let [tid, conn, trigger, ssid, bssid, topic, poi, tag] = strings;
            Location {
                acc, alt, vac, vel, cog, batt, bs, monitoring, created_at,
                tid, conn, trigger, ssid, bssid, topic, poi, tag, inregions, inrids, pressure,
                ..Location::new(lat, lon, tst)
            }
        }
    }

    proptest! {
        #[test]
        fn to_json_then_parse_round_trips(location in any_location()) {
            let json = location.to_json();
            let bytes = serde_json::to_vec(&json).unwrap();
            let Message::Location(parsed) = parse(&bytes).unwrap() else {
                panic!("not a location");
            };
            prop_assert_eq!(&parsed.raw, &json);
            prop_assert_eq!(&parsed, &Location { raw: json.clone(), ..location });
            prop_assert_eq!(parsed.to_json(), json);
        }
    }
}
