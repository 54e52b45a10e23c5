//! `mytracks bench`: MQTT load generators.
//!
//! * `pub`, `sub`, `conn` (in [`load`]): emqtt-bench-like, against any broker, with a line
//!   per second, HDR-histogram latencies and `--json`.
//! * `fleet` (in [`fleet`]): mytracks' IoT fleet commands, timed from the REST request to
//!   the last of `--count` devices.
//!
//! The scenarios below are fixed shapes for `bench/*.sh`; they speak TLS (with client
//! certificates), so TLS can be measured next to plain TCP with the same tool (the
//! workplace's neutral generator, `mqttload`, has no TLS). Results print as one
//! `RESULT key=value ...` line.
//!
//! * `fanin`: N publishers send QoS 0 messages as fast as they can to one subscriber on
//!   `bench/#`; reports messages delivered per second after a warm-up.
//! * `connect`: new connections per second (TCP, TLS handshake with the client certificate,
//!   CONNECT/CONNACK, DISCONNECT), K at a time.

pub mod fleet;
pub mod load;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use mytracks_codec::{
    decode, encode, BytesMut, Connect, DecodeLimits, Packet, Properties, ProtocolVersion, Publish,
    QoS, Subscribe, SubscriptionOptions,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Clients publishing to `--topic` at `--rate` each (emqtt-bench's `pub`).
    // `--version` is the MQTT version here, as in emqtt-bench.
    #[command(disable_version_flag = true)]
    Pub(load::LoadArgs),
    /// Clients subscribed to `--topic`, counting and timing what arrives.
    // `--version` is the MQTT version here, as in emqtt-bench.
    #[command(disable_version_flag = true)]
    Sub(load::LoadArgs),
    /// Clients connecting at `--connect-rate` and staying connected.
    // `--version` is the MQTT version here, as in emqtt-bench.
    #[command(disable_version_flag = true)]
    Conn(load::LoadArgs),
    /// IoT: registers `--count` devices in a group (REST API), connects and subscribes each as
    /// itself, sends a fleet command and times it until every device has it.
    // `--version` is the MQTT version here, as in the load generators.
    #[command(disable_version_flag = true)]
    Fleet(fleet::FleetArgs),
    /// Scenario: N publishers, QoS 0 as fast as possible, to one subscriber on `bench/#`.
    Fanin(BenchArgs),
    /// Scenario: new connections per second (TCP or TLS, CONNECT/CONNACK, DISCONNECT).
    Connect(BenchArgs),
    /// Scenario: OwnTracks locations at `--rate` per second over MQTT, timed until they
    /// arrive on the live feed (`/ws/locations/?token=`): ingest, commit and WebSocket
    /// fan-out together.
    Feed(BenchArgs),
    /// Scenario: a day of 1 Hz locations (86,400, QoS 1, all acknowledged) for device `day`
    /// of `--user`, starting at `--start` (Unix seconds), for the history benchmark.
    Day(BenchArgs),
}

/// Options of the fixed scenarios.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    /// Connect with TLS, trusting this CA.
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Client certificate and key for TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server name to verify (default: the host).
    #[arg(long)]
    pub server_name: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub pubs: usize,
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// MQTT username and password (`feed`: the account whose locations are published).
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// `feed`: the HTTP port and an API token of the same account.
    #[arg(long)]
    pub http_port: Option<u16>,
    #[arg(long)]
    pub token: Option<String>,
    /// `feed`: locations per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// `day`: the first timestamp.
    #[arg(long, default_value_t = 1_700_006_400)]
    pub start: i64,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Dialer {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    user: Option<String>,
    password: Option<String>,
}

impl Dialer {
    fn new(args: &BenchArgs) -> anyhow::Result<Dialer> {
        let mut dialer = Dialer::from_parts(
            &args.host,
            args.port,
            args.cafile.as_deref(),
            args.cert.as_deref().zip(args.key.as_deref()),
            args.server_name.as_deref(),
        )?;
        dialer.user = args.user.clone();
        dialer.password = args.password.clone();
        Ok(dialer)
    }

