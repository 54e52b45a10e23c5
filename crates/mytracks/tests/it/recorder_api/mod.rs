//! The Recorder-compatible API (`/api/0/`) and its WebSocket (`/ws/last`) through a real
//! server, as the OwnTracks Frontend and Recorder scripts call them.
//!
//! The world: alice owns the data; bob sees her history (share with history), carol her live
//! positions only, dave nothing; the first administrator sees everything. Locations are
//! written through the store into the server's SQLite file (WAL: safe while it runs), so
//! tests control every `tst` and payload; live pushes go through `mosquitto_pub`.

use crate::support::{
    add_user, login, on_both_databases, postgres_url, user_password, Api, Database, Server,
};
use mytracks_store::{Incoming, NewCard, NewLocation, Record};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod formats;
mod shapes;
mod visibility;
mod ws_last;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The server and its people.
pub struct World {
    pub server: Server,
    /// The server's database, for [`ingest`].
    pub database_url: String,
    pub alice_id: i64,
    pub alice: Api,
}

/// A server (SQLite) with alice, bob (history share), carol (live share) and dave (none).
pub fn world() -> World {
    world_on(Database::Sqlite)
}

/// The same on `database`.
pub fn world_on(database: Database) -> World {
    let (server, database_url) = match database {
        Database::Sqlite => {
            let server = Server::with_config("");
            let url = format!(
                "sqlite://{}",
                server.data_dir().join("mytracks.sqlite3").display()
            );
            (server, url)
        }
        Database::Postgres => {
            let url = postgres_url();
            (
                Server::with_config(&format!("[database]\nurl = \"{url}\"\n")),
                url,
            )
        }
    };
    let admin = server.admin_api();
    let mut alice_id = 0;
    for name in ["alice", "bob", "carol", "dave"] {
        let id = add_user(&server, &admin, name, &user_password(name));
        if name == "alice" {
            alice_id = id;
        }
    }
    let alice = login(&server, "alice", &user_password("alice"));
    for (viewer, history) in [("bob", true), ("carol", false)] {
        let (status, body) = alice.post(
            "/api/account/shares/",
            json!({ "username": viewer, "history": history }),
        );
        assert_eq!(status, 201, "share with {viewer}: {body}\n{}", server.log());
    }
    World {
        server,
        database_url,
        alice_id,
        alice,
    }
}

/// Runs alice's `records` (device, record) through the store of the server's database.
pub fn ingest(world: &World, records: Vec<(&str, Record)>) {
    let user_id = world.alice_id;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = mytracks_store::Store::connect(&world.database_url)
            .await
            .unwrap();
        let batch: Vec<Incoming> = records
            .into_iter()
            .map(|(device, record)| Incoming {
                user_id,
                device: device.into(),
                transport: "mqtt",
                received_at: now(),
                record,
            })
            .collect();
        for chunk in batch.chunks(5_000) {
            store.ingest(chunk).await.unwrap();
        }
        store.close().await;
    });
}

/// A location record at `tst`; `extra` members go into its payload as received.
pub fn fix(tst: i64, lat: f64, extra: Value) -> Record {
    let mut raw =
        json!({ "_type": "location", "lat": lat, "lon": 13.405, "tst": tst, "tid": "al" });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        raw[key] = value;
    }
    Record::Location(NewLocation {
        tst,
        lat,
        lon: 13.405,
        tid: Some("al".into()),
        raw: raw.to_string(),
        ..Default::default()
    })
}

/// A card (name, base64 face).
pub fn card(name: &str, face: &str) -> Record {
    Record::Card(NewCard {
        name: Some(name.into()),
        face: Some(face.into()),
        tid: None,
        raw: json!({ "_type": "card", "name": name, "face": face }).to_string(),
    })
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    /// HTTP Basic with this user's password (`user_password`).
    Basic(&'a str),
    /// HTTP Basic with exactly these credentials.
    BasicWith(&'a str, &'a str),
    /// The session of a logged-in client (with its CSRF token on mutations).
    Session(&'a Api),
}

/// An answer: status, headers, body text.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// `method path` as `who`, with extra headers and an optional form body.
pub fn call(
    server: &Server,
    who: As,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Answer {
    let method_value = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if form.is_some() {
        all.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    let response = match who {
        As::Session(api) => {
            assert!(form.is_none(), "forms are sent with Basic or nobody");
            let refs: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            api.request(method, path, None, &refs)
        }
        _ => {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap();
            let mut request = client.request(
                method_value,
                format!("http://127.0.0.1:{}{path}", server.http_port),
            );
            match who {
                As::Basic(user) => request = request.basic_auth(user, Some(user_password(user))),
                As::BasicWith(user, password) => request = request.basic_auth(user, Some(password)),
                _ => {}
            }
            for (name, value) in &all {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(form) = form {
                request = request.body(form.to_owned());
            }
            request
                .send()
                .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", server.log()))
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().unwrap_or_default().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET path` as `who`; must answer 200.
pub fn get_ok(server: &Server, who: As, path: &str) -> Answer {
    let answer = call(server, who, "GET", path, &[], None);
    assert_eq!(
        answer.status,
        200,
        "GET {path}: {}\n{}",
        answer.text(),
        server.log()
    );
    answer
}

/// `GET path` as `who`, as JSON (200).
pub fn get_json(server: &Server, who: As, path: &str) -> Value {
    get_ok(server, who, path).json()
}

/// The `tst`s of a `locations` JSON answer, in order.
pub fn tsts(answer: &Value) -> Vec<i64> {
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {answer}"))
        .iter()
        .map(|item| item["tst"].as_i64().unwrap())
        .collect()
}
