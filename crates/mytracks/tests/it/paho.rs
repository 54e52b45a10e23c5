//! MQTT 3.1.1 / 5.0 behaviour checked with paho-mqtt 2.x: each test runs one scenario of
//! tests/python/mqtt_scenarios.py against its own server (see the scenario's docstring for
//! exactly what it checks).

use crate::support::*;
use std::thread;
use std::time::Duration;

fn scenario(name: &str, args: &[&str]) {
    let server = Server::start();
    assert_scenario(&server, name, args);
}

fn v311(name: &str) {
    scenario(name, &["--protocol", "v311"]);
}

fn v5(name: &str) {
    scenario(name, &["--protocol", "v5"]);
}

#[test]
fn will_v311() {
    v311("will");
}

#[test]
fn will_v5() {
    v5("will");
}

#[test]
fn keepalive_timeout_publishes_will_v311() {
    v311("keepalive_will");
}

#[test]
fn keepalive_timeout_publishes_will_v5() {
    v5("keepalive_will");
}

#[test]
fn will_delay_interval() {
    v5("will_delay");
}

#[test]
fn will_delay_cancelled_by_reconnect() {
    v5("will_delay_cancel");
}

#[test]
fn will_sent_at_session_expiry_before_will_delay() {
    v5("will_session_expiry");
}

#[test]
fn qos2_exactly_once_v311() {
    v311("qos2");
}

#[test]
fn qos2_exactly_once_v5() {
    v5("qos2");
}

#[test]
fn shared_subscriptions() {
    v5("shared");
}

#[test]
fn topic_aliases_from_client() {
    v5("topic_alias");
}

#[test]
fn subscription_identifiers_on_overlapping_subscriptions() {
    v5("subscription_ids");
}

#[test]
fn overlapping_subscriptions_one_delivery_max_qos_v311() {
    v311("overlap");
}

#[test]
fn overlapping_subscriptions_one_delivery_max_qos_v5() {
    v5("overlap");
}

#[test]
fn client_receive_maximum_is_respected() {
    v5("receive_maximum");
}

#[test]
fn message_expiry() {
    v5("message_expiry");
}

#[test]
fn retain_handling() {
    v5("retain_handling");
}

#[test]
fn no_local() {
    v5("no_local");
}

#[test]
fn retain_as_published() {
    v5("retain_as_published");
}

#[test]
fn user_properties_response_topic_correlation_data_forwarded() {
    v5("properties");
}

#[test]
fn wildcard_in_publish_topic_disconnects_with_0x90() {
    v5("bad_topic");
}

#[test]
fn client_maximum_packet_size_is_respected() {
    v5("client_max_packet");
}

#[test]
fn connack_assigned_client_id_and_server_keep_alive() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nmax_keepalive = 60\n");
    assert_scenario(&server, "connack_v5", &[]);
}

/// Phase `before`, optional broker restart, phase `after` (see `scenario_session_resume`).
fn session_resume(protocol: &str, restart: Option<Stop>) {
    let mut server = Server::start();
    let id = format!("resume-{protocol}");
    let args = |phase: &'static str| {
        ["--protocol", protocol, "--id", &id, "--phase", phase].map(String::from)
    };
    let before = args("before");
    let before: Vec<&str> = before.iter().map(String::as_str).collect();
    assert_scenario(&server, "session_resume", &before);
    match restart {
        None => {}
        Some(Stop::Term) => server.restart(Stop::Term),
        Some(Stop::Kill) => {
            // State is persisted every 100 ms: give it time, then crash.
            thread::sleep(Duration::from_millis(500));
            server.restart(Stop::Kill);
        }
    }
    let after = args("after");
    let after: Vec<&str> = after.iter().map(String::as_str).collect();
    assert_scenario(&server, "session_resume", &after);
}

#[test]
fn session_resume_v311() {
    session_resume("v311", None);
}

#[test]
fn session_resume_v5() {
    session_resume("v5", None);
}

#[test]
fn session_resume_across_sigterm_restart_v311() {
    session_resume("v311", Some(Stop::Term));
}

#[test]
fn session_resume_across_sigterm_restart_v5() {
    session_resume("v5", Some(Stop::Term));
}

#[test]
fn session_resume_across_sigkill_restart_v311() {
    session_resume("v311", Some(Stop::Kill));
}

#[test]
fn session_resume_across_sigkill_restart_v5() {
    session_resume("v5", Some(Stop::Kill));
}
