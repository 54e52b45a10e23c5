//! The clients' traffic: publishers (a patched template per message, a window of
//! unacknowledged ones) and subscribers (timing each delivery from its stamp).

use super::{pattern, stop_check, wall_nanos, Shared, BATCH, MAGIC, STAMP_LEN};
use crate::bench::{closed_by, packets, ping_timer};
use anyhow::bail;
use hdrhistogram::Histogram;
use mytracks_codec::{
    decode, encode, BytesMut, DecodeLimits, Packet, Properties, ProtocolVersion, PubResponse,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use mytracks_mqtt_client::Io;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One encoded PUBLISH and where its packet identifier and timestamp sit, so that each
/// message costs two small copies instead of an encode.
struct Template {
    bytes: Vec<u8>,
    packet_id_at: Option<usize>,
    stamp_at: Option<usize>,
}

impl Template {
    fn new(topic: &str, size: usize, qos: QoS, version: ProtocolVersion) -> anyhow::Result<Self> {
        let mut payload = vec![b'x'; size];
        let stamped = size >= STAMP_LEN;
        if stamped {
            payload[..4].copy_from_slice(MAGIC);
        }
        let packet_id = if qos == QoS::AtMostOnce { 0 } else { 1 };
        let mut out = BytesMut::new();
        encode(
            &Packet::Publish(Publish::new(topic.to_owned(), payload, qos, packet_id)),
            version,
            &mut out,
        )?;
        let payload_at = out.len() - size;
        // v5: an empty property length (one byte) sits between the packet id and the payload.
        let properties = usize::from(version == ProtocolVersion::V5);
        Ok(Template {
            packet_id_at: (qos != QoS::AtMostOnce).then(|| payload_at - properties - 2),
            stamp_at: stamped.then_some(payload_at + 4),
            bytes: out.to_vec(),
        })
    }

    /// Appends one message with this packet id and send time.
    fn push(&self, out: &mut BytesMut, packet_id: u16, wall_ns: u64) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(at) = self.packet_id_at {
            out[start + at..start + at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        if let Some(at) = self.stamp_at {
            out[start + at..start + at + 8].copy_from_slice(&wall_ns.to_be_bytes());
        }
    }
}

pub(super) async fn publisher(
    shared: &Shared,
    index: usize,
    mut io: Box<dyn Io>,
    histogram: &Mutex<Histogram<u64>>,
) -> anyhow::Result<()> {
    let args = &shared.args;
    let qos = QoS::from_u8(args.qos).expect("0..=2");
    let topic = pattern(args.topic.as_deref().unwrap_or("bench/%i"), index);
    let template = Template::new(&topic, args.size, qos, shared.version)?;
    let limits = DecodeLimits::new(shared.version);
    let window = if qos == QoS::AtMostOnce {
        u64::MAX
    } else {
        u64::from(args.inflight)
    };
    // Send times by packet identifier (nanoseconds since the shared epoch).
    let mut sent_at = vec![0u64; if qos == QoS::AtMostOnce { 0 } else { 65_536 }];
    let mut next_id: u16 = 0;
    let mut inflight = 0u64;
    let mut sent = 0u64;
    let started = Instant::now();
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(template.bytes.len() * BATCH);
    let mut ping = ping_timer(args.keepalive);
    let counters = &shared.counters;
    while !shared.stopped() {
        // How many are due now (by the rate) and allowed (by the window).
        let due = if args.rate > 0.0 {
            let target = (started.elapsed().as_secs_f64() * args.rate) as u64 + 1;
            target.saturating_sub(sent)
        } else {
            BATCH as u64
        };
        let can = due.min(window - inflight.min(window)).min(BATCH as u64);
        if can > 0 {
            let now_wall = wall_nanos();
            let now = shared.since_epoch_ns();
            for _ in 0..can {
                if qos != QoS::AtMostOnce {
                    next_id = next_id % 65_535 + 1;
                    sent_at[usize::from(next_id)] = now;
                }
                template.push(&mut out, next_id, now_wall);
            }
            sent += can;
            inflight += if qos == QoS::AtMostOnce { 0 } else { can };
            counters.published.fetch_add(can, Ordering::Relaxed);
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
        if inbuf.capacity() - inbuf.len() < 1024 {
            inbuf.reserve(4 * 1024);
        }
        // Read whatever came back; wait when nothing may be sent now.
        let must_wait = can == 0;
        let pause = if args.rate > 0.0 && inflight < window {
            let next = (sent as f64) / args.rate;
            Duration::from_secs_f64((next - started.elapsed().as_secs_f64()).max(0.0))
        } else {
            Duration::from_millis(100)
        };
        let read = if must_wait {
            tokio::select! {
                read = io.read_buf(&mut inbuf) => Some(read?),
                _ = tokio::time::sleep(pause) => None,
                _ = ping.tick() => {
                    encode(&Packet::PingReq, shared.version, &mut out)?;
                    None
                }
            }
        } else if qos != QoS::AtMostOnce {
            // Acknowledgements are waiting or not: look without blocking.
            match futures_util::FutureExt::now_or_never(io.read_buf(&mut inbuf)) {
                Some(read) => Some(read?),
                None => None,
            }
        } else {
            None
        };
        if read == Some(0) {
            bail!("the broker closed the connection");
        }
        if read.is_some() {
            Acks {
                shared,
                sent_at: &sent_at,
                inflight: &mut inflight,
                histogram,
                out: &mut out,
            }
            .take(&mut inbuf, &limits)?;
        }
        if qos == QoS::AtMostOnce && args.rate == 0.0 {
            // QoS 0 at full speed never waits, so pings go out between batches.
            if futures_util::FutureExt::now_or_never(ping.tick()).is_some() {
                encode(&Packet::PingReq, shared.version, &mut out)?;
            }
        }
    }
    // The run is over: collect the acknowledgements still owed (QoS 2: answering PUBREC),
    // so that the summary's published and acknowledged agree.
    let mut acks = Acks {
        shared,
        sent_at: &sent_at,
        inflight: &mut inflight,
        histogram,
        out: &mut out,
    };
    acks.collect_owed(&mut io, &mut inbuf, &limits).await
}

/// What a publisher does with the broker's replies, in its main loop and in the end-of-run
/// drain alike: counts and times each PUBACK/PUBCOMP against its send time, answers PUBREC
/// with PUBREL (into `out`), and stops at a refused publish or any unexpected packet.
struct Acks<'a> {
    shared: &'a Shared,
    /// Send times by packet identifier (nanoseconds since the shared epoch).
    sent_at: &'a [u64],
    inflight: &'a mut u64,
    histogram: &'a Mutex<Histogram<u64>>,
    out: &'a mut BytesMut,
}

impl Acks<'_> {
    /// Reads and handles replies until nothing is in flight, for two seconds at most.
    async fn collect_owed(
        &mut self,
        io: &mut Box<dyn Io>,
        inbuf: &mut BytesMut,
        limits: &DecodeLimits,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while *self.inflight > 0 {
            let read = tokio::time::timeout_at(deadline, io.read_buf(inbuf)).await;
            let Ok(read) = read else { break };
            if read? == 0 {
                break;
            }
            self.take(inbuf, limits)?;
            if !self.out.is_empty() {
                io.write_all(self.out).await?;
                self.out.clear();
            }
        }
        Ok(())
    }

    /// Handles every complete packet in `inbuf`.
    fn take(&mut self, inbuf: &mut BytesMut, limits: &DecodeLimits) -> anyhow::Result<()> {
        let now = self.shared.since_epoch_ns();
        let mut histogram = self.histogram.lock();
        for packet in packets(inbuf, limits)? {
            match packet {
                Packet::PubAck(ack) | Packet::PubComp(ack) => {
                    *self.inflight = self.inflight.saturating_sub(1);
                    self.shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                    let at = self
                        .sent_at
                        .get(usize::from(ack.packet_id))
                        .copied()
                        .unwrap_or(now);
                    histogram.saturating_record(((now - at.min(now)) / 1_000).max(1));
                    if ack.reason.is_error() {
                        bail!("publish refused: {}", ack.reason);
                    }
                }
                Packet::PubRec(rec) => {
                    if rec.reason.is_error() {
                        bail!("publish refused: {}", rec.reason);
                    }
                    encode(
                        &Packet::PubRel(PubResponse::new(rec.packet_id)),
                        self.shared.version,
                        self.out,
                    )?;
                }
                Packet::PingResp => {}
                other => return Err(closed_by(&other)),
            }
        }
        Ok(())
    }
}

pub(super) async fn subscriber(
    shared: &Shared,
    index: usize,
    mut io: Box<dyn Io>,
    histogram: &Mutex<Histogram<u64>>,
) -> anyhow::Result<()> {
    let args = &shared.args;
    let qos = QoS::from_u8(args.qos).expect("0..=2");
    let filter = pattern(args.topic.as_deref().unwrap_or("bench/#"), index);
    let limits = DecodeLimits::new(shared.version);
    let mut out = BytesMut::new();
    encode(
        &Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(filter.clone().into(), SubscriptionOptions::with_qos(qos))],
            properties: Properties::default(),
        }),
        shared.version,
        &mut out,
    )?;
    io.write_all(&out).await?;
    out.clear();
    let mut inbuf = BytesMut::with_capacity(128 * 1024);
    let mut ping = ping_timer(args.keepalive);
    let mut stop_check = stop_check();
    let counters = &shared.counters;
    while !shared.stopped() {
        // Room for a large read: decoding leaves the buffer full to its capacity, and a full
        // `BytesMut` would otherwise offer reads of 64 bytes. Asking for a quarter of the
        // allocation lets `reserve` move the partial packet to the front instead of
        // allocating (the decoded payloads that shared the buffer are gone by now).
        if inbuf.capacity() - inbuf.len() < 8 * 1024 {
            inbuf.reserve(32 * 1024);
        }
        tokio::select! {
            read = io.read_buf(&mut inbuf) => {
                if read? == 0 {
                    bail!("the broker closed the connection");
                }
            }
            _ = ping.tick() => {
                encode(&Packet::PingReq, shared.version, &mut out)?;
            }
            _ = stop_check.tick() => {}
        }
        let mut received = 0;
        {
            let now_wall = wall_nanos();
            let mut histogram = histogram.lock();
            while let Some(packet) = decode(&mut inbuf, &limits)? {
                match packet {
                    Packet::Publish(publish) => {
                        received += 1;
                        let payload = &publish.payload;
                        if payload.len() >= STAMP_LEN && &payload[..4] == MAGIC {
                            let mut stamp = [0u8; 8];
                            stamp.copy_from_slice(&payload[4..12]);
                            let sent = u64::from_be_bytes(stamp);
                            histogram
                                .saturating_record((now_wall.saturating_sub(sent) / 1_000).max(1));
                        }
                        match publish.qos {
                            QoS::AtMostOnce => {}
                            QoS::AtLeastOnce => encode(
                                &Packet::PubAck(PubResponse::new(publish.packet_id)),
                                shared.version,
                                &mut out,
                            )?,
                            QoS::ExactlyOnce => encode(
                                &Packet::PubRec(PubResponse::new(publish.packet_id)),
                                shared.version,
                                &mut out,
                            )?,
                        }
                    }
                    Packet::PubRel(rel) => encode(
                        &Packet::PubComp(PubResponse::new(rel.packet_id)),
                        shared.version,
                        &mut out,
                    )?,
                    Packet::SubAck(ack) => {
                        if let Some(reason) = ack.reasons.iter().find(|r| r.is_error()) {
                            bail!("subscription to {filter} refused: {reason}");
                        }
                    }
                    Packet::PingResp => {}
                    other => return Err(closed_by(&other)),
                }
            }
        }
        counters.received.fetch_add(received, Ordering::Relaxed);
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_patch_packet_id_and_stamp_for_every_version() {
        for version in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let template = Template::new("bench/7", 40, qos, version).unwrap();
                let mut out = BytesMut::new();
                template.push(&mut out, 513, 0x0102_0304_0506_0708);
                let packet = decode(&mut out, &DecodeLimits::new(version))
                    .unwrap()
                    .unwrap();
                let Packet::Publish(publish) = packet else {
                    panic!("{packet:?}")
                };
                assert_eq!(&*publish.topic, "bench/7");
                assert_eq!(publish.qos, qos);
                if qos != QoS::AtMostOnce {
                    assert_eq!(publish.packet_id, 513, "{version:?} {qos:?}");
                }
                assert_eq!(&publish.payload[..4], MAGIC);
                assert_eq!(
                    publish.payload[4..12],
                    0x0102_0304_0506_0708u64.to_be_bytes()
                );
                assert_eq!(publish.payload.len(), 40);
            }
        }
    }
}
