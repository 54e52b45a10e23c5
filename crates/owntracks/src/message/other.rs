//! The small messages: `card`, `steps`, `beacon`, `lwt` and `encrypted`.
//!
//! Apart from `encrypted`'s `data`, every field is optional: these messages are stored and
//! shown, never computed with, so a partial one is still worth keeping.

use super::raw;
use crate::error::ParseError;
use crate::fields::{Fields, Object};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A user's display name and picture (`_type: card`, retained on `/info`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Base64 PNG shown instead of the tracker id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<String>,
    /// The tracker id this card belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Card {
    pub(crate) fn from_object(object: Map<String, Value>) -> Card {
        let f = Fields(&object);
        Card {
            name: f.string("name"),
            face: f.string("face"),
            tid: f.string("tid"),
            raw: raw(object),
        }
    }

    /// The canonical OwnTracks object (`_type: card`), for `/info` and HTTP responses.
    pub fn to_json(&self) -> Value {
        let mut o = Object::typed("card");
        o.opt("name", self.name.clone());
        o.opt("face", self.face.clone());
        o.opt("tid", self.tid.clone());
        o.into_value()
    }
}

/// A step count over a period (`_type: steps`, iOS, answer to `reportSteps`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Steps {
    /// When the count was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tst: Option<i64>,
    /// Steps walked; -1 when the device cannot count or the period is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<i64>,
    /// Start of the period actually counted, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// End of the period actually counted, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Steps {
    pub(crate) fn from_object(object: Map<String, Value>) -> Steps {
        let f = Fields(&object);
        Steps {
            tst: f.i64("tst"),
            steps: f.i64("steps"),
            from: f.i64("from"),
            to: f.i64("to"),
            raw: raw(object),
        }
    }
}

/// A ranged BLE beacon (`_type: beacon`, iOS with ranging on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Beacon {
    /// Name of the beacon's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Beacon UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Major number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// Minor number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Received signal strength, dBm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i64>,
    /// Proximity: 0 unknown, 1 immediate, 2 near, 3 far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prox: Option<i64>,
    /// Accuracy of the proximity, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
    /// When the beacon was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tst: Option<i64>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Beacon {
    pub(crate) fn from_object(object: Map<String, Value>) -> Beacon {
        let f = Fields(&object);
        Beacon {
            desc: f.string("desc"),
            uuid: f.string("uuid"),
            major: f.i64("major"),
            minor: f.i64("minor"),
            rssi: f.i64("rssi"),
            prox: f.i64("prox"),
            acc: f.f64("acc"),
            tst: f.i64("tst"),
            raw: raw(object),
        }
    }
}

/// A device's MQTT will (`_type: lwt`): the broker published it because the device vanished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lwt {
    /// When the device connected (the will is built then). Android often omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tst: Option<i64>,
    /// The whole object as received (`Null` when built in code).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Lwt {
    pub(crate) fn from_object(object: Map<String, Value>) -> Lwt {
        Lwt {
            tst: Fields(&object).i64("tst"),
            raw: raw(object),
        }
    }
}

/// An encrypted message (`_type: encrypted`); open it with [`crate::crypto::decrypt`] and
/// parse the plaintext again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Encrypted {
    /// Base64 of nonce || secretbox ciphertext.
    pub data: String,
}

impl Encrypted {
    pub(crate) fn from_object(object: &Map<String, Value>) -> Result<Encrypted, ParseError> {
        match Fields(object).get("data") {
            None => Err(ParseError::MissingField("data")),
            Some(Value::String(data)) => Ok(Encrypted { data: data.clone() }),
            Some(_) => Err(ParseError::invalid("data", "not a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ParseError;
    use crate::message::{Beacon, Card, Encrypted, Lwt, Message, Steps};
    use serde_json::{json, Value};

    fn parse(value: Value) -> Message {
        Message::from_value(value).unwrap()
    }

    #[test]
    fn cards() {
        let value = json!({"_type": "card", "name": "Jane", "face": "iVBOR", "tid": "JJ"});
        let Message::Card(card) = parse(value.clone()) else {
            panic!("not a card")
        };
        assert_eq!(
            card,
            Card {
                name: Some("Jane".into()),
                face: Some("iVBOR".into()),
                tid: Some("JJ".into()),
                raw: value.clone()
            }
        );
        assert_eq!(card.to_json(), value);
    }

    #[test]
    fn steps_beacons_and_wills() {
        let steps = json!({"_type": "steps", "tst": "5", "steps": -1, "from": 1.0, "to": 4});
        assert_eq!(
            parse(steps.clone()),
            Message::Steps(Steps {
                tst: Some(5),
                steps: Some(-1),
                from: Some(1),
                to: Some(4),
                raw: steps
            })
        );
        let beacon = json!({
            "_type": "beacon", "uuid": "U", "major": 1, "minor": 2, "rssi": -60, "prox": 2,
            "acc": 1.5, "tst": 9
        });
        let Message::Beacon(Beacon {
            rssi, acc, desc, ..
        }) = parse(beacon)
        else {
            panic!("not a beacon")
        };
        assert_eq!((rssi, acc, desc), (Some(-60), Some(1.5), None));
        let lwt = json!({"_type": "lwt"});
        assert_eq!(
            parse(lwt.clone()),
            Message::Lwt(Lwt {
                tst: None,
                raw: lwt
            })
        );
    }

    #[test]
    fn encrypted_needs_string_data() {
        assert_eq!(
            parse(json!({"_type": "encrypted", "data": "abc"})),
            Message::Encrypted(Encrypted { data: "abc".into() })
        );
        assert_eq!(
            Message::from_value(json!({"_type": "encrypted"})),
            Err(ParseError::MissingField("data"))
        );
        assert_eq!(
            Message::from_value(json!({"_type": "encrypted", "data": 5}))
                .unwrap_err()
                .field(),
            Some("data")
        );
    }
}
