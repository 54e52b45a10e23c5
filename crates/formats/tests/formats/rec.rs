use crate::{at, read_all};
use mytracks_formats::{
    read_friend_lines, read_friends, read_payload_file, write_rec_line, Entry, Format, Item,
};

/// Lines as the Recorder writes them (`%s\t%-18s\t%s\n`), and hand-made variants.
pub const REC: &str = "2024-03-01T10:00:00Z\t*                 \t{\"_type\":\"location\",\"tid\":\"ph\",\"lat\":52.5,\"lon\":13.4,\"tst\":1709287200}
2024-03-01T10:05:00Z\tevent             \t{\"_type\":\"transition\",\"event\":\"enter\",\"desc\":\"Home\",\"tst\":1709287500,\"lat\":52.5,\"lon\":13.4,\"acc\":10,\"wtst\":1,\"tid\":\"ph\",\"t\":\"c\"}
2024-03-01T10:06:01Z\tlwt               \t{\"_type\":\"lwt\",\"tst\":1709287000}

2024-03-01T10:07:00Z\t*\t{\"_type\":\"location\",\"lat\":1,\"lon\":2,\"tst\":1709287620}\r
2024-03-01T10:08:00Z\tstatus            \tnot json at all
garbage without tabs
2024-13-01T10:08:00Z\t*                 \t{}
2024-03-01T10:09:00Z\tdump              \t{\"_type\":\"waypoints\",\"waypoints\":[]}";

#[test]
fn rec_lines() {
    let read = read_all(Format::Rec, REC).ok();
    let items: Vec<(u64, i64, &str)> = read
        .items
        .iter()
        .map(|(at, item)| match item {
            Item::OwnTracks {
                received_at,
                suffix,
                ..
            } => (at.line, *received_at, suffix.as_str()),
            Item::Point(_) => panic!("a point from a .rec file"),
        })
        .collect();
    assert_eq!(
        items,
        [
            (1, 1_709_287_200, ""),
            (2, 1_709_287_500, "event"),
            (3, 1_709_287_561, "lwt"),
            (5, 1_709_287_620, ""),
            (9, 1_709_287_740, "dump"),
        ]
    );
    let Item::OwnTracks { json, .. } = &read.items[0].1 else {
        panic!()
    };
    assert_eq!(
        json,
        "{\"_type\":\"location\",\"tid\":\"ph\",\"lat\":52.5,\"lon\":13.4,\"tst\":1709287200}"
    );
    let Item::OwnTracks { json, .. } = &read.items[3].1 else {
        panic!()
    };
    assert!(json.ends_with('}'), "the CR is trimmed: {json:?}");
    assert_eq!(
        read.reasons(),
        [
            "payload not a JSON object",
            "not a .rec line (expected three tab-separated columns)",
            "bad time in column 1"
        ]
    );
    assert_eq!(read.problems[0].at.line, 6);
    let offset = REC.find("2024-03-01T10:08:00Z").unwrap() as u64;
    assert_eq!(read.problems[0].at, at(offset, 6));
}

#[test]
fn long_and_binary_lines_are_problems() {
    let long = format!(
        "2024-03-01T10:00:00Z\t*\t{{\"x\":\"{}\"}}\n",
        "a".repeat(1024 * 1024)
    );
    let input = [
        long.as_bytes(),
        b"2024-03-01T10:00:00Z\t*\t{\"\xff\":1}\n",
        REC.as_bytes(),
    ]
    .concat();
    let read = read_all(Format::Rec, input).ok();
    assert_eq!(
        read.reasons()[..2],
        ["line longer than 1 MiB", "line not UTF-8"]
    );
    assert_eq!(read.problems[1].at.line, 2);
    assert_eq!(read.items.len(), 5);
}

#[test]
fn writes_recorder_lines() {
    let mut out = Vec::new();
    write_rec_line(&mut out, 1_709_287_200, "", "{\"_type\":\"location\"}").unwrap();
    write_rec_line(&mut out, 1_709_287_500, "event", "{\"a\":\n\t1}").unwrap();
    write_rec_line(&mut out, 0, "status", "not\njson").unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        text,
        "2024-03-01T10:00:00Z\t*                 \t{\"_type\":\"location\"}\n\
         2024-03-01T10:05:00Z\tevent             \t{\"a\":1}\n\
         1970-01-01T00:00:00Z\tstatus            \tnot json\n"
    );
    assert!(write_rec_line(&mut Vec::new(), i64::MAX, "", "{}").is_err());
    // Read back: what was JSON comes back as written.
    let read = read_all(Format::Rec, out).ok();
    assert_eq!(read.items.len(), 2);
    assert_eq!(read.reasons(), ["payload not a JSON object"]);
}

#[test]
fn payload_files() {
    let entry = read_payload_file(&b"\xEF\xBB\xBF{\n \"_type\": \"location\",\n \"tst\": 1709287200, \"lat\": 1, \"lon\": 2}\n"[..], "").unwrap();
    let Entry::Item(
        _,
        Item::OwnTracks {
            received_at,
            suffix,
            json,
        },
    ) = entry
    else {
        panic!()
    };
    assert_eq!((received_at, suffix.as_str()), (1_709_287_200, ""));
    assert!(!json.contains('\n'), "{json}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["lat"],
        1
    );
    let entry = read_payload_file(
        &br#"{"_type":"card","name":"Alice","face":"AAAA"}"#[..],
        "info",
    )
    .unwrap();
    let Entry::Item(
        _,
        Item::OwnTracks {
            received_at,
            suffix,
            ..
        },
    ) = entry
    else {
        panic!()
    };
    assert_eq!((received_at, suffix.as_str()), (0, "info"));
    assert!(matches!(
        read_payload_file(&b"[1]"[..], ""),
        Ok(Entry::Skipped(_))
    ));
    assert!(matches!(
        read_payload_file(&b"{\"a\":"[..], ""),
        Ok(Entry::Skipped(_))
    ));
}

#[test]
fn friends_file() {
    let input = b"# ocat --load=friends\n\
        alice-phone [\"bob/tablet\", \"carol:phone\", \"alice/other\", \"dave/a-b\"]\n\
        \n\
        bob-tablet [\"alice-phone\",\"bob/x\"]\n\
        alice-ipad [\"bob/tablet\"]\n";
    let pairs = read_friends(&input[..]).unwrap();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("alice", "bob"), ("alice", "carol"), ("bob", "alice")]
    );
    let lines = read_friend_lines(&input[..]).unwrap();
    assert_eq!(lines[0].key, "alice-phone");
    assert_eq!(
        lines[0].friends[1],
        ("carol".to_owned(), "phone".to_owned())
    );
    assert_eq!(lines[1].at.line, 4);
    let e = read_friends(&b"alice-phone [\"bob/tablet\"]\nalice-phone bob\n"[..]).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("line 2") && message.contains("byte 27"),
        "{message}"
    );
    assert!(read_friends(&b"no-value-here\n"[..]).is_err());
}
