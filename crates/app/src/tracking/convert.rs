//! From OwnTracks messages (the protocol crate) to store records and feed payloads.

use mytracks_owntracks::{Message, Waypoint};
use mytracks_store::{NewCard, NewLocation, NewTransition, NewWaypoint, Record};

/// What to store for a message, and what the live feed shows of it (`None`: nothing).
pub struct Converted {
    pub record: Option<Record>,
    /// (`location` | `transition` | `waypoint`, JSON) for the feed.
    pub feed: Option<(&'static str, serde_json::Value)>,
}

/// Converts a parsed message; `raw` is its JSON text as received (after decryption).
pub fn convert(message: Message, raw: &str) -> Converted {
    let raw = raw.to_owned();
    match message {
        Message::Location(l) => {
            let feed = l.to_json();
            Converted {
                record: Some(Record::Location(NewLocation {
                    tst: l.tst,
                    lat: l.lat,
                    lon: l.lon,
                    acc: l.acc,
                    alt: l.alt,
                    vac: l.vac,
                    vel: l.vel,
                    cog: l.cog,
                    batt: l.batt,
                    bs: l.bs,
                    tid: l.tid,
                    conn: l.conn,
                    trigger: l.trigger,
                    raw,
                })),
                feed: Some(("location", feed)),
            }
        }
        Message::Transition(t) => {
            let feed = t.to_json();
            Converted {
                record: Some(Record::Transition(NewTransition {
                    tst: t.tst,
                    wtst: t.wtst,
                    lat: t.lat,
                    lon: t.lon,
                    acc: t.acc,
                    event: t.event,
                    description: t.desc,
                    tid: t.tid,
                    rid: t.rid,
                    trigger: t.trigger,
                    raw,
                })),
                feed: Some(("transition", feed)),
            }
        }
        // A region set on the phone: on the feed for those who may see its history.
        Message::Waypoint(w) => Converted {
            record: Some(Record::Waypoint(waypoint(&w))),
            feed: Some(("waypoint", w.to_json())),
        },
        Message::Waypoints(all) => stored(Record::Waypoints(
            all.waypoints.iter().map(waypoint).collect(),
        )),
        Message::Card(c) => stored(Record::Card(NewCard {
            name: c.name,
            face: c.face,
            tid: c.tid,
            raw,
        })),
        Message::Lwt(_) => stored(Record::Offline),
        // Commands travel to devices; they are not device data.
        Message::Cmd(_) => Converted {
            record: None,
            feed: None,
        },
        other => {
            let kind = other.kind().to_owned();
            stored(Record::Message { kind, raw })
        }
    }
}

fn stored(record: Record) -> Converted {
    Converted {
        record: Some(record),
        feed: None,
    }
}

fn waypoint(w: &Waypoint) -> NewWaypoint {
    NewWaypoint {
        rid: w.rid.clone(),
        description: w.desc.clone(),
        lat: w.lat,
        lon: w.lon,
        rad: w.rad,
        tst: w.tst,
        uuid: w.uuid.clone(),
        major: w.major,
        minor: w.minor,
        raw: w.raw.to_string(),
    }
}
