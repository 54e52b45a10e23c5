//! The Recorder's `.rec` month files (design 4.3; the Recorder's `RECFORMAT
//! "%s\t%-18s\t%s\n"`): column 1 the time in ISO UTC, column 2 the topic suffix padded to 18
//! (`*` for the base topic), column 3 the payload as one line of JSON. Also the friends file
//! and payload files of a Recorder store, and the line writer for the account export.

use crate::item::{
    rfc3339_seconds, Entry, FormatError, Item, Position, Problem, MAX_ELEMENT_BYTES, MAX_LINE_BYTES,
};
use crate::lines::{Line, Lines};
use std::io::{self, BufRead, Read, Write};

/// Reads a `.rec` file line by line (see [`crate::read`]).
pub(crate) struct RecReader<R> {
    lines: Lines<R>,
    done: bool,
}

impl<R: BufRead> RecReader<R> {
    pub(crate) fn new(input: R) -> RecReader<R> {
        RecReader {
            lines: Lines::new(input, MAX_LINE_BYTES),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for RecReader<R> {
    type Item = Result<Entry, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.lines.next_line() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(FormatError::Io(e)));
                }
                Ok(None) => self.done = true,
                Ok(Some(Line::TooLong(at))) => {
                    return Some(Ok(Entry::Skipped(Problem::new(
                        at,
                        "line longer than 1 MiB",
                    ))))
                }
                Ok(Some(Line::Text(at, text))) => {
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok(rec_line(at, text)));
                }
            }
        }
        None
    }
}

/// One non-empty `.rec` line as an item or a problem.
fn rec_line(at: Position, text: &[u8]) -> Entry {
    let Ok(text) = std::str::from_utf8(text) else {
        return Entry::Skipped(Problem::new(at, "line not UTF-8"));
    };
    let mut columns = text.splitn(3, '\t');
    let (Some(time), Some(suffix), Some(json)) = (columns.next(), columns.next(), columns.next())
    else {
        return Entry::Skipped(Problem::new(
            at,
            "not a .rec line (expected three tab-separated columns)",
        ));
    };
    let Some(received_at) = rec_time(time) else {
        return Entry::Skipped(Problem::new(at, "bad time in column 1"));
    };
    let suffix = match suffix.trim() {
        "*" => "",
        other => other,
    };
    let json = json.trim();
    if !json.starts_with('{') || serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
        return Entry::Skipped(Problem::new(at, "payload not a JSON object"));
    }
    Entry::Item(
        at,
        Item::OwnTracks {
            received_at,
            suffix: suffix.to_owned(),
            json: json.to_owned(),
        },
    )
}

/// Column 1: `YYYY-MM-DDTHH:MM:SSZ` (the Recorder's `isotime`); any RFC 3339 time is taken.
fn rec_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() < 10 || !text.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    rfc3339_seconds(text)
}

/// See [`crate::write_rec_line`].
pub(crate) fn write_rec_line(
    out: &mut impl Write,
    received_at: i64,
    suffix: &str,
    json: &str,
) -> io::Result<()> {
    let time = time::OffsetDateTime::from_unix_timestamp(received_at)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "time out of range"))?;
    let suffix = match suffix.trim() {
        "" => "*",
        s => s,
    };
    let suffix: String = suffix
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let json = one_line(json);
    writeln!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\t{:<18}\t{}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        suffix,
        json
    )
}

/// `json` on one line: re-serialised compactly if it spans lines or holds a tab (as the
/// Recorder does), else as it is; text that is not JSON gets its line breaks and tabs
/// replaced by spaces.
fn one_line(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains(['\n', '\r', '\t']) {
        return json.into();
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(value) => value.to_string().into(),
        Err(_) => json.replace(['\n', '\r', '\t'], " ").into(),
    }
}

/// See [`crate::read_payload_file`].
pub(crate) fn read_payload_file<R: Read>(input: R, suffix: &str) -> Result<Entry, FormatError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_ELEMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_ELEMENT_BYTES {
        return Err(FormatError::TooLarge {
            at: Position::START,
            limit: MAX_ELEMENT_BYTES,
        });
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(value @ serde_json::Value::Object(_)) => value,
        _ => {
            return Ok(Entry::Skipped(Problem::new(
                Position::START,
                "not a JSON object",
            )))
        }
    };
    let received_at = match value.get("tst") {
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .unwrap_or(0);
    let text = std::str::from_utf8(text).map_err(|_| FormatError::Syntax {
        at: Position::START,
        reason: "not UTF-8".into(),
    })?;
    Ok(Entry::Item(
        Position::START,
        Item::OwnTracks {
            received_at,
            suffix: suffix.to_owned(),
            json: one_line(text.trim()).into_owned(),
        },
    ))
}

/// One line of a Recorder `friends` file: the key (`user-device`) and the friends it lists
/// as (user, device) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendLine {
    pub at: Position,
    pub key: String,
    pub friends: Vec<(String, String)>,
}

/// The most lines a friends file may have (it is a hand-made configuration file).
const MAX_FRIEND_LINES: usize = 100_000;

/// See [`crate::read_friend_lines`].
pub(crate) fn read_friend_lines<R: BufRead>(input: R) -> Result<Vec<FriendLine>, FormatError> {
    let mut lines = Lines::new(input, MAX_LINE_BYTES);
    let mut out = Vec::new();
    while let Some(line) = lines.next_line()? {
        let (at, text) = match line {
            Line::TooLong(at) => {
                return Err(FormatError::TooLarge {
                    at,
                    limit: MAX_LINE_BYTES,
                })
            }
            Line::Text(at, text) => (at, text),
        };
        let syntax = |reason: &str| FormatError::Syntax {
            at,
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(text).map_err(|_| syntax("line not UTF-8"))?;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if out.len() >= MAX_FRIEND_LINES {
            return Err(syntax("more than 100,000 lines"));
        }
        let (key, value) = text
            .split_once([' ', '\t'])
            .ok_or_else(|| syntax("expected `user-device [\"user/device\", ...]`"))?;
        let listed: Vec<String> = serde_json::from_str(value.trim())
            .map_err(|_| syntax("the friends are not a JSON array of strings"))?;
        let friends = listed
            .iter()
            .filter_map(|f| {
                // As the Recorder: exactly two non-empty parts, else the entry is ignored.
                let mut parts = f.split(['/', ':', '-']).filter(|p| !p.is_empty());
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(user), Some(device), None) => Some((user.to_owned(), device.to_owned())),
                    _ => None,
                }
            })
            .collect();
        out.push(FriendLine {
            at,
            key: key.to_owned(),
            friends,
        });
    }
    Ok(out)
}

/// See [`crate::read_friends`].
pub(crate) fn read_friends<R: BufRead>(input: R) -> Result<Vec<(String, String)>, FormatError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in read_friend_lines(input)? {
        let user = line
            .key
            .split_once('-')
            .map_or(line.key.as_str(), |(u, _)| u);
        for (friend, _) in &line.friends {
            let pair = (user.to_owned(), friend.clone());
            if *friend != user && seen.insert(pair.clone()) {
                pairs.push(pair);
            }
        }
    }
    Ok(pairs)
}
