//! The whole of an account as one ZIP, so that its owner can leave (and come back): profile,
//! devices, shares, card, every location as GeoJSON, GPX and CSV, transitions, regions, kept
//! messages, IoT devices with their telemetry, and an OwnTracks Recorder store (`rec/`,
//! `last/`, `cards/`, `waypoints/`) that `mytracks import recorder` (or a Recorder) reads
//! back. Never a password hash, token, key or credential.
//!
//! The ZIP is written on a blocking thread, entry after entry, from keyset pages of
//! [`EXPORT_PAGE`] rows read through the runtime's handle: memory stays flat whatever the
//! history's size, and a non-seekable output (an HTTP body fed through [`ChannelWriter`])
//! works as well as a file.
//!
//! - `mod.rs`: the entry points, the account's JSON files, the location files.
//! - `rec_tree.rs`: the Recorder store.

mod rec_tree;

use bytes::Bytes;
use mytracks_formats::{CsvWriter, ExportPoint, GeoJsonWriter, GpxWriter};
use mytracks_store::{Device, LocationRow, Store, StoreError, StoredLocation, User, EXPORT_PAGE};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{self, Seek, Write};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

/// Why an export failed (the output is then incomplete).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no user with id {0}")]
    NoSuchUser(i64),
    #[error("cannot write the archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot write the archive: {0}")]
    Io(#[from] io::Error),
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// The folder every file of the archive is in (`mytracks-<user>-<date>/`).
    pub folder: String,
    pub files: u64,
    pub devices: u64,
    pub locations: u64,
    pub transitions: u64,
    pub messages: u64,
    pub iot_devices: u64,
    pub telemetry: u64,
}

/// Exports the account `user_id` as a ZIP into `out`, a file or anything seekable; the output
/// is handed back, complete.
pub async fn export_account<W>(
    store: Store,
    user_id: i64,
    out: W,
) -> Result<(W, ExportSummary), ExportError>
where
    W: Write + Seek + Send + 'static,
{
    run_blocking(move |rt| {
        let mut exporter = Exporter::new(rt, store, ZipWriter::new(out));
        exporter.run(user_id)?;
        let summary = std::mem::take(&mut exporter.summary);
        Ok((exporter.zip.finish()?, summary))
    })
    .await
}

/// Exports the account `user_id` as a ZIP into `out`, which need not seek (entries carry
/// data descriptors): an HTTP body through [`ChannelWriter`], a pipe.
pub async fn export_account_stream<W>(
    store: Store,
    user_id: i64,
    out: W,
) -> Result<ExportSummary, ExportError>
where
    W: Write + Send + 'static,
{
    run_blocking(move |rt| {
        let mut exporter = Exporter::new(rt, store, ZipWriter::new_stream(out));
        exporter.run(user_id)?;
        let summary = std::mem::take(&mut exporter.summary);
        let mut out: StreamWriter<W> = exporter.zip.finish()?;
        out.flush()?;
        Ok(summary)
    })
    .await
}

/// Runs `work` on a blocking thread with the current runtime's handle (for the store's pages).
async fn run_blocking<T, F>(work: F) -> Result<T, ExportError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Result<T, ExportError> + Send + 'static,
{
    let rt = Handle::current();
    match tokio::task::spawn_blocking(move || work(rt)).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(ExportError::Io(io::Error::other(
            "the export was cancelled",
        ))),
    }
}

/// Bytes per chunk a [`ChannelWriter`] sends.
const CHUNK: usize = 64 * 1024;

