//! Imports uploaded through the REST API (`POST /api/imports/`, the file as the raw body):
//! a 50 MB GPX streamed through real HTTP and imported in the background while its status is
//! polled, nobody else sees the job, the size limit answers 413 and leaves nothing behind, and
//! a server that stops fails the jobs it had not finished.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// 2024-03-01T00:00:00Z.
const START: i64 = 1_709_251_200;

/// A GPX track of `points` points one second apart, written to `path`; returns its size.
fn write_gpx(path: &Path, points: usize) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"test\" \
          xmlns=\"http://www.topografix.com/GPX/1/1\">\n<trk><name>long ride</name><trkseg>\n",
    )
    .unwrap();
    for i in 0..points {
        let tst = START + i as i64;
        let (h, m, s) = (
            (tst - START) / 3600,
            (tst - START) / 60 % 60,
            (tst - START) % 60,
        );
        let (day, h) = (1 + h / 24, h % 24);
        let lat = 52.0 + (i % 100_000) as f64 * 1e-6;
        let lon = 13.0 + (i / 100_000) as f64 * 1e-3;
        writeln!(
            out,
            "  <trkpt lat=\"{lat:.6}\" lon=\"{lon:.6}\"><ele>{:.1}</ele>\
             <time>2024-03-{day:02}T{h:02}:{m:02}:{s:02}Z</time><speed>4.5</speed></trkpt>",
            30.0 + (i % 50) as f64
        )
        .unwrap();
    }
    out.write_all(b"</trkseg></trk>\n</gpx>\n").unwrap();
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// An API token of `api`'s user.
fn token(api: &Api) -> String {
    let (status, token) = api.post("/api/account/tokens/", json!({ "label": "upload" }));
    assert_eq!(status, 201, "{token}");
    token["token"].as_str().unwrap().to_owned()
}

