//! Loading from files and the environment, end to end: keys, defaults, precedence and the
//! wording of every error.

use super::*;
use std::io::Write;
use std::time::Duration;

fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let f = file(text);
    load(Some(f.path()), env(vars))
}

#[test]
fn login_limits_and_trusted_proxies() {
    let settings = load_text("", &[]).unwrap();
    assert!(settings.trusted_proxies.is_empty());
    assert_eq!(
        settings.login.max_concurrent,
        mytracks_app::accounts::guard::default_concurrency()
    );
    assert_eq!(settings.login.max_wait, Duration::from_secs(60));
    let settings = load_text(
        "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[login]\nmax_concurrent_password_checks = 3\npassword_check_max_wait_secs = 20\n",
        &[],
    )
    .unwrap();
    assert_eq!(settings.trusted_proxies.len(), 2);
    assert_eq!(settings.trusted_proxies[1].to_string(), "::1/128");
    assert_eq!(settings.login.max_concurrent, 3);
    assert_eq!(settings.login.max_wait, Duration::from_secs(20));
    let settings = load_text(
        "",
        &[
            (
                "MYTRACKS_HTTP_TRUSTED_PROXIES",
                "192.0.2.1, 198.51.100.0/24",
            ),
            ("MYTRACKS_LOGIN_MAX_CONCURRENT_PASSWORD_CHECKS", "1"),
        ],
    )
    .unwrap();
    assert_eq!(settings.trusted_proxies.len(), 2);
    assert_eq!(settings.login.max_concurrent, 1);
    let bad = load_text("[http]\ntrusted_proxies = [\"proxy.example\"]\n", &[]).unwrap_err();
    assert!(bad.to_string().contains("http.trusted_proxies"), "{bad}");
    let bad = load_text("[login]\nmax_concurrent_password_checks = 0\n", &[]).unwrap_err();
    assert!(bad.to_string().contains("between 1 and 1024"), "{bad}");
}

#[test]
fn compat_and_integrations() {
    let settings = load_text("", &[]).unwrap();
    assert!(!settings.store_mosquitto_pbkdf2);
    assert!(settings.http_auth_secret.is_none());
    let settings = load_text(
        "[compat]\nstore_mosquitto_pbkdf2 = true\n[integrations]\nhttp_auth_secret = \"0123456789abcdefXYZ\"\n",
        &[],
    )
    .unwrap();
    assert!(settings.store_mosquitto_pbkdf2);
    let secret = settings.http_auth_secret.unwrap();
    assert!(secret.matches("0123456789abcdefXYZ") && !secret.matches("0123456789abcdefXY"));
    assert!(
        !format!("{secret:?}").contains("0123"),
        "the secret is not printed"
    );
    let settings = load_text(
        "",
        &[
            ("MYTRACKS_COMPAT_STORE_MOSQUITTO_PBKDF2", "true"),
            ("MYTRACKS_INTEGRATIONS_HTTP_AUTH_SECRET", "1234567890123456"),
        ],
    )
    .unwrap();
    assert!(settings.store_mosquitto_pbkdf2);
    assert!(settings
        .http_auth_secret
        .unwrap()
        .matches("1234567890123456"));
    let short = load_text("[integrations]\nhttp_auth_secret = \"short\"\n", &[]).unwrap_err();
    assert!(short.to_string().contains("at least 16"), "{short}");
    assert!(!short.to_string().contains("short\""), "{short}");
    let unknown = load_text("[compat]\nnope = 1\n", &[]).unwrap_err();
    assert!(unknown.to_string().contains("nope"), "{unknown}");
}