    /// A dialer for `host:port`, with TLS when a CA file is given (and a client certificate
    /// and key when those are).
    fn from_parts(
        host: &str,
        port: u16,
        cafile: Option<&Path>,
        client: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> anyhow::Result<Dialer> {
        let tls = match cafile {
            None => None,
            Some(cafile) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(cafile).context("CA file")? {
                    roots.add(cert.context("CA file")?)?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let builder = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots);
                let config = match client {
                    Some((cert, key)) => {
                        let certs = CertificateDer::pem_file_iter(cert)
                            .context("certificate file")?
                            .collect::<Result<Vec<_>, _>>()?;
                        let key = PrivateKeyDer::from_pem_file(key).context("key file")?;
                        builder.with_client_auth_cert(certs, key)?
                    }
                    None => builder.with_no_client_auth(),
                };
                let name = server_name.unwrap_or(host).to_owned();
                let name = ServerName::try_from(name).context("server name")?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
        };
        Ok(Dialer {
            host: host.to_owned(),
            port,
            tls,
            user: None,
            password: None,
        })
    }

    /// A connected MQTT 3.1.1 client (CONNACK received) with the dialer's credentials.
    async fn connect(&self, client_id: &str) -> anyhow::Result<Box<dyn Io>> {
        self.connect_as(
            client_id,
            self.user.as_deref(),
            self.password.as_deref(),
            ProtocolVersion::V3_1_1,
            60,
        )
        .await
    }

    /// A connected client of `version` (CONNACK received), clean session.
    async fn connect_as(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&str>,
        version: ProtocolVersion,
        keep_alive: u16,
    ) -> anyhow::Result<Box<dyn Io>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let mut io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await?),
        };
        let connect = Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive,
            client_id: client_id.to_owned().into(),
            will: None,
            username: username.map(|u| u.to_owned().into()),
            password: password.map(|p| p.as_bytes().to_vec().into()),
            properties: Properties::default(),
        }));
        let mut out = BytesMut::new();
        encode(&connect, version, &mut out)?;
        io.write_all(&out).await?;
        let mut buf = BytesMut::new();
        let limits = DecodeLimits::new(version);
        let packet = loop {
            if let Some(packet) = decode(&mut buf, &limits)? {
                break packet;
            }
            if io.read_buf(&mut buf).await? == 0 {
                bail!("the broker closed the connection before CONNACK");
            }
        };
        match packet {
            Packet::ConnAck(ack) if !ack.reason.is_error() => Ok(io),
            Packet::ConnAck(ack) => bail!("connection refused: {}", ack.reason),
            other => bail!("expected CONNACK, got {}", other.name()),
        }
    }
}

/// The protocol of `--version` 3, 4 or 5 (emqtt-bench's numbering: the protocol level).
fn protocol_version(version: u8) -> ProtocolVersion {
    match version {
        3 => ProtocolVersion::V3_1,
        4 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    }
}

async fn send(io: &mut Box<dyn Io>, packet: &Packet) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    encode(packet, ProtocolVersion::V3_1_1, &mut out)?;
    io.write_all(&out).await?;
    Ok(())
}

async fn recv(io: &mut Box<dyn Io>, buf: &mut BytesMut) -> anyhow::Result<Packet> {
    let limits = DecodeLimits::new(ProtocolVersion::V3_1_1);
    loop {
        if let Some(packet) = decode(buf, &limits)? {
            return Ok(packet);
        }
        buf.reserve(64 * 1024);
        if io.read_buf(buf).await? == 0 {
            bail!("connection closed");
        }
    }
}

/// Runs a benchmark.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    let (mode, args) = match command {
        BenchCommand::Pub(args) => return load::run(load::LoadMode::Pub, args).await,
        BenchCommand::Sub(args) => return load::run(load::LoadMode::Sub, args).await,
        BenchCommand::Conn(args) => return load::run(load::LoadMode::Conn, args).await,
        BenchCommand::Fleet(args) => return fleet::run(args).await,
        BenchCommand::Fanin(args) => ("fanin", args),
        BenchCommand::Connect(args) => ("connect", args),
        BenchCommand::Feed(args) => ("feed", args),
        BenchCommand::Day(args) => ("day", args),
    };
    let dialer = Arc::new(Dialer::new(&args)?);
    let transport = if args.cafile.is_some() { "tls" } else { "tcp" };
    match mode {
        "fanin" => fanin(&args, dialer, transport).await,
        "connect" => connections(&args, dialer, transport).await,
        "feed" => feed(&args, dialer).await,
        _ => day(&args, dialer).await,
    }
}

