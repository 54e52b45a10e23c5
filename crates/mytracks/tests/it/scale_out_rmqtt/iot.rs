//! IoT presence and command delivery from rmqtt's own events (`rmqtt-web-hook`).

use super::*;

/// IoT presence and command delivery from the brokers' own events (`rmqtt-web-hook`, posting
/// to node A): a device on broker node 2 is online on both nodes once connected, a command
/// sent through node A reaches it and its PUBCOMP makes the command `delivered`, and it is
/// offline once its connection is gone. Nothing but the web hook tells mytracks any of this:
/// the device publishes nothing.
#[test]
fn an_iot_device_on_broker_node_2_is_seen_through_the_web_hook() {
    let Some(setup) = Setup::start("rmqtt 7: IoT through the web hook") else {
        return;
    };
    let on_a = login(&setup.a, "alice", ALICE);
    let on_b = login(&setup.b, "alice", ALICE);
    let (status, device) = on_a.post("/api/iot/devices/", json!({ "device_id": "meter-7" }));
    assert_eq!(status, 201, "{device}");
    let password = device["password"].as_str().unwrap().to_owned();
    let online = |api: &Api| {
        let (status, device) = api.get("/api/iot/devices/meter-7/");
        assert_eq!(status, 200, "{device}");
        device["online"] == json!(true)
    };
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        let since = Instant::now();
        while !check() {
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "not within 5 s: {what}\n{}",
                setup.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("[rmqtt 7] {what} after {:?}", since.elapsed());
    };
    assert!(!online(&on_a), "registered, never connected");
    let mut args = as_user("meter-7", &password, "meter-7-link");
    args.extend(["-q", "2", "-t", "iot/devices/meter-7/commands/#"]);
    let mut link = Subscriber::start(setup.cluster.mqtt_port(1), &args);
    eventually("online on node A", &|| online(&on_a));
    eventually("online on node B", &|| online(&on_b));

    let (status, sent) = on_a.post(
        "/api/iot/devices/meter-7/commands/",
        json!({ "command": "reboot" }),
    );
    assert_eq!(status, 201, "{sent}\n{}", setup.logs());
    assert_eq!(sent["status"], "sent", "{sent}");
    let command_id = sent["command_id"].as_str().unwrap().to_owned();
    assert!(
        link.wait_for(|m| m.iter().any(|m| m.payload.contains(&command_id)), WAIT),
        "the device on node 2 got no command: {}\n{}",
        link.finish(Duration::from_millis(100)),
        setup.logs()
    );
    let status_of = |api: &Api| {
        let (_, list) = api.get("/api/iot/devices/meter-7/commands/");
        list.as_array()
            .and_then(|list| list.iter().find(|c| c["command_id"] == command_id.as_str()))
            .map(|c| c["status"].clone())
            .unwrap_or_else(|| panic!("command {command_id} not in {list}"))
    };
    eventually("the command delivered", &|| status_of(&on_a) == "delivered");
    assert_eq!(status_of(&on_b), "delivered");

    link.kill();
    eventually("offline on node A", &|| !online(&on_a));
    assert!(!online(&on_b), "online on node B after going offline on A");

    // Take-overs: the same client id connects again (on the same broker node, then on
    // another) while its first connection is open. The broker ends the first one and
    // reports it after it reported the second's connect, with a time that may be later.
    for (round, node) in [0, 0, 2, 2, 1, 1].into_iter().enumerate() {
        let login = |node: usize| {
            raw::Conn::login(
                setup.cluster.mqtt_port(node),
                4,
                "meter-7-taken-over",
                "meter-7",
                &password,
            )
            .unwrap_or_else(|code| panic!("meter-7 refused: {code}\n{}", setup.logs()))
        };
        let mut first = login(1);
        eventually("online with the first connection", &|| online(&on_a));
        let second = login(node);
        assert!(
            first.expect_close(WAIT).is_ok(),
            "the first connection was not closed by the take-over"
        );
        // The reports of both connections are posted within milliseconds.
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            online(&on_a) && online(&on_b),
            "round {round}: offline after a take-over on broker node {}\n{}",
            node + 1,
            setup.logs()
        );
        drop(second);
        eventually("offline once the second connection is gone", &|| {
            !online(&on_a)
        });
    }
}