/// A `Write` that sends what it is given, in chunks of 64 KiB, through a bounded channel (to
/// an HTTP body stream). Used from a blocking thread only: it waits while the channel is
/// full, so the export goes at the reader's pace; a closed channel (the client left) is a
/// broken pipe, which ends the export.
pub struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(sender: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the download was closed"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A device of the account and the file names its files have in the archive.
pub(crate) struct ExportDevice {
    pub device: Device,
    /// Its name as one path component (see [`path_component`]), unique in the archive.
    pub file: String,
}

/// The export in progress: the archive, the store and where the folder is.
pub(crate) struct Exporter<W: Write + Seek> {
    rt: Handle,
    store: Store,
    zip: ZipWriter<W>,
    /// `mytracks-<user>-<date>/`.
    folder: String,
    options: SimpleFileOptions,
    summary: ExportSummary,
}

impl<W: Write + Seek> Exporter<W> {
    fn new(rt: Handle, store: Store, zip: ZipWriter<W>) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let modified = zip::DateTime::from_date_and_time(
            u16::try_from(now.year()).unwrap_or(1980),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
        )
        .unwrap_or_default();
        Exporter {
            rt,
            store,
            zip,
            folder: String::new(),
            options: SimpleFileOptions::default()
                .compression_method(CompressionMethod::Deflated)
                .last_modified_time(modified)
                .unix_permissions(0o600)
                // Streamed entries of unknown size may pass 4 GiB: ZIP64 sizes always.
                .large_file(true),
            summary: ExportSummary::default(),
        }
    }

    /// Waits for a store read (this runs on a blocking thread).
    pub(crate) fn wait<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ExportError> {
        Ok(self.rt.block_on(read)?)
    }

    /// Starts the archive entry `path` (below the folder); write it through `self.zip`.
    pub(crate) fn start(&mut self, path: &str) -> Result<&mut ZipWriter<W>, ExportError> {
        self.zip
            .start_file(format!("{}{path}", self.folder), self.options)?;
        self.summary.files += 1;
        Ok(&mut self.zip)
    }

    /// One whole entry.
    fn entry(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.start(path)?.write_all(bytes)?;
        Ok(())
    }

    /// One JSON entry, pretty-printed (these are small: the big ones are streamed).
    fn json_entry(&mut self, path: &str, value: &Value) -> Result<(), ExportError> {
        let mut text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        text.push(b'\n');
        self.entry(path, &text)
    }

    fn run(&mut self, user_id: i64) -> Result<(), ExportError> {
        let user = self
            .wait(self.store.user_by_id(user_id))?
            .ok_or(ExportError::NoSuchUser(user_id))?;
        let today = time::OffsetDateTime::now_utc().date();
        self.folder = format!("mytracks-{}-{today}/", path_component(&user.username));
        self.summary.folder = self.folder.clone();
        let devices = self.wait(self.store.devices_of(&[user.id]))?;
        let devices = unique_files(devices);
        self.entry("README.txt", readme(&user, &self.folder).as_bytes())?;
        self.profile(&user)?;
        self.json_entry("devices.json", &devices_json(&devices))?;
        self.shares(&user)?;
        self.cards(&user, &devices)?;
        for device in &devices {
            self.summary.devices += 1;
            self.locations(&user, device)?;
            self.transitions(device)?;
            self.waypoints(device)?;
            self.messages(device)?;
        }
        self.iot(&user)?;
        rec_tree::write(self, &user, &devices)
    }

    fn profile(&mut self, user: &User) -> Result<(), ExportError> {
        let key_set = self.wait(self.store.user_key(user.id))?.is_some();
        let settings: Value = serde_json::from_str(&user.settings).unwrap_or_else(|_| json!({}));
        let profile = json!({
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "is_admin": user.is_admin,
            "is_active": user.is_active,
            "created_at": timestamp(user.created_at),
            "last_login": user.last_login.map(timestamp),
            "settings": settings,
            // Whether OwnTracks payloads are end-to-end encrypted (the key itself never
            // leaves the server).
            "payload_encryption_key_set": key_set,
            "exported_at": timestamp(mytracks_store::now()),
            "exported_by": format!("mytracks {}", crate::VERSION),
        });
        self.json_entry("profile.json", &profile)
    }

    fn shares(&mut self, user: &User) -> Result<(), ExportError> {
        let shares = self.wait(self.store.shares_of(user.id))?;
        let shares: Vec<Value> = shares
            .iter()
            .map(|s| {
                json!({
                    "owner": s.owner,
                    "viewer": s.viewer,
                    "direction": if s.owner_id == user.id { "given" } else { "received" },
                    "history": s.history,
                    "created_at": timestamp(s.created_at),
                })
            })
            .collect();
        self.json_entry("shares.json", &Value::Array(shares))
    }

    fn cards(&mut self, user: &User, devices: &[ExportDevice]) -> Result<(), ExportError> {
        let cards = self.wait(self.store.cards(&[user.id]))?;
        let cards: Vec<Value> = cards
            .iter()
            .map(|c| {
                let device = devices
                    .iter()
                    .find(|d| Some(d.device.id) == c.device_id)
                    .map(|d| d.device.name.clone());
                json!({
                    "device": device,
                    "name": c.name,
                    "face": c.face,
                    "tid": c.tid,
                    "updated_at": timestamp(c.updated_at),
                    "payload": payload(&c.raw),
                })
            })
            .collect();
        self.json_entry("cards.json", &Value::Array(cards))
    }

    /// Calls `each` with every location of `device`, oldest first, a page at a time.
    pub(crate) fn for_each_location(
        &mut self,
        device_id: i64,
        mut each: impl FnMut(&mut ZipWriter<W>, &StoredLocation) -> io::Result<()>,
    ) -> Result<u64, ExportError> {
        let mut after = None;
        let mut count = 0;
        loop {
            let page = self.wait(
                self.store
                    .location_export_page(device_id, after, EXPORT_PAGE),
            )?;
            for location in &page {
                each(&mut self.zip, location)?;
            }
            count += page.len() as u64;
            match page.last() {
                Some(last) if page.len() as i64 == EXPORT_PAGE => {
                    after = Some((last.row.tst, last.row.id));
                }
                _ => return Ok(count),
            }
        }
    }

    fn locations(&mut self, user: &User, device: &ExportDevice) -> Result<(), ExportError> {
        let id = device.device.id;
        let names = HashMap::from([(id, (user.username.clone(), device.device.name.clone()))]);
        let file = &device.file;
        self.start(&format!("locations/{file}.geojson"))?;
        let mut geojson = GeoJsonWriter::new(Vec::with_capacity(CHUNK), &names)?;
        let count = self.for_each_location(id, |zip, l| {
            geojson.write(&point(&l.row))?;
            drain(geojson_buffer(&mut geojson), zip)
        })?;
        let rest = geojson.finish()?;
        self.zip.write_all(&rest)?;
        self.summary.locations += count;

        self.start(&format!("locations/{file}.gpx"))?;
        let mut gpx = GpxWriter::new(Vec::with_capacity(CHUNK))?;
        gpx.track(&user.username, &device.device.name)?;
        self.for_each_location(id, |zip, l| {
            gpx.point(&point(&l.row))?;
            drain(gpx_buffer(&mut gpx), zip)
        })?;
        let rest = gpx.finish()?;
        self.zip.write_all(&rest)?;

        self.start(&format!("locations/{file}.csv"))?;
        let mut csv = CsvWriter::new(Vec::with_capacity(CHUNK), &names)?;
        self.for_each_location(id, |zip, l| {
            csv.write(&point(&l.row))?;
            drain(csv_buffer(&mut csv), zip)
        })?;
        let rest = csv.finish()?;
        self.zip.write_all(&rest)?;
        Ok(())
    }

    fn transitions(&mut self, device: &ExportDevice) -> Result<(), ExportError> {
        let (id, file) = (device.device.id, device.file.clone());
        let zip = self.start(&format!("transitions/{file}.json"))?;
        zip.write_all(b"[")?;
        let mut after = None;
        let mut first = true;
        loop {
            let page = self.wait(self.store.transition_export_page(id, after, EXPORT_PAGE))?;
            for t in &page {
                let row = &t.row;
                let value = json!({
                    "tst": row.tst,
                    "timestamp": timestamp(row.tst),
                    "wtst": row.wtst,
                    "lat": row.lat,
                    "lon": row.lon,
                    "acc": row.acc,
                    "event": row.event,
                    "desc": row.description,
                    "tid": row.tid,
                    "rid": row.rid,
                    "t": row.trigger,
                    "received_at": row.received_at,
                    "payload": payload(&t.raw),
                });
                let separator: &[u8] = if std::mem::take(&mut first) {
                    b"\n"
                } else {
                    b",\n"
                };
                self.zip.write_all(separator)?;
                serde_json::to_writer(&mut self.zip, &value).map_err(io::Error::other)?;
            }
            self.summary.transitions += page.len() as u64;
            match page.last() {
                Some(last) if page.len() as i64 == EXPORT_PAGE => {
                    after = Some((last.row.tst, last.row.id));
                }
                _ => break,
            }
        }
        self.zip.write_all(b"\n]\n")?;
        Ok(())
    }

    fn waypoints(&mut self, device: &ExportDevice) -> Result<(), ExportError> {
        let rows = self.wait(self.store.waypoints(&[device.device.id]))?;
        let regions: Vec<Value> = rows
            .iter()
            .map(|w| {
                json!({
                    "rid": w.rid,
                    "desc": w.description,
                    "lat": w.lat,
                    "lon": w.lon,
                    "rad": w.rad,
                    "tst": w.tst,
                    "uuid": w.uuid,
                    "major": w.major,
                    "minor": w.minor,
                })
            })
            .collect();
        self.json_entry(
            &format!("waypoints/{}.json", device.file),
            &Value::Array(regions),
        )
    }

    fn messages(&mut self, device: &ExportDevice) -> Result<(), ExportError> {
        let (id, file) = (device.device.id, device.file.clone());
        self.start(&format!("messages/{file}.jsonl"))?;
        let mut after = None;
        loop {
            let page = self.wait(self.store.message_export_page(id, after, EXPORT_PAGE))?;
            for m in &page {
                let line = json!({
                    "kind": m.kind,
                    "received_at": m.received_at,
                    "timestamp": timestamp(m.received_at),
                    "payload": payload(&message_payload(&m.kind, &m.raw)),
                });
                serde_json::to_writer(&mut self.zip, &line).map_err(io::Error::other)?;
                self.zip.write_all(b"\n")?;
            }
            self.summary.messages += page.len() as u64;
            match page.last() {
                Some(last) if page.len() as i64 == EXPORT_PAGE => {
                    after = Some((last.received_at, last.id));
                }
                _ => return Ok(()),
            }
        }
    }

    fn iot(&mut self, user: &User) -> Result<(), ExportError> {
        let devices = self.wait(self.store.iot_devices(Some(user.id), None))?;
        let listed: Vec<Value> = devices
            .iter()
            .map(|d| {
                json!({
                    "device_id": d.device_id,
                    "group": d.group_name,
                    "description": d.description,
                    "online": d.online,
                    "last_seen": d.last_seen.map(timestamp),
                    "created_at": timestamp(d.created_at),
                    "credentials_rotated_at": d.rotated_at.map(timestamp),
                    "telemetry": format!("iot/telemetry/{}.jsonl", path_component(&d.device_id)),
                })
            })
            .collect();
        self.json_entry("iot/devices.json", &Value::Array(listed))?;
        for device in &devices {
            self.summary.iot_devices += 1;
            self.start(&format!(
                "iot/telemetry/{}.jsonl",
                path_component(&device.device_id)
            ))?;
            let mut after = None;
            loop {
                let page = self.wait(self.store.telemetry_export_page(
                    device.id,
                    after,
                    EXPORT_PAGE,
                ))?;
                for t in &page {
                    let line = json!({
                        "ts_ms": t.telemetry.ts_ms,
                        "time": timestamp(t.telemetry.ts_ms.div_euclid(1000)),
                        "topic": t.telemetry.topic,
                        "payload": payload(&t.telemetry.payload),
                    });
                    serde_json::to_writer(&mut self.zip, &line).map_err(io::Error::other)?;
                    self.zip.write_all(b"\n")?;
                }
                self.summary.telemetry += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() as i64 == EXPORT_PAGE => {
                        after = Some((last.telemetry.ts_ms, last.id));
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

/// Moves what a writer buffered into the archive once it holds a chunk.
fn drain<W: Write + Seek>(buffer: &mut Vec<u8>, zip: &mut ZipWriter<W>) -> io::Result<()> {
    if buffer.len() >= CHUNK {
        zip.write_all(buffer)?;
        buffer.clear();
    }
    Ok(())
}

fn geojson_buffer(writer: &mut GeoJsonWriter<Vec<u8>>) -> &mut Vec<u8> {
    writer.get_mut()
}

fn gpx_buffer(writer: &mut GpxWriter<Vec<u8>>) -> &mut Vec<u8> {
    writer.get_mut()
}

fn csv_buffer(writer: &mut CsvWriter<Vec<u8>>) -> &mut Vec<u8> {
    writer.get_mut()
}

/// A stored location as the writers of `mytracks-formats` take it.
pub fn point(l: &LocationRow) -> ExportPoint<'_> {
    ExportPoint {
        id: l.id,
        device_id: l.device_id,
        tst: l.tst,
        lat: l.lat,
        lon: l.lon,
        acc: l.acc,
        alt: l.alt,
        vac: l.vac,
        vel: l.vel,
        cog: l.cog,
        batt: l.batt,
        tid: l.tid.as_deref(),
    }
}

/// Unix seconds as RFC 3339.
fn timestamp(seconds: i64) -> String {
    crate::time::timestamp(seconds)
}

/// A stored payload as JSON (text that is not JSON stays a string).
fn payload(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Members of a phone's configuration dump that hold secrets (its MQTT password, the
/// payload key, TLS passphrases and client certificates): left out of the export.
const CONFIGURATION_SECRETS: [&str; 8] = [
    "password",
    "secret",
    "key",
    "token",
    "passphrase",
    "crt",
    "pkcs",
    "cert",
];

/// `text` without the `user:password@` of a URL (HTTP mode's `url` may carry them).
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

/// A kept message's payload as exported: a `configuration` dump without its secrets.
pub(crate) fn message_payload(kind: &str, raw: &str) -> String {
    if kind != "configuration" {
        return raw.to_owned();
    }
    let Ok(Value::Object(mut members)) = serde_json::from_str::<Value>(raw) else {
        return "{\"_type\":\"configuration\"}".to_owned();
    };
    members.retain(|name, _| {
        let name = name.to_ascii_lowercase();
        !CONFIGURATION_SECRETS
            .iter()
            .any(|secret| name.contains(secret))
    });
    for value in members.values_mut() {
        if let Value::String(text) = value {
            *text = without_userinfo(text);
        }
    }
    Value::Object(members).to_string()
}

/// `name` as one path component of the archive: no separator (`/`, `\`), no control
/// character, not `.` or `..`, so no unpacked file lands outside its folder.
pub(crate) fn path_component(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

/// The devices with a file name each, unique even on a case-insensitive file system.
fn unique_files(devices: Vec<Device>) -> Vec<ExportDevice> {
    let mut taken = HashSet::new();
    devices
        .into_iter()
        .map(|device| {
            let mut file = path_component(&device.name);
            if !taken.insert(file.to_lowercase()) {
                file = format!("{file}~{}", device.id);
                taken.insert(file.to_lowercase());
            }
            ExportDevice { device, file }
        })
        .collect()
}

fn devices_json(devices: &[ExportDevice]) -> Value {
    let listed: Vec<Value> = devices
        .iter()
        .map(|d| {
            let device = &d.device;
            json!({
                "name": device.name,
                "display_name": device.display_name,
                "tid": device.tid,
                "transport": device.transport,
                "online": device.online,
                "last_seen": device.last_seen.map(timestamp),
                "offline_since": device.offline_since.map(timestamp),
                "created_at": timestamp(device.created_at),
                "payload_encryption_key_set": device.encryption_key.is_some(),
                "files": d.file,
            })
        })
        .collect();
    Value::Array(listed)
}

/// What each file is and how to bring the data back.
fn readme(user: &User, folder: &str) -> String {
    format!(
        "Everything the account {user} has on this mytracks server, exported {now} UTC.\n\
         \n\
         profile.json          the account: names, email, settings (never a password hash,\n\
                               token, key or credential)\n\
         devices.json          the OwnTracks devices; `files` is the name of their files below\n\
         shares.json           shares given (you let someone see you) and received, with\n\
                               `history` when the viewer may see the history too\n\
         cards.json            your card (name, picture) as the phones sent it\n\
         locations/D.geojson   every location of device D (GeoJSON FeatureCollection)\n\
         locations/D.gpx       the same as a GPX 1.1 track\n\
         locations/D.csv       the same as CSV (user,device,tst,timestamp,lat,lon,...)\n\
         transitions/D.json    region enter/leave events of device D\n\
         waypoints/D.json      the regions of device D\n\
         messages/D.jsonl      other messages device D sent (status, steps, beacons,\n\
                               configuration dumps without their secrets), one per line\n\
         iot/devices.json      your IoT devices (their credentials are not exported)\n\
         iot/telemetry/X.jsonl the telemetry of IoT device X, one message per line\n\
         \n\
         rec/, last/, cards/, waypoints/USER/  the same history as an OwnTracks Recorder\n\
         store: rec/<user>/<device>/YYYY-MM.rec (locations, transitions and messages as the\n\
         Recorder writes them, with the payloads as the phones sent them), last/ (each\n\
         device's last position), cards/<user>/<user>.json, waypoints/<user>/<device>/\n\
         <user>-<device>.otrw (the regions).\n\
         \n\
         To bring the history back into mytracks (this server or another), unpack the\n\
         archive and run\n\
         \n\
             mytracks import recorder {folder} --create-users\n\
         \n\
         (or `--user-map {user}=NEWNAME` to import into another account). Importing twice adds\n\
         nothing. An OwnTracks Recorder can serve the same folder as its store. The time a\n\
         location was received is not part of the Recorder format; shares and IoT data are\n\
         not imported back (they are here to read).\n",
        user = user.username,
        now = timestamp(mytracks_store::now()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_stay_in_their_folder() {
        assert_eq!(path_component("phone"), "phone");
        assert_eq!(path_component(".."), "_..");
        assert_eq!(path_component("."), "_.");
        assert_eq!(path_component("a\\b:c\u{1}"), "a_b_c_");
        assert_eq!(path_component("Téléphone 2"), "Téléphone 2");
    }

    #[test]
    fn configuration_dumps_lose_their_secrets() {
        let raw = r#"{"_type":"configuration","host":"h","password":"p","encryptionKey":"k","tlsClientCrtPassword":"x","auth":true}"#;
        let kept: Value = serde_json::from_str(&message_payload("configuration", raw)).unwrap();
        assert_eq!(
            kept,
            json!({"_type":"configuration","host":"h","auth":true})
        );
        assert_eq!(
            message_payload("status", r#"{"password":1}"#),
            r#"{"password":1}"#
        );
        assert_eq!(
            message_payload("configuration", "x"),
            r#"{"_type":"configuration"}"#
        );
        // Client certificates, and the credentials of an HTTP-mode URL.
        let raw = r#"{"_type":"configuration","tlsClientCrt":"MIIC","clientpkcs":"p12","url":"https://alice:pw@example.org/pub?u=a","host":"mqtt://example.org"}"#;
        let kept: Value = serde_json::from_str(&message_payload("configuration", raw)).unwrap();
        assert_eq!(
            kept,
            json!({"_type":"configuration","url":"https://example.org/pub?u=a","host":"mqtt://example.org"})
        );
    }
}
