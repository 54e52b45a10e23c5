use crate::read_all;
use mytracks_formats::{Format, FormatError, CSV_HEADER};

#[test]
fn our_export() {
    // As crates/http/src/api/export.rs writes it: formula-looking text cells get a `'`,
    // cells with a comma or quote are quoted.
    let input = format!(
        "{CSV_HEADER}\n\
         alice,phone,1709287200,2024-03-01T10:00:00Z,52.5,13.4,5,34.5,12,90,80,ph\n\
         '=bob,\"tab,\"\"1\"\"\",1709287201,2024-03-01T10:00:01Z,-33.8,151.2,,,,,,'-x\r\n\
         alice,phone,1709287202,,1,2,,,,,,\"multi\nline\"\n\
         alice,phone,1709287203,2024-03-01T10:00:00Z,1,2,,,,,,\n\
         alice,phone,1709287204,,1,2,,,,,\n\
         alice,phone,x,,1,2,,,,,,\n\
         alice,phone,1709287205000,,1,2,,,,,,\n\
         alice,phone,1709287206,,1,2,fast,,,,,\n\
         \n\
         alice,phone,1709287207,,91,2,,,,,,\n"
    );
    let read = read_all(Format::Csv, input).ok();
    let points = read.points();
    assert_eq!(points.len(), 3);
    let p = &points[0];
    assert_eq!(
        (p.user.as_deref(), p.device.as_deref(), p.tst),
        (Some("alice"), Some("phone"), 1_709_287_200)
    );
    assert_eq!(
        (p.acc, p.alt, p.vel, p.cog, p.batt, p.tid.as_deref()),
        (
            Some(5.0),
            Some(34.5),
            Some(12.0),
            Some(90.0),
            Some(80),
            Some("ph")
        )
    );
    let p = &points[1];
    assert_eq!(
        (p.user.as_deref(), p.device.as_deref(), p.tid.as_deref()),
        (Some("=bob"), Some("tab,\"1\""), Some("-x"))
    );
    assert_eq!((p.lat, p.lon, p.acc, p.batt), (-33.8, 151.2, None, None));
    assert_eq!(points[2].tid.as_deref(), Some("multi\nline"));
    assert_eq!(
        read.reasons(),
        [
            "tst and timestamp disagree",
            "expected 12 CSV columns",
            "bad tst",
            "time looks like milliseconds",
            "bad number",
            "latitude out of range"
        ]
    );
    assert_eq!(read.problems[0].at.line, 6);
    assert_eq!(read.problems[5].at.line, 12);
}

#[test]
fn not_our_csv() {
    let e = read_all(Format::Csv, "lat,lon,time\n1,2,3\n")
        .error
        .unwrap();
    assert!(matches!(e, FormatError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("not a mytracks CSV export"), "{e}");
    assert!(matches!(
        read_all(Format::Csv, "").error,
        Some(FormatError::Truncated { .. })
    ));
    let read = read_all(
        Format::Csv,
        format!("\u{feff}{CSV_HEADER}\nalice,phone,1709287200,,1,2,,,,,,\"open"),
    )
    .ok();
    assert_eq!(read.reasons(), ["unterminated quoted cell"]);
}
