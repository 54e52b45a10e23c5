//! The account as an OwnTracks Recorder store (the Recorder's doc/STORE.md layout), so that
//! `mytracks import recorder` or a Recorder reads it back:
//!
//! - `rec/<user>/<device>/YYYY-MM.rec`: one line per location (`*`), transition (`event`)
//!   and kept message (`status`, `step`, `beacon`, `dump`, ...), in time order, written by
//!   [`write_rec_line`]: column 1 is the payload's `tst` for locations and transitions, the
//!   time received otherwise; column 3 the payload as stored.
//! - `last/<user>/<device>/<user>-<device>.json`: the last location with `topic`, `username`,
//!   `device`, as the Recorder keeps it.
//! - `cards/<user>/<user>.json`: the card; `waypoints/<user>/<device>/<user>-<device>.otrw`:
//!   the regions as a `waypoints` message.
//!
//! The months of a device come from merging three keyset-paged streams (locations,
//! transitions, messages) by time: one page of each in memory, one archive entry per month.

use super::{message_payload, path_component, ExportDevice, ExportError, Exporter, CHUNK};
use mytracks_formats::write_rec_line;
use mytracks_store::{Store, User, EXPORT_PAGE};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{Seek, Write};
use tokio::runtime::Handle;

/// Writes the Recorder store of `user`'s `devices` into the export.
pub(super) fn write<W: Write + Seek>(
    ex: &mut Exporter<W>,
    user: &User,
    devices: &[ExportDevice],
) -> Result<(), ExportError> {
    let u = path_component(&user.username);
    for device in devices {
        let d = &device.file;
        if let Some(raw) = months(ex, &u, device)? {
            let last = last_payload(&raw, &user.username, &device.device.name);
            ex.start(&format!("last/{u}/{d}/{u}-{d}.json"))?
                .write_all(last.as_bytes())?;
        }
        let regions = ex.wait(ex.store.waypoint_payloads(device.device.id))?;
        if !regions.is_empty() {
            let regions: Vec<Value> = regions
                .iter()
                .filter_map(|raw| serde_json::from_str(raw).ok())
                .collect();
            let otrw = serde_json::json!({"_type": "waypoints", "waypoints": regions});
            ex.start(&format!("waypoints/{u}/{d}/{u}-{d}.otrw"))?
                .write_all(otrw.to_string().as_bytes())?;
        }
    }
    if let Some(card) = ex.wait(ex.store.cards(&[user.id]))?.into_iter().next() {
        ex.start(&format!("cards/{u}/{u}.json"))?
            .write_all(card.raw.as_bytes())?;
    }
    Ok(())
}

/// The `.rec` months of one device; returns the payload of its last location (by `tst`,
/// then id), if it has any.
fn months<W: Write + Seek>(
    ex: &mut Exporter<W>,
    u: &str,
    device: &ExportDevice,
) -> Result<Option<String>, ExportError> {
    let id = device.device.id;
    let mut sources = [
        Source::new(Kind::Locations, id, ex),
        Source::new(Kind::Transitions, id, ex),
        Source::new(Kind::Messages, id, ex),
    ];
    let mut month: Option<(i32, u8)> = None;
    let mut last_location = None;
    let mut lines: Vec<u8> = Vec::with_capacity(2 * CHUNK);
    loop {
        let mut next: Option<(usize, i64)> = None;
        for (index, source) in sources.iter_mut().enumerate() {
            if let Some(time) = source.peek_time()? {
                if next.is_none_or(|(_, best)| time < best) {
                    next = Some((index, time));
                }
            }
        }
        let Some((index, _)) = next else { break };
        let Some(line) = sources[index].buffer.pop_front() else {
            break;
        };
        let Some(this_month) = year_month(line.time) else {
            continue; // beyond what a file name can hold (years 0 to 9999)
        };
        if month != Some(this_month) {
            ex.zip.write_all(&lines)?;
            lines.clear();
            let (year, number) = this_month;
            ex.start(&format!(
                "rec/{u}/{}/{year:04}-{number:02}.rec",
                device.file
            ))?;
            month = Some(this_month);
        }
        write_rec_line(&mut lines, line.time, &line.suffix, &line.json)?;
        if lines.len() >= CHUNK {
            ex.zip.write_all(&lines)?;
            lines.clear();
        }
        if line.location {
            last_location = Some(line.json);
        }
    }
    ex.zip.write_all(&lines)?;
    Ok(last_location)
}