#[test]
fn defaults_when_no_file() {
    let settings = load(
        None,
        env(&[("PATH", "/bin"), ("MYTRACKS_CONFIG", "ignored.toml")]),
    )
    .unwrap();
    assert_eq!(settings.data_dir, PathBuf::from("./mytracks-data"));
    assert_eq!(
        settings.http,
        ListenerSettings {
            bind: DEFAULT_BIND,
            port: Some(8080)
        }
    );
    assert_eq!(
        settings.mqtt,
        ListenerSettings {
            bind: DEFAULT_BIND,
            port: Some(1883)
        }
    );
    let b = &settings.broker;
    assert!(!b.allow_anonymous);
    assert_eq!(b.max_keepalive, 65_535);
    assert_eq!(b.topic_alias_maximum, 10);
    assert_eq!(b.max_packet_size, 1_048_576);
    assert_eq!(b.receive_maximum, 100);
    assert_eq!(b.max_inflight_messages, 100);
    assert_eq!(b.max_queued_messages, 1000);
    assert_eq!(b.max_queued_bytes, 16 * 1024 * 1024);
    assert_eq!(b.max_connections, 100_000);
    assert_eq!(b.max_session_expiry, 14 * 24 * 3600);
    assert_eq!(b.sys_interval, Duration::from_secs(10));
    assert_eq!(b.persist_interval, Duration::from_millis(100));
    assert!(b.version.starts_with("mytracks "));
}

#[test]
fn full_file_is_mapped() {
    let settings = load_text(
        r#"
        data_dir = "/srv/mt"
        bind = "127.0.0.1"
        log = "debug,hyper=info"
        [mqtt]
        port = -1
        allow_anonymous = true
        max_keepalive = 300
        topic_alias_maximum = 0
        max_packet_size = 64
        receive_maximum = 65535
        max_inflight_messages = 20
        max_queued_messages = 5
        max_queued_bytes = 1024
        max_connections = 7
        max_session_expiry = 3600
        sys_interval = 0
        persist_interval_ms = 250
        [http]
        port = 0
        bind = "::1"
        "#,
        &[],
    )
    .unwrap();
    assert_eq!(settings.data_dir, PathBuf::from("/srv/mt"));
    assert_eq!(settings.log.as_deref(), Some("debug,hyper=info"));
    assert_eq!(
        settings.mqtt,
        ListenerSettings {
            bind: "127.0.0.1".parse().unwrap(),
            port: None
        }
    );
    assert_eq!(
        settings.http,
        ListenerSettings {
            bind: "::1".parse().unwrap(),
            port: Some(0)
        }
    );
    let b = &settings.broker;
    assert!(b.allow_anonymous);
    assert_eq!(b.max_keepalive, 300);
    assert_eq!(b.topic_alias_maximum, 0);
    assert_eq!(b.max_packet_size, 64);
    assert_eq!(b.receive_maximum, 65535);
    assert_eq!(b.max_inflight_messages, 20);
    assert_eq!(b.max_queued_messages, 5);
    assert_eq!(b.max_queued_bytes, 1024);
    assert_eq!(b.max_connections, 7);
    assert_eq!(b.max_session_expiry, 3600);
    assert_eq!(b.sys_interval, Duration::ZERO);
    assert_eq!(b.persist_interval, Duration::from_millis(250));
}

#[test]
fn unknown_key_names_key_and_section() {
    let f = file("[mqtt]\nmax_keepalvie = 60\n");
    let error = load(Some(f.path()), env(&[])).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("config file {}: ", f.path().display())),
        "{error}"
    );
    assert!(
        error.contains("unknown field `max_keepalvie` in [mqtt], expected one of"),
        "{error}"
    );
    assert!(error.contains("`max_keepalive`"), "{error}");
    assert!(!error.contains('\n'), "{error}");
}

