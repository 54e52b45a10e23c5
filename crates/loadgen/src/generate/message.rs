//! What the simulated devices send, as the apps send it: the `mytracks-owntracks` message
//! rendered to its JSON payload, and where under the device's topic it goes.

use mytracks_owntracks::Message;
use serde_json::json;

/// A message as a device sends it.
pub trait Outgoing {
    /// An `lwt`: the device's last word.
    fn is_lwt(&self) -> bool;

    /// Where the apps publish it under the device's base topic, and whether retained.
    fn topic_suffix(&self) -> (&'static str, bool);

    /// The JSON payload; HTTP mode adds the `topic` the message would have over MQTT.
    fn json(&self, topic: Option<&str>) -> String;
}

impl Outgoing for Message {
    fn is_lwt(&self) -> bool {
        matches!(self, Message::Lwt(_))
    }

    fn topic_suffix(&self) -> (&'static str, bool) {
        match self {
            Message::Location(_) => ("", true),
            Message::Transition(_) => ("/event", false),
            _ => ("", false),
        }
    }

    fn json(&self, topic: Option<&str>) -> String {
        let mut value = match self {
            Message::Location(location) => location.to_json(),
            Message::Transition(transition) => transition.to_json(),
            Message::Lwt(lwt) => match lwt.tst {
                Some(tst) => json!({ "_type": "lwt", "tst": tst }),
                None => json!({ "_type": "lwt" }),
            },
            // The simulation sends nothing else.
            other => json!({ "_type": other.kind() }),
        };
        if let Some(topic) = topic {
            value["topic"] = json!(topic);
        }
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::sim::Simulation;
    use mytracks_owntracks::Transition;

    #[test]
    fn messages_as_owntracks_json() {
        let mut simulation = Simulation::new(4, 1, (52.52, 13.405), 1_700_000_000);
        let device = &mut simulation.devices[0];
        let messages = device.step(1.0, 1_800_000_000);
        let location = messages.last().unwrap();
        let value: serde_json::Value = serde_json::from_str(&location.json(None)).unwrap();
        assert_eq!(value["_type"], "location");
        for field in [
            "lat", "lon", "tst", "acc", "alt", "vel", "cog", "batt", "bs", "tid", "conn", "t",
        ] {
            assert!(!value[field].is_null(), "{field} missing: {value}");
        }
        assert_eq!(value["tst"], 1_800_000_000);
        assert_eq!(value["tid"], "s1");
        assert!(value.get("topic").is_none());
        assert_eq!(location.topic_suffix(), ("", true));
        let value: serde_json::Value =
            serde_json::from_str(&location.json(Some("owntracks/alice/sim-1"))).unwrap();
        assert_eq!(value["topic"], "owntracks/alice/sim-1");

        let transition = Message::Transition(Transition {
            event: "leave".into(),
            desc: Some("Home".into()),
            rid: Some("0a1b2c".into()),
            wtst: Some(1),
            tst: 2,
            lat: 52.5,
            lon: 13.4,
            acc: Some(7.0),
            tid: Some("s1".into()),
            trigger: Some("c".into()),
            raw: serde_json::Value::Null,
        });
        let value: serde_json::Value = serde_json::from_str(&transition.json(None)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"_type": "transition", "event": "leave", "desc": "Home",
                "rid": "0a1b2c", "wtst": 1, "tst": 2, "lat": 52.5, "lon": 13.4, "acc": 7,
                "tid": "s1", "t": "c"})
        );
        // The same bytes the generator sent before it used these types: keys sorted, integral
        // numbers as integers.
        assert_eq!(
            transition.json(None),
            r#"{"_type":"transition","acc":7,"desc":"Home","event":"leave","lat":52.5,"lon":13.4,"rid":"0a1b2c","t":"c","tid":"s1","tst":2,"wtst":1}"#
        );
        assert_eq!(transition.topic_suffix(), ("/event", false));

        let lwt = device.lwt(3);
        assert!(lwt.is_lwt());
        assert_eq!(lwt.json(None), r#"{"_type":"lwt","tst":3}"#);
        assert_eq!(lwt.topic_suffix(), ("", false));
    }
}