/// The last location's payload as the Recorder's `last/` file holds it: with the topic, the
/// user and the device added (when the payload is a JSON object).
fn last_payload(raw: &str, user: &str, device: &str) -> String {
    let Ok(Value::Object(mut members)) = serde_json::from_str::<Value>(raw) else {
        return raw.to_owned();
    };
    let mut add = |name: &str, value: String| {
        members.entry(name).or_insert(Value::String(value));
    };
    add("topic", mytracks_owntracks::topic::base_topic(user, device));
    add("username", user.to_owned());
    add("device", device.to_owned());
    Value::Object(Map::from_iter(members)).to_string()
}

/// The UTC (year, month) of Unix second `t`; `None` outside the years 0 to 9999.
fn year_month(t: i64) -> Option<(i32, u8)> {
    let at = time::OffsetDateTime::from_unix_timestamp(t).ok()?;
    (0..=9999)
        .contains(&at.year())
        .then(|| (at.year(), u8::from(at.month())))
}

/// The `.rec` topic suffix of a kept message of `kind` (its `_type`): the suffix the apps
/// publish it on; an unknown kind as itself, reduced to letters, digits, `_` and `-`.
fn suffix_of(kind: &str) -> Cow<'static, str> {
    match kind {
        "status" => "status".into(),
        "steps" => "step".into(),
        "beacon" => "beacon".into(),
        "configuration" => "dump".into(),
        "request" => "request".into(),
        other => {
            let cleaned: String = other
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                .take(32)
                .collect();
            match cleaned.is_empty() {
                true => "-".into(),
                false => cleaned.into(),
            }
        }
    }
}

/// One `.rec` line to be written.
struct Line {
    time: i64,
    id: i64,
    suffix: Cow<'static, str>,
    json: String,
    location: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Locations,
    Transitions,
    Messages,
}

/// One keyset-paged stream of lines, in time order.
struct Source {
    kind: Kind,
    device_id: i64,
    rt: Handle,
    store: Store,
    after: Option<(i64, i64)>,
    buffer: VecDeque<Line>,
    exhausted: bool,
}

impl Source {
    fn new<W: Write + Seek>(kind: Kind, device_id: i64, ex: &Exporter<W>) -> Source {
        Source {
            kind,
            device_id,
            rt: ex.rt.clone(),
            store: ex.store.clone(),
            after: None,
            buffer: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The time of the next line, reading a page when the buffer is empty.
    fn peek_time(&mut self) -> Result<Option<i64>, ExportError> {
        if self.buffer.is_empty() && !self.exhausted {
            let page = self.page()?;
            self.exhausted = page.len() < EXPORT_PAGE as usize;
            if let Some(last) = page.last() {
                self.after = Some((last.time, last.id));
            }
            self.buffer.extend(page);
        }
        Ok(self.buffer.front().map(|line| line.time))
    }

    fn page(&self) -> Result<Vec<Line>, ExportError> {
        let (store, id, after) = (&self.store, self.device_id, self.after);
        Ok(match self.kind {
            Kind::Locations => self
                .rt
                .block_on(store.location_export_page(id, after, EXPORT_PAGE))?
                .into_iter()
                .map(|l| Line {
                    time: l.row.tst,
                    id: l.row.id,
                    suffix: "".into(),
                    json: l.raw,
                    location: true,
                })
                .collect(),
            Kind::Transitions => self
                .rt
                .block_on(store.transition_export_page(id, after, EXPORT_PAGE))?
                .into_iter()
                .map(|t| Line {
                    time: t.row.tst,
                    id: t.row.id,
                    suffix: "event".into(),
                    json: t.raw,
                    location: false,
                })
                .collect(),
            Kind::Messages => self
                .rt
                .block_on(store.message_export_page(id, after, EXPORT_PAGE))?
                .into_iter()
                .map(|m| Line {
                    time: m.received_at,
                    id: m.id,
                    json: message_payload(&m.kind, &m.raw),
                    suffix: suffix_of(&m.kind),
                    location: false,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_the_apps_topics() {
        assert_eq!(suffix_of("steps"), "step");
        assert_eq!(suffix_of("configuration"), "dump");
        assert_eq!(suffix_of("x\ty z"), "xyz");
        assert_eq!(suffix_of("\t"), "-");
    }

    #[test]
    fn months_and_last_files() {
        assert_eq!(year_month(1_709_251_199), Some((2024, 2)));
        assert_eq!(year_month(1_709_251_200), Some((2024, 3)));
        assert_eq!(year_month(i64::MAX), None);
        let last: Value =
            serde_json::from_str(&last_payload(r#"{"_type":"location","tst":1}"#, "al", "ph"))
                .unwrap();
        assert_eq!(last["topic"], "owntracks/al/ph");
        assert_eq!(last["username"], "al");
        assert_eq!(last["device"], "ph");
        assert_eq!(last_payload("not json", "a", "b"), "not json");
    }
}