#[test]
fn unknown_top_level_key_and_section() {
    let error = load_text("dat_dir = \"x\"\n", &[]).unwrap_err().to_string();
    assert!(
        error.contains("unknown field `dat_dir`, expected one of"),
        "{error}"
    );
    let error = load_text("[mqt]\nport = 1\n", &[]).unwrap_err().to_string();
    assert!(error.contains("unknown field `mqt`"), "{error}");
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (
            "[mqtt]\nreceive_maximum = 0\n",
            "mqtt.receive_maximum must be between 1 and 65535 (got 0)",
        ),
        (
            "[mqtt]\nmax_keepalive = 0\n",
            "mqtt.max_keepalive must be between 1 and 65535",
        ),
        (
            "[mqtt]\nmax_keepalive = 70000\n",
            "mqtt.max_keepalive must be between 1 and 65535",
        ),
        (
            "[mqtt]\nmax_packet_size = 10\n",
            "mqtt.max_packet_size must be between 64 and 268435455",
        ),
        (
            "[mqtt]\nmax_queued_messages = 0\n",
            "mqtt.max_queued_messages must be at least 1",
        ),
        (
            "[mqtt]\nmax_session_expiry = -1\n",
            "mqtt.max_session_expiry must be between 0 and 4294967295",
        ),
        (
            "[mqtt]\npersist_interval_ms = 0\n",
            "mqtt.persist_interval_ms must be between 1 and",
        ),
        (
            "[http]\nport = 70000\n",
            "http.port must be between 0 and 65535, or -1 to disable",
        ),
        (
            "[mqtt]\nport = -2\n",
            "mqtt.port must be between 0 and 65535, or -1 to disable",
        ),
        (
            "[http]\nbind = \"localhost:80\"\n",
            "http.bind must be an IP address",
        ),
        (
            "[mqtt]\nreceive_maximum = \"ten\"\n",
            "mqtt.receive_maximum: invalid type: string \"ten\"",
        ),
        (
            "[mqtt]\nallow_anonymous = 1\n",
            "mqtt.allow_anonymous: invalid type: integer `1`, expected a boolean",
        ),
        ("mqtt = 5\n", "mqtt: invalid type: integer `5`"),
        ("log = \"=[\"\n", "log is not a valid tracing filter"),
    ];
    for (text, expected) in cases {
        let error = load_text(text, &[]).unwrap_err().to_string();
        assert!(error.starts_with("config file "), "{error}");
        assert!(error.contains(expected), "{text:?}: {error}");
        assert!(!error.contains('\n'), "{error}");
    }
}

#[test]
fn syntax_error_is_one_line_with_position() {
    let error = load_text("[mqtt]\nport = = 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid TOML at line 2, column"), "{error}");
    assert!(!error.contains('\n'), "{error}");
    let error = load_text("[mqtt]\nport = 1\nport = 2\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid TOML at line 3"), "{error}");
}

#[test]
fn missing_file_is_an_error() {
    let error = load(Some(Path::new("/nonexistent/mytracks.toml")), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("config file /nonexistent/mytracks.toml: cannot read:"),
        "{error}"
    );
}

