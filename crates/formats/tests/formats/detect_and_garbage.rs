use crate::{read_all, Read};
use mytracks_formats::{detect, Format, FormatError, CSV_HEADER};
use proptest::prelude::*;

fn csv_fixture() -> String {
    format!("{CSV_HEADER}\nalice,phone,1709287200,2024-03-01T10:00:00Z,52.5,13.4,5,34.5,12,90,80,\"p,h\"\n")
}

fn fixtures() -> Vec<(Format, String)> {
    vec![
        (Format::Rec, crate::rec::REC.to_owned()),
        (Format::Gpx, crate::gpx::GPX_11.to_owned()),
        (Format::GeoJson, crate::geojson::COLLECTION.to_owned()),
        (Format::Csv, csv_fixture()),
        (Format::TakeoutRecords, crate::takeout::RECORDS.to_owned()),
        (Format::TakeoutSemantic, crate::takeout::SEMANTIC.to_owned()),
        (Format::TakeoutTimeline, crate::takeout::ANDROID.to_owned()),
    ]
}

#[test]
fn detects_each_fixture() {
    for (format, text) in fixtures() {
        assert_eq!(detect(text.as_bytes()).unwrap(), format, "{format}");
        // The first 64 KiB of a longer file: cut anywhere after the deciding part.
        assert_eq!(
            detect(&text.as_bytes()[..text.len() * 3 / 4]).unwrap(),
            format,
            "{format}"
        );
    }
    let e = detect(b"{\n  \"timelineEdits\": [{\"deviceId\": \"1\"}]}").unwrap_err();
    assert!(
        e.to_string().contains("edit metadata, no location history"),
        "{e}"
    );
    for format in Format::ALL {
        assert_eq!(format.name().parse::<Format>().unwrap(), format);
    }
    assert!("kml".parse::<Format>().is_err());
}

/// Reading every prefix of every fixture never panics; a prefix of a JSON or XML document
/// cut inside it ends in an error that names a byte offset, after no more items than the
/// whole file gives.
#[test]
fn every_cut_point_of_every_format() {
    for (format, text) in fixtures() {
        let whole = read_all(format, &text).ok();
        let bytes = text.as_bytes();
        let structured = !matches!(format, Format::Rec | Format::Csv);
        for cut in 0..bytes.len() {
            let read: Read = read_all(format, &bytes[..cut]);
            assert!(
                read.items.len() <= whole.items.len(),
                "{format} cut at {cut}"
            );
            let trimmed_all = bytes[cut..].iter().all(u8::is_ascii_whitespace);
            if structured && !trimmed_all {
                let e = read
                    .error
                    .unwrap_or_else(|| panic!("{format} cut at {cut}: no error"));
                if !matches!(e, FormatError::Io(_) | FormatError::Unknown(_)) {
                    assert!(
                        e.to_string().contains("byte "),
                        "{format} cut at {cut}: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn bytes_flipped_in_every_format() {
    for (format, text) in fixtures() {
        let mut bytes = text.into_bytes();
        for i in (0..bytes.len()).step_by(3) {
            let saved = bytes[i];
            for replacement in [b'"', b'{', b']', b'\n', b'<', 0xff] {
                bytes[i] = replacement;
                let _ = read_all(format, &bytes);
            }
            bytes[i] = saved;
        }
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = detect(&bytes);
        for format in Format::ALL {
            let _ = read_all(format, &bytes);
        }
    }

    #[test]
    fn json_shaped_garbage_never_panics(text in "[\\[\\]{}\",:0-9a-z \n\\\\]{0,200}") {
        for format in Format::ALL {
            let wrapped = format!("{{\"locations\":[{text}");
            let _ = read_all(format, &text);
            let _ = read_all(format, &wrapped);
        }
    }
}