/// `POST /api/imports/?QUERY` with `body` as the raw body.
fn upload(port: u16, token: &str, query: &str, body: reqwest::blocking::Body) -> (u16, Value) {
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{port}/api/imports/?{query}"))
        .bearer_auth(token)
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("upload failed: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `GET /api/imports/{id}/` until the job has ended; returns every state seen.
fn wait_for_end(server: &Server, api: &Api, id: i64, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let (status, job) = api.get(&format!("/api/imports/{id}/"));
        assert_eq!(status, 200, "{job}");
        let ended = matches!(job["state"].as_str(), Some("done" | "failed"));
        seen.push(job);
        if ended {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "import {id} not finished: {:?}\n{}",
            seen.last(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spool_files(server: &Server) -> Vec<String> {
    match std::fs::read_dir(server.data_dir().join("imports")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_50_mb_gpx_streams_in_imports_in_the_background_and_only_its_owner_sees_it() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    let secret = token(&alice);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ride.gpx");
    let points = 400_000;
    let size = write_gpx(&path, points);
    assert!(size > 45_000_000, "{size} bytes");

    let file = std::fs::File::open(&path).unwrap();
    let (status, job) = upload(
        server.http_port,
        &secret,
        "device=bike&filename=ride.gpx",
        reqwest::blocking::Body::sized(file, size),
    );
    assert_eq!(status, 202, "{job}\n{}", server.log());
    assert_eq!(job["state"], "queued", "{job}");
    assert_eq!(job["bytes_total"], size);
    let id = job["id"].as_i64().unwrap();

    let seen = wait_for_end(&server, &alice, id, Duration::from_secs(600));
    let last = seen.last().unwrap();
    assert_eq!(last["state"], "done", "{last}\n{}", server.log());
    assert_eq!(last["format"], "gpx", "detected: {last}");
    assert_eq!(
        (&last["bytes_read"], &last["bytes_total"]),
        (&json!(size), &json!(size))
    );
    let summary = &last["summary"];
    assert_eq!(summary["valid"], points, "{summary}");
    assert_eq!(summary["stored"]["locations"], points, "{summary}");
    assert_eq!(summary["stored"]["location_copies"], 0, "{summary}");
    assert!(last["finished_at"].is_string(), "{last}");
    // Progress moved forward while it ran, never back.
    let read: Vec<i64> = seen
        .iter()
        .map(|j| j["bytes_read"].as_i64().unwrap())
        .collect();
    assert!(read.windows(2).all(|w| w[0] <= w[1]), "{read:?}");
    assert!(
        seen.iter().any(|j| j["state"] == "running"),
        "the running state was never seen: {seen:?}"
    );
    assert!(
        spool_files(&server).is_empty(),
        "{:?}",
        spool_files(&server)
    );
    let (status, devices) = alice.get("/api/devices/");
    assert_eq!(status, 200);
    assert!(
        devices
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device"] == "bike" || d["name"] == "bike"),
        "{devices}"
    );

    // Only its owner (and admins) see it.
    let (status, body) = bob.get(&format!("/api/imports/{id}/"));
    assert_eq!(status, 404, "{body}");
    let (status, list) = bob.get("/api/imports/");
    assert_eq!((status, list), (200, json!([])));
    let (status, body) = server.admin_api().get(&format!("/api/imports/{id}/"));
    assert_eq!((status, &body["id"]), (200, &json!(id)), "{body}");
    let (status, list) = alice.get("/api/imports/");
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], id, "{list}");
    assert_eq!(list[0]["filename"], "ride.gpx", "{list}");
    let (status, body) = alice.get("/api/imports/nope/");
    assert_eq!(status, 404, "{body}");

    // The same file again: everything is already there.
    let small = dir.path().join("small.gpx");
    write_gpx(&small, 1_000);
    let (status, job) = upload(
        server.http_port,
        &secret,
        "device=bike&format=gpx",
        std::fs::read(&small).unwrap().into(),
    );
    assert_eq!(status, 202, "{job}");
    let again = wait_for_end(
        &server,
        &alice,
        job["id"].as_i64().unwrap(),
        Duration::from_secs(60),
    );
    let summary = &again.last().unwrap()["summary"];
    assert_eq!(summary["stored"]["location_copies"], 1_000, "{summary}");
    assert_eq!(summary["stored"]["locations"], 0, "{summary}");
}

#[test]
fn the_size_limit_bad_requests_and_csrf_are_answered_in_json_and_leave_nothing() {
    let server = Server::with_config("[web]\nmax_import_bytes = 1048576\n");
    let alice = server.user_api("alice");
    let secret = token(&alice);
    let big = vec![b' '; 2 << 20];
    // Announced too large (Content-Length): refused before a job exists.
    let (status, body) = upload(
        server.http_port,
        &secret,
        "device=phone",
        big.clone().into(),
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("1048576"),
        "{body}"
    );
    // Found too large while it arrives (chunked, no length): the job fails, the file goes.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(big));
    let (status, body) = upload(server.http_port, &secret, "device=phone", chunked);
    assert_eq!(status, 413, "{body}");
    assert!(
        spool_files(&server).is_empty(),
        "{:?}",
        spool_files(&server)
    );
    let (_, list) = alice.get("/api/imports/");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["state"], "failed", "{list}");

    for (query, field) in [
        ("device=", "device"),
        ("format=gpx", "device"),
        ("device=a/b", "device"),
        ("device=phone&format=kml", "format"),
        ("device=phone&dry_run=maybe", "dry_run"),
    ] {
        let (status, body) = upload(server.http_port, &secret, query, "<gpx/>".into());
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    // A cookie session needs the CSRF token, as for any change.
    alice.forget_csrf();
    let (status, body) = alice.post("/api/imports/?device=phone", json!({}));
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.api().get("/api/imports/");
    assert_eq!(status, 401, "{body}");
    assert!(spool_files(&server).is_empty());

    let (_, doc) = server.api().get("/api/openapi.json");
    let paths = &doc["paths"];
    assert!(
        paths["/api/imports/"]["post"]["responses"]["202"].is_object(),
        "{paths}"
    );
    assert!(paths["/api/imports/"]["get"].is_object(), "{paths}");
    assert!(paths["/api/imports/{id}/"]["get"].is_object(), "{paths}");
}

/// Sends the head of a chunked upload and `bytes` of body, and keeps the connection open.
fn partial_upload(port: u16, token: &str, bytes: usize) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/imports/?device=half HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    if bytes > 0 {
        write!(stream, "{bytes:x}\r\n").unwrap();
        stream.write_all(&vec![b' '; bytes]).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.flush().unwrap();
    stream
}

#[test]
fn a_server_that_stops_fails_the_jobs_it_had_not_finished() {
    let mut server = Server::start();
    let alice = server.user_api("alice");
    let secret = token(&alice);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ride.gpx");
    let size = write_gpx(&path, 400_000);

    // One upload half sent...
    let mut half = partial_upload(server.http_port, &secret, 1_000_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let uploading = loop {
        let (_, list) = alice.get("/api/imports/");
        if let Some(job) = list.as_array().unwrap().first() {
            assert_eq!(job["state"], "uploading", "{list}");
            break job["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // ...and one import running.
    let (status, job) = upload(
        server.http_port,
        &secret,
        "device=bike",
        reqwest::blocking::Body::sized(std::fs::File::open(&path).unwrap(), size),
    );
    assert_eq!(status, 202, "{job}");
    let running = job["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = alice.get(&format!("/api/imports/{running}/"));
        if job["state"] == "running" {
            break;
        }
        assert_eq!(job["state"], "queued", "{job}");
        assert!(Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, job) = alice.get(&format!("/api/imports/{uploading}/"));
    assert_eq!(job["state"], "uploading", "{job}");
    // What has arrived is on disk already: the body is streamed, not held until its end.
    let spooled = server.data_dir().join(format!("imports/{uploading}.part"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&spooled).map_or(0, |m| m.len()) < 700_000 {
        assert!(
            Instant::now() < deadline,
            "{} not written as it arrives",
            spooled.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&spooled).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the spool file is private");
    assert_eq!(spool_files(&server).len(), 2, "{:?}", spool_files(&server));

    server.restart(Stop::Kill);
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
    let alice = login(&server, "alice", &user_password("alice"));
    for id in [uploading, running] {
        let (status, job) = alice.get(&format!("/api/imports/{id}/"));
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["state"], "failed", "{job}");
        assert!(
            job["error"]
                .as_str()
                .unwrap()
                .contains("the server restarted"),
            "{job}"
        );
    }
    assert!(
        spool_files(&server).is_empty(),
        "{:?}",
        spool_files(&server)
    );
}

/// Sends a chunked upload of a small GPX one piece every 500 ms for `seconds`, and returns
/// the answer's status line.
fn trickled_upload(port: u16, token: &str, seconds: u64) -> String {
    let mut stream = partial_upload(port, token, 0);
    let gpx = "<?xml version=\"1.0\"?><gpx version=\"1.1\"><trk><trkseg></trkseg></trk></gpx>";
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        let piece = gpx
            .as_bytes()
            .get(sent..(sent + 8).min(gpx.len()))
            .unwrap_or(b" ");
        sent += piece.len();
        if write!(stream, "{:x}\r\n", piece.len())
            .and_then(|()| stream.write_all(piece))
            .and_then(|()| stream.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_upload_gets_upload_timeout_instead_of_request_timeout() {
    let server = Server::with_config("[http]\nrequest_timeout = 2\nupload_timeout_secs = 5\n");
    let alice = server.user_api("alice");
    let secret = token(&alice);
    // Longer than request_timeout, within upload_timeout: accepted.
    let status = trickled_upload(server.http_port, &secret, 3);
    assert!(status.contains(" 202 "), "{status}\n{}", server.log());
    // Longer than upload_timeout: 408, like any request past its time.
    let status = trickled_upload(server.http_port, &secret, 8);
    assert!(status.contains(" 408 "), "{status}\n{}", server.log());
}

#[test]
fn on_postgresql_an_upload_imports_once_and_a_restart_fails_what_was_left() {
    let mut server = Server::with_database(Database::Postgres, "");
    let alice = server.user_api("alice");
    let secret = token(&alice);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("walk.gpx");
    write_gpx(&path, 5_000);
    for (round, (new, copies)) in [(5_000, 0), (0, 5_000)].into_iter().enumerate() {
        let (status, job) = upload(
            server.http_port,
            &secret,
            "device=walk&filename=walk.gpx",
            std::fs::read(&path).unwrap().into(),
        );
        assert_eq!(status, 202, "{job}");
        let seen = wait_for_end(
            &server,
            &alice,
            job["id"].as_i64().unwrap(),
            Duration::from_secs(120),
        );
        let summary = &seen.last().unwrap()["summary"];
        assert_eq!(
            summary["stored"]["locations"], new,
            "round {round}: {summary}"
        );
        assert_eq!(
            summary["stored"]["location_copies"], copies,
            "round {round}: {summary}"
        );
    }
    let mut half = partial_upload(server.http_port, &secret, 1_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while spool_files(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the spool"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.restart(Stop::Kill);
    let _ = half.read_to_end(&mut Vec::new());
    let alice = login(&server, "alice", &user_password("alice"));
    let (_, list) = alice.get("/api/imports/");
    assert_eq!(list[0]["state"], "failed", "{list}");
    assert_eq!(list[1]["state"], "done", "{list}");
    assert!(spool_files(&server).is_empty());
}

#[test]
fn unknown_and_truncated_files_fail_saying_why_and_a_dry_run_writes_nothing() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let secret = token(&alice);
    let end = |body: &str, query: &str| {
        let (status, job) = upload(server.http_port, &secret, query, body.to_owned().into());
        assert_eq!(status, 202, "{job}");
        let seen = wait_for_end(
            &server,
            &alice,
            job["id"].as_i64().unwrap(),
            Duration::from_secs(60),
        );
        seen.last().unwrap().clone()
    };
    let job = end("hello, this is not a track\n", "device=phone");
    assert_eq!(job["state"], "failed", "{job}");
    assert!(!job["error"].as_str().unwrap().is_empty(), "{job}");
    assert_eq!(job["format"], "auto", "{job}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gpx");
    write_gpx(&path, 100);
    let whole = std::fs::read_to_string(&path).unwrap();
    let cut = &whole[..whole.len() / 2];
    let job = end(cut, "device=phone&filename=cut.gpx");
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("cut.gpx") && error.contains("byte"), "{job}");
    let stored = job["summary"]["stored"]["locations"].as_i64().unwrap();
    assert!(stored < 100, "{job}");

    let job = end(&whole, "device=dry&dry_run=true");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["dry_run"], true, "{job}");
    assert_eq!(job["summary"]["valid"], 100, "{job}");
    assert_eq!(job["summary"]["stored"]["locations"], 0, "{job}");
    let (status, points) = alice.get("/api/locations/?user=alice&device=dry");
    assert_eq!(
        (status, points.as_array().map(Vec::len)),
        (200, Some(0)),
        "{points}"
    );
    assert!(spool_files(&server).is_empty());
}

/// A hostile upload: every record's value differs and is wrong. The job's summary (stored,
/// served to the browser) stays small: one reason counted, at most 20 problems, each short.
#[test]
fn a_file_of_distinct_bad_values_keeps_a_small_summary() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let secret = token(&alice);
    let bad: Vec<String> = (0..5_000)
        .map(|n| {
            format!(
                r#"{{"latitudeE7":"{}-{n}","longitudeE7":1}}"#,
                "x".repeat(200)
            )
        })
        .collect();
    let body = format!(r#"{{"locations":[{}]}}"#, bad.join(","));
    let (status, job) = upload(server.http_port, &secret, "device=phone", body.into());
    assert_eq!(status, 202, "{job}");
    let seen = wait_for_end(
        &server,
        &alice,
        job["id"].as_i64().unwrap(),
        Duration::from_secs(60),
    );
    let job = seen.last().unwrap();
    assert_eq!(job["state"], "done", "{job}");
    let summary = &job["summary"];
    let skipped = summary["skipped"].as_object().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped["unexpected shape"], 5_000);
    let problems = summary["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 20);
    assert!(job.to_string().len() < 10_000, "{}", job.to_string().len());
}