#[test]
fn env_overrides_file() {
    let settings = load_text(
        "data_dir = \"from-file\"\n[mqtt]\nallow_anonymous = false\nport = 1999\n[http]\nport = 81\n",
        &[
            ("MYTRACKS_MQTT_ALLOW_ANONYMOUS", "true"),
            ("MYTRACKS_DATA_DIR", "2024"),
            ("MYTRACKS_HTTP_PORT", "-1"),
            ("MYTRACKS_MQTT_MAX_QUEUED_BYTES", "4096"),
            ("MYTRACKS_BIND", "127.0.0.1"),
            ("MYTRACKS_LOG", "warn"),
        ],
    )
    .unwrap();
    assert!(settings.broker.allow_anonymous);
    assert_eq!(settings.data_dir, PathBuf::from("2024"));
    assert_eq!(settings.http.port, None);
    assert_eq!(settings.mqtt.port, Some(1999));
    assert_eq!(settings.mqtt.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(settings.broker.max_queued_bytes, 4096);
    assert_eq!(settings.log.as_deref(), Some("warn"));
}

#[test]
fn env_without_file() {
    let settings = load(
        None,
        env(&[("MYTRACKS_MQTT_PORT", "0"), ("MYTRACKS_HTTP_BIND", "::")]),
    )
    .unwrap();
    assert_eq!(settings.mqtt.port, Some(0));
    assert_eq!(settings.http.bind, "::".parse::<IpAddr>().unwrap());
}

#[test]
fn env_errors_name_the_variable() {
    let error = load(None, env(&[("MYTRACKS_MQTT_MAX_KEEPALVIE", "5")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("environment variable MYTRACKS_MQTT_MAX_KEEPALVIE: unknown field `max_keepalvie` in [mqtt]"),
        "{error}"
    );
    let error = load(None, env(&[("MYTRACKS_NOPE", "5")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("environment variable MYTRACKS_NOPE: unknown field `nope`"),
        "{error}"
    );
    let error = load_text(
        "[mqtt]\nreceive_maximum = 5\n",
        &[("MYTRACKS_MQTT_RECEIVE_MAXIMUM", "0")],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "environment variable MYTRACKS_MQTT_RECEIVE_MAXIMUM: mqtt.receive_maximum must be between 1 and 65535 (got 0)"
    );
    let error = load(None, env(&[("MYTRACKS_MQTT_ALLOW_ANONYMOUS", "yes")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(
            "environment variable MYTRACKS_MQTT_ALLOW_ANONYMOUS: mqtt.allow_anonymous:"
        ),
        "{error}"
    );
    let error = load(None, env(&[("MYTRACKS_", "x")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("no configuration key"), "{error}");
}

#[test]
fn file_errors_not_blamed_on_env() {
    let error = load_text(
        "[mqtt]\nreceive_maximum = 0\n",
        &[("MYTRACKS_MQTT_PORT", "1")],
    )
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("config file "), "{error}");
}

#[test]
fn iot_section() {
    let settings = load_text(
        "[iot]\nbase_topic = \"things\"\nretention_days = 7\nheartbeat_timeout = 90\n",
        &[],
    )
    .unwrap();
    assert_eq!(settings.iot_base_topic, "things");
    assert_eq!(settings.iot_retention_days, Some(7));
    assert_eq!(settings.iot_heartbeat_timeout, Some(90));
    let off = load_text("[iot]\nheartbeat_timeout = 0\n", &[]).unwrap();
    assert_eq!(off.iot_heartbeat_timeout, None);
    let error = load_text("[iot]\nheartbeat_timeout = -5\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("iot.heartbeat_timeout"), "{error}");
    let error = load_text("[iot]\nbase_topic = \"a/#\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("iot.base_topic"), "{error}");
}

#[test]
fn database_and_owntracks_sections() {
    let settings = load(
        None,
        env(&[
            ("MYTRACKS_DATABASE_URL", "postgres://u:p@db/mytracks"),
            ("MYTRACKS_OWNTRACKS_RETENTION_DAYS", "30"),
        ]),
    )
    .unwrap();
    assert_eq!(
        settings.database_url.as_deref(),
        Some("postgres://u:p@db/mytracks")
    );
    assert_eq!(settings.retention_days, Some(30));
    let defaults = load(None, env(&[])).unwrap();
    assert_eq!(
        (defaults.database_url, defaults.retention_days),
        (None, None)
    );
    let error = load(None, env(&[("MYTRACKS_DATABASE_URL", "mysql://x/y")])).unwrap_err();
    assert!(
        error.to_string().contains("sqlite:// or postgres://"),
        "{error}"
    );
    let error = load(None, env(&[("MYTRACKS_OWNTRACKS_RETENTION_DAYS", "0")])).unwrap_err();
    assert!(
        error.to_string().contains("owntracks.retention_days"),
        "{error}"
    );
}

#[test]
fn web_section() {
    let defaults = load(None, env(&[])).unwrap();
    assert!(defaults.web.tile_url.contains("openstreetmap.org"));
    assert!(defaults.web.tile_attribution.contains("OpenStreetMap"));
    let settings = load_text(
        "[web]\ntile_url = \"https://{s}.tiles.example.org/{z}/{x}/{y}.png\"\ntile_attribution = \"Example\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        settings.web.tile_url,
        "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    );
    assert_eq!(settings.web.tile_attribution, "Example");
    let settings = load(
        None,
        env(&[("MYTRACKS_WEB_TILE_URL", "/tiles/{z}/{x}/{y}.png")]),
    )
    .unwrap();
    assert_eq!(settings.web.tile_url, "/tiles/{z}/{x}/{y}.png");
    for bad in ["ftp://x/{z}/{x}/{y}", "https://x/tiles.png", ""] {
        let error = load(None, env(&[("MYTRACKS_WEB_TILE_URL", bad)])).unwrap_err();
        assert!(error.to_string().contains("web.tile_url"), "{bad}: {error}");
    }
}

#[test]
fn owntracks_frontend_dir() {
    assert_eq!(
        load(None, env(&[])).unwrap().owntracks_frontend_dir,
        None,
        "not served by default"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let error = load(None, env(&[("MYTRACKS_WEB_OWNTRACKS_FRONTEND_DIR", path)])).unwrap_err();
    assert!(
        error.to_string().contains("web.owntracks_frontend_dir")
            && error.to_string().contains("index.html"),
        "{error}"
    );
    std::fs::write(dir.path().join("index.html"), "<html>").unwrap();
    let settings = load_text(&format!("[web]\nowntracks_frontend_dir = {path:?}\n"), &[]).unwrap();
    assert_eq!(settings.owntracks_frontend_dir.as_deref(), Some(dir.path()));
}

#[test]
fn http_timeouts_and_connection_limits() {
    let defaults = load(None, env(&[])).unwrap().http_limits;
    assert_eq!(defaults, mytracks_http::HttpLimits::default());
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.max_connections, 1024);
    assert_eq!(defaults.max_connections_per_address, 64);
    let limits = load_text(
        "[http]\nheader_read_timeout = 5\nidle_timeout = 30\nrequest_timeout = 20\n\
         max_connections = 100\nmax_connections_per_address = 10\n",
        &[("MYTRACKS_HTTP_IDLE_TIMEOUT", "40")],
    )
    .unwrap()
    .http_limits;
    assert_eq!(
        limits,
        mytracks_http::HttpLimits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(40),
            request_timeout: Duration::from_secs(20),
            upload_timeout: Duration::from_secs(3600),
            max_connections: 100,
            max_connections_per_address: 10,
        }
    );
    for (text, message) in [
        (
            "[http]\nheader_read_timeout = 0\n",
            "http.header_read_timeout must be between 1 and 3600 (got 0)",
        ),
        (
            "[http]\nidle_timeout = 86401\n",
            "http.idle_timeout must be between 1 and 86400",
        ),
        (
            "[http]\nrequest_timeout = -1\n",
            "http.request_timeout must be between 1 and 86400",
        ),
        (
            "[http]\nmax_connections = 0\n",
            "http.max_connections must be at least 1 (got 0)",
        ),
        (
            "[http]\nmax_connections_per_address = 0\n",
            "http.max_connections_per_address must be at least 1",
        ),
    ] {
        let error = load_text(text, &[]).unwrap_err().to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}

#[test]
fn external_mode() {
    use mytracks_external::{AdminKind, SessionMode};
    assert!(load_text("", &[]).unwrap().external.is_none());
    let settings = load_text(
        "[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = [\"mqtt://b1:1883\", \"mqtts://b2\"]\nusername = \"ingest\"\nclient_id = \"mytracks-node-a\"\n[mqtt.external.admin]\nkind = \"rmqtt\"\nurl = [\"http://b1:6060/\", \"http://b2:6060\"]\n",
        // The password from the environment, as a secret should be.
        &[("MYTRACKS_MQTT_EXTERNAL_PASSWORD", "s3cret-from-the-environment")],
    )
    .unwrap();
    // No MQTT listener of our own.
    for listener in [
        settings.mqtt,
        settings.mqtt_tls,
        settings.mqtt_ws,
        settings.mqtt_wss,
    ] {
        assert_eq!(listener.port, None);
    }
    let external = settings.external.unwrap();
    assert_eq!(external.urls, ["mqtt://b1:1883", "mqtts://b2"]);
    assert_eq!(
        external.password.as_deref(),
        Some("s3cret-from-the-environment")
    );
    assert_eq!(external.client_id, "mytracks-node-a");
    assert_eq!(external.share_group, "mytracks");
    // rmqtt keeps a dead member's messages only for its own session.
    assert_eq!(external.session, SessionMode::Persistent);
    assert_eq!(external.admin.kind, AdminKind::Rmqtt);
    assert_eq!(external.admin.urls, ["http://b1:6060", "http://b2:6060"]);
    let emqx = load_text(
        "[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://emqx\"\n[mqtt.external.admin]\nkind = \"emqx\"\nurl = \"http://emqx:18083\"\nkey = \"k\"\nsecret = \"s\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(emqx.external.unwrap().session, SessionMode::Clean);

    for (text, expected) in [
        ("[mqtt]\nmode = \"cluster\"\n", "mqtt.mode must be \"embedded\" or \"external\""),
        ("[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://x\"\nusername = \"u\"\npassword = \"short\"\n", "password must be at least 16 characters"),
        ("[mqtt]\nmode = \"external\"\n", "needs mqtt.external.url"),
        ("[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"tcp://x\"\n", "mqtt.external.url must be"),
        ("[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://x\"\nshare_group = \"a/b\"\n", "share_group must be"),
        ("[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://x\"\nsession = \"sticky\"\n", "session must be"),
        ("[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://x\"\n[mqtt.external.admin]\nkind = \"emqx\"\n", "admin.url is required"),
        ("[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://x\"\n[mqtt.external.admin]\nkind = \"hivemq\"\nurl = \"http://x\"\n", "admin.kind must be"),
    ] {
        let error = load_text(text, &[]).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn the_server_key_comes_from_the_environment_only() {
    let key = "cd".repeat(32);
    let settings = load(None, env(&[("MYTRACKS_SECRET_KEY", &key)])).unwrap();
    assert_eq!(
        settings.server_key,
        Some(mytracks_app::sealer::KeyText(key))
    );
    assert!(!format!("{settings:?}").contains("cdcd"));
    assert!(load(None, env(&[])).unwrap().server_key.is_none());
}

#[test]
fn the_console_websocket_url_is_a_websocket_url() {
    let defaults = load_text("", &[]).unwrap();
    assert_eq!(defaults.web.console_websocket_url, None);
    assert!(defaults.web.console_on_this_server, "embedded: /mqtt here");
    let settings = load_text(
        "[web]\nconsole_websocket_url = \"wss://mqtt.example.org/mqtt\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        settings.web.console_websocket_url.as_deref(),
        Some("wss://mqtt.example.org/mqtt")
    );
    assert_eq!(
        settings.web.console_websocket_origin(),
        Some("wss://mqtt.example.org")
    );
    let local = load(
        None,
        env(&[(
            "MYTRACKS_WEB_CONSOLE_WEBSOCKET_URL",
            "ws://localhost:8083/mqtt",
        )]),
    )
    .unwrap();
    assert_eq!(
        local.web.console_websocket_origin(),
        Some("ws://localhost:8083"),
        "ws:// to this machine"
    );
    for bad in [
        "https://mqtt.example.org/mqtt",
        "wss://",
        "ws:///mqtt",
        "wss://a b/",
        "ws://mqtt.example.org/mqtt",
        "wss://evil.example;script-src/",
        "wss://evil.example'unsafe-inline'/",
    ] {
        let error = load(None, env(&[("MYTRACKS_WEB_CONSOLE_WEBSOCKET_URL", bad)])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("MYTRACKS_WEB_CONSOLE_WEBSOCKET_URL: must be a wss://"),
            "{bad}: {error}"
        );
    }
    let external = load_text(
        "[mqtt]\nmode = \"external\"\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:1883\"\n",
        &[],
    )
    .unwrap();
    assert!(
        !external.web.console_on_this_server,
        "external: no /mqtt here"
    );
}

#[test]
fn import_upload_size_and_timeout() {
    let defaults = load(None, env(&[])).unwrap();
    assert_eq!(defaults.max_import_bytes, 4 << 30);
    assert_eq!(defaults.app().upload_limits.max_bytes, 4 << 30);
    assert_eq!(defaults.app().upload_limits.min_free_bytes, 1 << 30);
    assert_eq!(
        defaults.http_limits.upload_timeout,
        Duration::from_secs(3600)
    );
    let settings = load_text(
        "[web]\nmax_import_bytes = 1048576\n[http]\nupload_timeout_secs = 7200\n",
        &[],
    )
    .unwrap();
    assert_eq!(settings.app().upload_limits.max_bytes, 1 << 20);
    assert_eq!(
        settings.http_limits.upload_timeout,
        Duration::from_secs(7200)
    );
    for (text, message) in [
        (
            "[web]\nmax_import_bytes = 10\n",
            "web.max_import_bytes must be between 1024 and",
        ),
        (
            "[http]\nupload_timeout_secs = 0\n",
            "http.upload_timeout_secs must be between 1 and 604800",
        ),
    ] {
        let error = load_text(text, &[]).unwrap_err().to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}
