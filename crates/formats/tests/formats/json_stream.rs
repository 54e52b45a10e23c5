use mytracks_formats::json_stream::JsonStream;
use mytracks_formats::{FormatError, MAX_ELEMENT_BYTES};
use proptest::prelude::*;
use std::io::{BufReader, Read};

/// (member, index, offset, line, text) of one element.
type Split = (String, u64, u64, u64, String);

/// Elements of `members` (or of a top-level array) as (member, index, offset, line, text).
fn split(input: &[u8], members: &'static [&'static str]) -> Result<Vec<Split>, FormatError> {
    let mut stream = JsonStream::new(BufReader::with_capacity(7, input), members);
    let mut out = Vec::new();
    while let Some(e) = stream.next_element()? {
        out.push((
            e.member.to_owned(),
            e.index,
            e.at.offset,
            e.at.line,
            String::from_utf8(e.bytes.to_vec()).unwrap(),
        ));
    }
    Ok(out)
}

#[test]
fn members_are_streamed_and_others_skipped() {
    let input = br#"{"skip": {"locations": [1, "]"], "x": "\"}"},
 "locations" : [ {"a": 1},
  {"b": "]}\\"} ,3, "s", [[]] ],
 "after": null}"#;
    let got = split(input, &["locations"]).unwrap();
    let texts: Vec<&str> = got.iter().map(|e| e.4.as_str()).collect();
    assert_eq!(
        texts,
        [r#"{"a": 1}"#, r#"{"b": "]}\\"}"#, "3", "\"s\"", "[[]]"]
    );
    assert_eq!((got[0].1, got[0].3), (0, 2));
    assert_eq!((got[1].1, got[1].3), (1, 3));
    assert_eq!(&input[got[1].2 as usize..][..4], br#"{"b""#);
    assert!(got.iter().all(|e| e.0 == "locations"));
}

#[test]
fn several_members_and_top_level_arrays() {
    let input = br#"{"rawSignals":[{"r":1}],"userLocationProfile":{},"semanticSegments":[{"s":1},{"s":2}]}"#;
    let got = split(input, &["semanticSegments", "rawSignals"]).unwrap();
    let names: Vec<(&str, u64)> = got.iter().map(|e| (e.0.as_str(), e.1)).collect();
    assert_eq!(
        names,
        [
            ("rawSignals", 0),
            ("semanticSegments", 0),
            ("semanticSegments", 1)
        ]
    );
    let got = split(b"\xEF\xBB\xBF [ {\"x\":1} , {}\n]\n", &["locations"]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0, "");
    assert!(split(b"[]", &[]).unwrap().is_empty());
    assert!(split(b"{}", &["locations"]).unwrap().is_empty());
    // A member that is not an array is skipped.
    assert!(split(br#"{"locations": null}"#, &["locations"])
        .unwrap()
        .is_empty());
}

#[test]
fn whole_document_when_no_member() {
    let input = br#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}"#;
    let mut stream = JsonStream::new(&input[..], &["features"]).whole_document();
    let e = stream.next_element().unwrap().unwrap();
    assert_eq!(e.bytes, &input[..]);
    assert_eq!(e.member, "");
    assert!(stream.next_element().unwrap().is_none());
    let input = br#"{"type":"FeatureCollection","features":[{"f":1}]}"#;
    let mut stream = JsonStream::new(&input[..], &["features"]).whole_document();
    assert_eq!(stream.next_element().unwrap().unwrap().bytes, br#"{"f":1}"#);
    assert!(stream.next_element().unwrap().is_none());
}

#[test]
fn truncation_names_offset_and_line() {
    let input = b"{\"locations\":[\n{\"a\":1},\n{\"b\":";
    let e = split(input, &["locations"]).unwrap_err();
    let FormatError::Truncated { at, context } = &e else {
        panic!("{e}")
    };
    assert_eq!((at.offset, at.line), (input.len() as u64, 3));
    assert!(context.contains("locations[1]"), "{context}");
    let message = e.to_string();
    assert!(
        message.contains(&format!("byte {}", input.len())) && message.contains("line 3"),
        "{message}"
    );
    for input in [
        &b"{\"locations\":[{\"a\":1}"[..],
        b"{\"locations\":[",
        b"[1,",
        b"{",
        b"{\"x\":",
        b"",
    ] {
        assert!(
            matches!(
                split(input, &["locations"]),
                Err(FormatError::Truncated { .. })
            ),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    for input in [
        &b"{\"locations\":[1,]}"[..],
        b"{\"a\" 1}",
        b"{} x",
        b"5",
        b"{\"a\":1 \"b\":2}",
    ] {
        assert!(
            matches!(
                split(input, &["locations"]),
                Err(FormatError::Syntax { .. })
            ),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn element_limit() {
    let big = format!("{{\"locations\":[{{\"x\":\"{}\"}}, 1]}}", "a".repeat(200));
    let mut stream = JsonStream::new(big.as_bytes(), &["locations"]).with_limit(100);
    let e = stream.next_element().unwrap_err();
    assert!(matches!(e, FormatError::TooLarge { limit: 100, .. }), "{e}");
    // Skipped members are not held, whatever their size.
    let big = format!("{{\"other\":\"{}\",\"locations\":[1]}}", "a".repeat(200));
    let mut stream = JsonStream::new(big.as_bytes(), &["locations"]).with_limit(100);
    assert_eq!(stream.next_element().unwrap().unwrap().bytes, b"1");
    assert_eq!(MAX_ELEMENT_BYTES, 16 * 1024 * 1024);
}

/// A reader producing `{"other":[...],"locations":[...]}` of `count` elements on the fly.
struct Generated {
    count: usize,
    produced: usize,
    pending: Vec<u8>,
    state: u8,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            match self.state {
                0 => {
                    self.pending.extend_from_slice(b"{\"other\":[");
                    self.state = 1;
                }
                1 | 2 if self.produced < self.count => {
                    let key = if self.state == 1 {
                        "skip"
                    } else {
                        "latitudeE7"
                    };
                    let sep = if self.produced == 0 { "" } else { ",\n" };
                    self.pending.extend_from_slice(
                        format!(
                            "{sep}{{\"{key}\":{},\"timestamp\":\"2024-01-01T00:00:00Z\"}}",
                            self.produced
                        )
                        .as_bytes(),
                    );
                    self.produced += 1;
                }
                1 => {
                    self.pending.extend_from_slice(b"],\"locations\":[");
                    self.produced = 0;
                    self.state = 2;
                }
                2 => {
                    self.pending.extend_from_slice(b"]}");
                    self.state = 3;
                }
                _ => return Ok(0),
            }
        }
        let n = self.pending.len().min(out.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn memory_does_not_grow_with_the_input() {
    let count = 100_000; // about 5.5 MB each for `other` and `locations`
    let input = BufReader::with_capacity(
        64 * 1024,
        Generated {
            count,
            produced: 0,
            pending: Vec::new(),
            state: 0,
        },
    );
    let mut stream = JsonStream::new(input, &["locations"]);
    let mut seen = 0;
    let mut max_capacity = 0;
    while let Some(e) = stream.next_element().unwrap() {
        assert!(e.bytes.starts_with(b"{\"latitudeE7\":"));
        seen += 1;
        max_capacity = max_capacity.max(stream.buffer_capacity());
    }
    assert_eq!(seen, count);
    assert!(
        stream.position().offset > 10_000_000,
        "{}",
        stream.position()
    );
    assert!(
        max_capacity < 1024,
        "the element buffer grew to {max_capacity} bytes"
    );
}

proptest! {
    /// Splitting any JSON array gives serde's own elements.
    #[test]
    fn split_equals_serde(value in arb_json()) {
        let array = serde_json::Value::Array(value);
        for text in [array.to_string(), serde_json::to_string_pretty(&array).unwrap()] {
            let wrapped = format!("{{\"a\":{{\"locations\":1}},\"locations\":{text}}}");
            let got = split(wrapped.as_bytes(), &["locations"]).unwrap();
            let parsed: Vec<serde_json::Value> =
                got.iter().map(|e| serde_json::from_str(&e.4).unwrap()).collect();
            prop_assert_eq!(serde_json::Value::Array(parsed), array.clone());
            let got = split(text.as_bytes(), &[]).unwrap();
            prop_assert_eq!(got.len(), array.as_array().unwrap().len());
        }
    }

    /// Any truncation of a valid document is an error naming an offset (never a panic, never
    /// a silent end).
    #[test]
    fn truncation_is_an_error(value in arb_json(), cut in 0.0f64..1.0) {
        let text = format!("{{\"locations\":{}}}", serde_json::Value::Array(value));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cut = ((text.len() - 1) as f64 * cut) as usize;
        match split(&text.as_bytes()[..cut], &["locations"]) {
            Err(FormatError::Truncated { at, .. }) => prop_assert!(at.offset <= cut as u64),
            other => prop_assert!(false, "cut at {}: {:?}", cut, other.map(|v| v.len())),
        }
    }
}

fn arb_json() -> impl Strategy<Value = Vec<serde_json::Value>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z\\]\\[{}\"\\\\ ,:\n]{0,8}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z\"]{0,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::vec(value, 0..6)
}
