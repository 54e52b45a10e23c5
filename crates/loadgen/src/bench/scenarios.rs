//! The fixed scenarios for `bench/*.sh`. They speak TLS (with client certificates), so TLS can
//! be measured next to plain TCP with the same tool (the workplace's neutral generator,
//! `mqttload`, has no TLS). Results print as one `RESULT key=value ...` line.
//!
//! * `fanin`: N publishers send QoS 0 messages as fast as they can to one subscriber on
//!   `bench/#`; reports messages delivered per second after a warm-up.
//! * `connect`: new connections per second (TCP, TLS handshake with the client certificate,
//!   CONNECT/CONNACK, DISCONNECT), K at a time.
//! * `feed`: OwnTracks locations over MQTT, timed until they arrive on the live feed.
//! * `day`: a day of 1 Hz locations, all acknowledged, for the history benchmark.

use crate::tls_args::TlsArgs;
use anyhow::bail;
use clap::Args;
use mytracks_codec::{
    encode, BytesMut, Packet, Properties, ProtocolVersion, Publish, QoS, Subscribe,
    SubscriptionOptions,
};
use mytracks_mqtt_client::{ConnectOptions, Connection, Dialer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Fanin,
    Connect,
    Feed,
    Day,
}

/// Options of the fixed scenarios.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    #[command(flatten)]
    pub tls: TlsArgs,
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

/// The scenarios' clients: MQTT 3.1.1 with `--user`/`--password`.
struct Clients {
    dialer: Dialer,
    user: Option<String>,
    password: Option<String>,
}

impl Clients {
    async fn connect(&self, client_id: &str) -> anyhow::Result<Connection> {
        let options = ConnectOptions {
            username: self.user.as_deref(),
            password: self.password.as_deref(),
            ..ConnectOptions::new(client_id)
        };
        Ok(self.dialer.connect(&options).await?)
    }
}

/// Runs a scenario.
pub async fn run(scenario: Scenario, args: ScenarioArgs) -> anyhow::Result<()> {
    let clients = Arc::new(Clients {
        dialer: Dialer::new(&args.host, args.port, &args.tls.options())?,
        user: args.user.clone(),
        password: args.password.clone(),
    });
    let transport = args.tls.transport();
    match scenario {
        Scenario::Fanin => fanin(&args, clients, transport).await,
        Scenario::Connect => connections(&args, clients, transport).await,
        Scenario::Feed => feed(&args, clients).await,
        Scenario::Day => day(&args, clients).await,
    }
}

async fn fanin(args: &ScenarioArgs, clients: Arc<Clients>, transport: &str) -> anyhow::Result<()> {
    let mut subscriber = clients.connect("bench-sub").await?;
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            "bench/#".into(),
            SubscriptionOptions::with_qos(QoS::AtMostOnce),
        )],
        properties: Properties::default(),
    });
    subscriber.send(&subscribe).await?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok(Some(packet)) = subscriber.receive().await {
            if matches!(packet, Packet::Publish(_)) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..args.pubs {
        let mut io = clients.connect(&format!("bench-pub-{n}")).await?;
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
                if io.io.write_all(&batch).await.is_err() {
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

async fn connections(
    args: &ScenarioArgs,
    clients: Arc<Clients>,
    transport: &str,
) -> anyhow::Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (clients, done, failed) = (clients.clone(), done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                match clients.connect(&format!("bench-conn-{worker}-{n}")).await {
                    Ok(mut io) => {
                        let _ = io
                            .send(&Packet::Disconnect(mytracks_codec::Disconnect::new(
                                mytracks_codec::ReasonCode::SUCCESS,
                            )))
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

async fn feed(args: &ScenarioArgs, clients: Arc<Clients>) -> anyhow::Result<()> {
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
    let io = clients.connect("bench-feed").await?;
    let topic = format!("owntracks/{user}/benchfeed");
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let total = args.warmup + args.secs;
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    // Read (and drop) what the broker sends so its buffers never fill.
    let (mut reader, mut writer) = tokio::io::split(io.io);
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
        // A different position each time: the server stores (and announces) a fix once per
        // device, time and position.
        let payload = format!(
            r#"{{"_type":"location","lat":{:.6},"lon":13.4,"tst":{},"tid":"bf","tag":"{now}"}}"#,
            52.5 + (sent % 100_000) as f64 * 1e-6,
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

async fn day(args: &ScenarioArgs, clients: Arc<Clients>) -> anyhow::Result<()> {
    const POINTS: i64 = 86_400;
    const WINDOW: i64 = 1_000;
    let Some(user) = &args.user else {
        bail!("day needs --user and --password");
    };
    let mut io = clients.connect("bench-day").await?;
    let topic = format!("owntracks/{user}/day");
    let started = Instant::now();
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
            io.io.write_all(&out).await?;
        }
        let Some(packet) = io.receive().await? else {
            bail!("connection closed");
        };
        if let Packet::PubAck(_) = packet {
            acked += 1;
        }
    }
    println!(
        "RESULT mode=day points={POINTS} secs={:.1} acked={acked}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
