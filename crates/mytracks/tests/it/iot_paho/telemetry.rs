//! Telemetry, stored when acknowledged.

use super::*;

/// 50 QoS 1 readings, each sent after the previous PUBACK: since the server acknowledges after
/// the commit, all of them are queryable the moment the device is done (no polling), in
/// order, with their values and topic suffix; `latest/` shows the last one.
fn telemetry(protocol: &str) {
    const COUNT: u64 = 50;
    let platform = Platform::start();
    let sensor = platform.register("thermo-1", None);
    let mut device = Simulator::spawn(
        &platform,
        &sensor,
        &[
            "--protocol",
            protocol,
            "--telemetry",
            &COUNT.to_string(),
            "--suffix",
            "climate/indoor",
            "--then",
            "exit",
        ],
    );
    let done = device.wait_event("telemetry done", |e| e["event"] == "telemetry_done");
    device.finish();
    assert_eq!(
        done["failed"],
        json!([]),
        "every PUBACK is a success: {done}"
    );
    let codes: Vec<Value> = device
        .events("telemetry")
        .iter()
        .map(|e| e["reason_code"].clone())
        .collect();
    assert_eq!(codes.len() as u64, COUNT);
    // Success, or MQTT 5's 0x10 No matching subscribers (nobody else listens: the server
    // itself takes the reading).
    assert!(
        codes
            .iter()
            .all(|c| *c == 0 || *c == NO_MATCHING_SUBSCRIBERS),
        "PUBACK reason codes: {codes:?}"
    );

    let data = platform.telemetry(&sensor.id);
    assert_eq!(
        data["count"], COUNT,
        "all acknowledged readings are stored: {data}"
    );
    let rows = data["telemetry"].as_array().unwrap();
    for (seq, row) in rows.iter().enumerate() {
        assert_eq!(row["topic"], "climate/indoor", "row {seq}: {row}");
        assert_eq!(
            row["data"],
            expected_reading(seq as u64),
            "row {seq}: {row}"
        );
    }
    let times: Vec<i64> = rows.iter().map(|r| r["ts_ms"].as_i64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in arrival order: {times:?}"
    );

    let latest = platform.get(&format!("/api/iot/devices/{}/telemetry/latest/", sensor.id));
    assert_eq!(
        latest["latest"],
        json!([{
            "topic": "climate/indoor",
            "data": expected_reading(COUNT - 1),
            "time": rows[rows.len() - 1]["time"],
            "ts_ms": rows[rows.len() - 1]["ts_ms"],
        }]),
        "{latest}"
    );
    assert!(
        latest["last_seen"].is_string(),
        "telemetry marks the device seen: {latest}"
    );
}

#[test]
fn telemetry_qos1_stored_when_acknowledged_v5() {
    telemetry("v5");
}

#[test]
fn telemetry_qos1_stored_when_acknowledged_v311() {
    telemetry("v311");
}
