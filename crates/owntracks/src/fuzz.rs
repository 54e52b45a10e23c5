//! The check shared by the `owntracks` cargo-fuzz target and the corpus replay test.

use crate::crypto::{decrypt, key_from_passphrase, KEY_LEN, NONCE_LEN};
use crate::error::{CryptoError, ParseError};
use crate::message::{parse, Location, Message, Transition, Waypoint, Waypoints, MAX_TST};
use crate::topic::{check_device_name, parse_topic};
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Debug;

/// Why a payload was refused, as the ingest tells it apart.
#[derive(Debug, PartialEq)]
enum Refused {
    Parse(ParseError),
    Crypto(CryptoError),
    EncryptedTwice,
}

/// Runs `data` through what the ingest does with a payload (MQTT or `/pub`): parse, and for
/// `_type: encrypted` open it with a fixed key and parse the plaintext. Then, with `data` as
/// the *plaintext* of an encrypted payload, checks that sealing changes nothing but the
/// envelope. Every message that parses is checked: ranges of the required fields, `_type`,
/// `to_json` -> `parse` round trips to the same message, and serde round trips.
/// Panics on any violation; refused payloads are expected and fine.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    // The fixtures' passphrase, so the encrypted seeds open.
    let key = key_from_passphrase("fixture passphrase");
    if let Ok(message) = open(data, &key) {
        check_message(&message);
    }
    check_topic(data);
    let plain_result = parse(data);
    let sealed = seal(&key, data);
    assert_eq!(
        decrypt(&key, &sealed).as_deref(),
        Ok(data),
        "decrypt(encrypt(x)) is not x"
    );
    assert_eq!(
        decrypt(&key_from_passphrase("another passphrase"), &sealed),
        Err(CryptoError::Authentication),
        "a wrong key opened the box"
    );
    let envelope = format!(r#"{{"_type":"encrypted","data":"{sealed}"}}"#);
    let expected = match plain_result {
        Ok(Message::Encrypted(_)) => Err(Refused::EncryptedTwice),
        Ok(message) => Ok(message),
        Err(error) => Err(Refused::Parse(error)),
    };
    assert_eq!(
        open(envelope.as_bytes(), &key),
        expected,
        "encryption changed the outcome"
    );
}

/// The ingest's decoding (`tracking::decode` in the server): one level of encryption.
fn open(payload: &[u8], key: &[u8; KEY_LEN]) -> Result<Message, Refused> {
    let message = parse(payload).map_err(Refused::Parse)?;
    let Message::Encrypted(encrypted) = message else {
        return Ok(message);
    };
    let plain = decrypt(key, &encrypted.data).map_err(Refused::Crypto)?;
    match parse(&plain).map_err(Refused::Parse)? {
        Message::Encrypted(_) => Err(Refused::EncryptedTwice),
        inner => Ok(inner),
    }
}

/// Seals `plain` as the apps do, with a fixed nonce so runs are reproducible.
fn seal(key: &[u8; KEY_LEN], plain: &[u8]) -> String {
    let nonce = [7u8; NONCE_LEN];
    let sealed = XSalsa20Poly1305::new(Key::from_slice(key))
        .encrypt(Nonce::from_slice(&nonce), plain)
        .expect("in-memory encryption cannot fail");
    base64::engine::general_purpose::STANDARD.encode([&nonce[..], &sealed].concat())
}

fn check_message(message: &Message) {
    match message {
        Message::Location(location) => {
            check_position(location.lat, location.lon, location.tst);
            let again = reparse(&location.to_json(), |m| match m {
                Message::Location(l) => Some(l),
                _ => None,
            });
            assert_eq!(
                again,
                Location {
                    raw: location.to_json(),
                    ..location.clone()
                }
            );
            serde_round_trip(location);
        }
        Message::Transition(transition) => {
            check_position(transition.lat, transition.lon, transition.tst);
            assert!(["enter", "leave"].contains(&transition.event.as_str()));
            let again = reparse(&transition.to_json(), |m| match m {
                Message::Transition(t) => Some(t),
                _ => None,
            });
            assert_eq!(
                again,
                Transition {
                    raw: transition.to_json(),
                    ..transition.clone()
                }
            );
            serde_round_trip(transition);
        }
        Message::Waypoint(waypoint) => {
            let again = reparse(&waypoint.to_json(), |m| match m {
                Message::Waypoint(w) => Some(w),
                _ => None,
            });
            assert_eq!(without_raw(&again), without_raw(waypoint));
            serde_round_trip(waypoint);
        }
        Message::Waypoints(list) => {
            let again = reparse(&list.to_json(), |m| match m {
                Message::Waypoints(w) => Some(w),
                _ => None,
            });
            let strip =
                |l: &Waypoints| -> Vec<Waypoint> { l.waypoints.iter().map(without_raw).collect() };
            assert_eq!(strip(&again), strip(list));
            assert_eq!(again.creator, list.creator);
            serde_round_trip(list);
        }
        Message::Card(card) => {
            let again = reparse(&card.to_json(), |m| match m {
                Message::Card(c) => Some(c),
                _ => None,
            });
            assert_eq!(
                (&again.name, &again.face, &again.tid),
                (&card.name, &card.face, &card.tid)
            );
            serde_round_trip(card);
        }
        Message::Steps(steps) => serde_round_trip(steps),
        Message::Beacon(beacon) => serde_round_trip(beacon),
        Message::Lwt(lwt) => serde_round_trip(lwt),
        Message::Encrypted(_) => unreachable!("open never returns an encrypted message"),
        _ => {}
    }
    if let Message::Unknown { kind, raw } = message {
        assert_eq!(raw["_type"].as_str(), Some(kind.as_str()));
    }
}

/// `/pub` takes the device from the message's `topic` when no header names it; the input as
/// a whole is tried as a topic too (MQTT topics reach `parse_topic` directly).
fn check_topic(data: &[u8]) {
    let from_json = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.get("topic").and_then(Value::as_str).map(str::to_owned));
    let whole = std::str::from_utf8(data).ok().map(str::to_owned);
    for text in from_json.iter().chain(whole.iter()) {
        let Some(topic) = parse_topic(text) else {
            continue;
        };
        let base = topic.base();
        assert!(
            text.starts_with(&base),
            "{text} does not start with its base {base}"
        );
        let again = parse_topic(&base).expect("a base topic parses");
        assert_eq!(
            (again.user, again.device, again.suffix),
            (topic.user, topic.device, None)
        );
        if check_device_name(topic.device).is_ok() {
            assert!(!topic.device.contains(['/', '+', '#']));
        }
    }
}

fn check_position(lat: f64, lon: f64, tst: i64) {
    assert!((-90.0..=90.0).contains(&lat), "lat {lat}");
    assert!((-180.0..=180.0).contains(&lon), "lon {lon}");
    assert!(tst > 0 && tst < MAX_TST, "tst {tst}");
}

/// Serializes `json` and parses it again, expecting the same kind of message.
fn reparse<T>(json: &Value, pick: impl FnOnce(Message) -> Option<T>) -> T {
    let bytes = serde_json::to_vec(json).expect("a Value serializes");
    let message = parse(&bytes).unwrap_or_else(|e| panic!("to_json output {json} refused: {e}"));
    pick(message).unwrap_or_else(|| panic!("to_json output {json} changed kind"))
}

fn without_raw(waypoint: &Waypoint) -> Waypoint {
    Waypoint {
        raw: Value::Null,
        ..waypoint.clone()
    }
}

fn serde_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&json).expect("deserializes what it serialized");
    assert_eq!(&back, value, "serde round trip changed the value");
}
