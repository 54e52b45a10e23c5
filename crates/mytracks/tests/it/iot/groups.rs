//! Groups (one owner each) and a device's retained configuration.

use super::*;

/// Two users registering devices into the same new groups at the same moment: each group
/// still ends up with one owner (the check and the write are not interleaved).
#[test]
fn one_owner_per_group_under_concurrent_registrations() {
    let server = Server::with_config("");
    let bob = server.user_api("bob");
    let carol = server.user_api("carol");
    std::thread::scope(|scope| {
        for (api, name) in [(&bob, "bob"), (&carol, "carol")] {
            scope.spawn(move || {
                for i in 0..20 {
                    let (status, body) = api.post(
                        "/api/iot/devices/",
                        json!({ "device_id": format!("{name}-{i}"), "group": format!("g{i}") }),
                    );
                    assert!(status == 201 || status == 409, "{status} {body}");
                }
            });
        }
    });
    let (_, all) = server.admin_api().get("/api/iot/devices/");
    let mut owners: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for device in all.as_array().unwrap() {
        owners
            .entry(device["group"].as_str().unwrap().to_owned())
            .or_default()
            .insert(device["owner"].as_str().unwrap().to_owned());
    }
    assert_eq!(owners.len(), 20, "every group got a device: {owners:?}");
    assert!(
        owners.values().all(|o| o.len() == 1),
        "a group with two owners: {owners:?}"
    );
}

/// A device's configuration over REST: set as the retained message on its `config` topic, so a
/// connected device gets it at once and one connecting later on subscribing; read back; cleared.
#[test]
fn device_configuration_is_retained_on_its_config_topic() {
    let server = Server::with_config("");
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "valve-9" }));
    assert_eq!(status, 201, "{device}");
    let secret = device["password"].as_str().unwrap().to_owned();
    let topic = "iot/devices/valve-9/config";
    let as_device = ["-u", "valve-9", "-P", &secret, "-t", topic];
    let mut live = Subscriber::start(server.mqtt_port, &as_device);

    let path = "/api/iot/devices/valve-9/config/";
    assert_eq!(alice.get(path).1["config"], json!(null), "none yet");
    let config = json!({ "interval": 30, "mode": "eco" });
    let (status, body) = alice.call("PUT", path, Some(config.clone()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["topic"].as_str(), &body["config"]),
        (Some(topic), &config)
    );
    assert!(live.wait_messages(1, WAIT), "{}", server.context());
    let delivered: serde_json::Value = serde_json::from_str(&live.messages()[0].payload).unwrap();
    assert_eq!(delivered, config);
    assert_eq!(alice.get(path).1["config"], config);

    // A device connecting later gets it on subscribing (retained).
    let mut later = as_device.to_vec();
    later.extend(["-C", "1", "-W", "5", "-i", "valve-9-later"]);
    let out = mosquitto_sub(server.mqtt_port, &later);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(out.stdout.trim()).unwrap(),
        config
    );

    // Only objects; only the owner (and admins).
    let (status, _) = alice.call("PUT", path, Some(json!([1, 2])));
    assert_eq!(status, 400);
    assert_eq!(bob.get(path).0, 404);
    assert_eq!(bob.call("PUT", path, Some(json!({}))).0, 404);

    // Cleared: nothing retained any more.
    assert_eq!(alice.delete(path).0, 204);
    assert_eq!(alice.get(path).1["config"], json!(null));
    let mut after = as_device.to_vec();
    after.extend(["-C", "1", "-W", "1", "-i", "valve-9-after"]);
    let out = mosquitto_sub(server.mqtt_port, &after);
    assert!(
        out.stdout.trim().is_empty(),
        "still retained: {}",
        out.describe()
    );
}