async fn fanin(args: &BenchArgs, dialer: Arc<Dialer>, transport: &str) -> anyhow::Result<()> {
    let mut subscriber = dialer.connect("bench-sub").await?;
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            "bench/#".into(),
            SubscriptionOptions::with_qos(QoS::AtMostOnce),
        )],
        properties: Properties::default(),
    });
    send(&mut subscriber, &subscribe).await?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = received.clone();
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Ok(packet) = recv(&mut subscriber, &mut buf).await {
            if matches!(packet, Packet::Publish(_)) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..args.pubs {
        let mut io = dialer.connect(&format!("bench-pub-{n}")).await?;
        let stop = stop.clone();
        // One write carries many messages, as a busy device gateway would send them.
        let mut batch = BytesMut::new();
        let publish = Publish::new(
            format!("bench/{n}"),
            vec![b'x'; args.size],
            QoS::AtMostOnce,
            0,
        );
        for _ in 0..64 {
            encode(
                &Packet::Publish(publish.clone()),
                ProtocolVersion::V3_1_1,
                &mut batch,
            )?;
        }
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if io.write_all(&batch).await.is_err() {
                    break;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let start_count = received.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let delivered = received.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    println!(
        "RESULT mode=fanin transport={transport} pubs={} size={} secs={:.1} received_per_s={:.0}",
        args.pubs,
        args.size,
        elapsed,
        delivered as f64 / elapsed
    );
    Ok(())
}

async fn connections(args: &BenchArgs, dialer: Arc<Dialer>, transport: &str) -> anyhow::Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (dialer, done, failed) = (dialer.clone(), done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                match dialer.connect(&format!("bench-conn-{worker}-{n}")).await {
                    Ok(mut io) => {
                        let _ = send(
                            &mut io,
                            &Packet::Disconnect(mytracks_codec::Disconnect::new(
                                mytracks_codec::ReasonCode::SUCCESS,
                            )),
                        )
                        .await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "RESULT mode=connect transport={transport} concurrency={} secs={:.1} connections_per_s={:.0} failed={}",
        args.concurrency,
        elapsed,
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Nanoseconds since the Unix epoch (the feed benchmark's clock, shared by both ends).
fn wall_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn feed(args: &BenchArgs, dialer: Arc<Dialer>) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let (Some(user), Some(http_port), Some(token)) = (&args.user, args.http_port, &args.token)
    else {
        bail!("feed needs --user, --password, --http-port and --token");
    };
    let url = format!("ws://{}:{http_port}/ws/locations/?token={token}", args.host);
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::<f64>::new()));
    let measuring = Arc::new(AtomicBool::new(false));
    let (sink, on) = (latencies.clone(), measuring.clone());
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if event["type"] != "location" || !on.load(Ordering::Relaxed) {
                continue;
            }
            let sent = event["data"]["tag"]
                .as_str()
                .and_then(|t| t.parse::<u128>().ok());
            if let Some(sent) = sent {
                let ms = wall_nanos().saturating_sub(sent) as f64 / 1e6;
                sink.lock().push(ms);
            }
        }
    });
    let io = dialer.connect("bench-feed").await?;
    let topic = format!("owntracks/{user}/benchfeed");
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let total = args.warmup + args.secs;
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    // Read (and drop) what the broker sends so its buffers never fill.
    let (mut reader, mut writer) = tokio::io::split(io);
    tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    while started.elapsed() < Duration::from_secs(total) {
        tick.tick().await;
        if !measuring.load(Ordering::Relaxed)
            && started.elapsed() >= Duration::from_secs(args.warmup)
        {
            measuring.store(true, Ordering::Relaxed);
        }
        let now = wall_nanos();
        let payload = format!(
            r#"{{"_type":"location","lat":52.5,"lon":13.4,"tst":{},"tid":"bf","tag":"{now}"}}"#,
            now / 1_000_000_000
        );
        let publish = Publish::new(topic.clone(), payload.into_bytes(), QoS::AtMostOnce, 0);
        let mut out = BytesMut::new();
        encode(&Packet::Publish(publish), ProtocolVersion::V3_1_1, &mut out)?;
        writer.write_all(&out).await?;
        sent += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = latencies.lock().clone();
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "RESULT mode=feed rate={} secs={} sent={sent} received={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.rate,
        args.secs,
        samples.len(),
        pick(0.5),
        pick(0.99),
        samples.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

async fn day(args: &BenchArgs, dialer: Arc<Dialer>) -> anyhow::Result<()> {
    const POINTS: i64 = 86_400;
    const WINDOW: i64 = 1_000;
    let Some(user) = &args.user else {
        bail!("day needs --user and --password");
    };
    let mut io = dialer.connect("bench-day").await?;
    let topic = format!("owntracks/{user}/day");
    let started = Instant::now();
    let mut buf = BytesMut::new();
    let (mut sent, mut acked) = (0i64, 0i64);
    while acked < POINTS {
        let mut out = BytesMut::new();
        while sent < POINTS && sent - acked < WINDOW {
            let payload = format!(
                r#"{{"_type":"location","lat":{:.6},"lon":13.4,"tst":{},"acc":5,"alt":40,"vel":3,"batt":80,"tid":"dy"}}"#,
                52.5 + sent as f64 * 1e-6,
                args.start + sent
            );
            let packet_id = (sent % 65_000 + 1) as u16;
            let publish = Publish::new(
                topic.clone(),
                payload.into_bytes(),
                QoS::AtLeastOnce,
                packet_id,
            );
            encode(&Packet::Publish(publish), ProtocolVersion::V3_1_1, &mut out)?;
            sent += 1;
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
        }
        if let Packet::PubAck(_) = recv(&mut io, &mut buf).await? {
            acked += 1;
        }
    }
    println!(
        "RESULT mode=day points={POINTS} secs={:.1} acked={acked}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
