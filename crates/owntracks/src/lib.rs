//! The OwnTracks protocol as pure data: topics, JSON messages, commands, payload encryption
//! and provisioning.
//!
//! The broker moves bytes and the store keeps rows; this crate is where mytracks learns what
//! the phones *mean*. It is kept apart, with no I/O and no async, so that every quirk of the
//! apps (numbers sent as strings, iOS-only fields, the secretbox layout) is written down once,
//! tested against fixtures in a table, and shared by the MQTT path, the HTTP endpoint, the
//! importers and the web UI.
//!
//! * [`topic`]: `owntracks/<user>/<device>[/<suffix>]` ([`parse_topic`], [`base_topic`]).
//! * [`message`]: [`parse`] one payload into a [`Message`] (`location`, `transition`, ...),
//!   leniently like the apps; [`Location::to_json`] for republishing.
//! * [`crypto`]: the apps' payload encryption (libsodium `crypto_secretbox`).
//! * [`command`]: `_type: cmd` objects to send to devices.
//! * [`config`]: [`DeviceConfig`], rendered as an `.otrc` object or a QR-code deep link.
//!
//! ```
//! use mytracks_owntracks::{parse, parse_topic, Message, ParseError};
//!
//! let topic = parse_topic("owntracks/jane/phone").unwrap();
//! assert_eq!((topic.user, topic.device, topic.suffix), ("jane", "phone", None));
//!
//! // An old app: numbers as strings.
//! let payload = br#"{"_type":"location","lat":"52.52","lon":13.405,"tst":"1700000000","batt":80}"#;
//! let Ok(Message::Location(location)) = parse(payload) else { panic!() };
//! assert_eq!((location.lat, location.tst, location.batt), (52.52, 1_700_000_000, Some(80)));
//! assert_eq!(location.to_json()["lat"], 52.52);
//!
//! // An empty retained payload clears a contact: the caller's business, so it is told apart.
//! assert_eq!(parse(b""), Err(ParseError::Empty));
//! ```
//!
//! Deliberately not here: sockets, MQTT sessions, HTTP, storage, access control, deciding who
//! may see whose location, and clocks (timestamps come from the payloads; no "now"). Messages
//! are parsed into typed structs only as far as the server computes with them; the rest
//! (`status`, `configuration`, `cmd`, `request`) stays JSON, and every struct keeps the
//! original object in `raw`, so nothing a phone sent is lost to a parser that knows less than
//! the next app version.

#![warn(missing_docs)]

pub mod command;
pub mod config;
pub mod crypto;
mod error;
mod fields;
mod fuzz;
pub mod message;
pub mod topic;

pub use config::{parse_inline_url, DeviceConfig, Mode};
pub use crypto::{decrypt, encrypt, encrypted_message, key_from_passphrase};
pub use error::{CryptoError, InlineUrlError, ParseError};
#[doc(hidden)]
pub use fuzz::fuzz_check;
pub use message::{
    parse, Beacon, Card, Encrypted, Location, Lwt, Message, Steps, Transition, Waypoint, Waypoints,
};
pub use topic::{base_topic, check_device_name, parse_topic, InvalidDeviceName, Topic};
