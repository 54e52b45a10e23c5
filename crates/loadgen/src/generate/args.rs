//! The command line of `generate-tail`, and the server it names ([`Target`]): from the
//! options, else from the running server's `runtime.json`.

use crate::runtime_file::{RuntimeInfo, RUNTIME_FILE};
use anyhow::{bail, Context};
use clap::Args;
use std::io;
use std::path::PathBuf;

/// Options of `mytracks-load generate-tail`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Data directory of the running server: its runtime.json gives the ports.
    #[arg(long, value_name = "DIR", default_value = "./mytracks-data")]
    pub data_dir: PathBuf,

    /// Send over MQTT instead of OwnTracks HTTP mode.
    #[arg(long)]
    pub mqtt: bool,

    /// HTTP-mode endpoint instead of runtime.json's port (`http://HOST:PORT` posts to `/pub`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["mqtt", "mqtt_host", "mqtt_port"])]
    pub url: Option<String>,

    /// MQTT host; implies --mqtt [default: 127.0.0.1].
    #[arg(long, value_name = "HOST")]
    pub mqtt_host: Option<String>,

    /// MQTT port instead of runtime.json's; implies --mqtt.
    #[arg(long, value_name = "N")]
    pub mqtt_port: Option<u16>,

    /// The account the devices belong to (topics `owntracks/USER/sim-N`).
    #[arg(long, visible_alias = "mqtt-user", value_name = "NAME")]
    pub user: String,

    /// The account's password or one of its device credentials.
    #[arg(long, visible_alias = "mqtt-password", value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Simulated devices, named sim-1..sim-N.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub devices: u32,

    /// Location messages per second, in total across the devices.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 1.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Seconds to run; 0 runs until Ctrl-C.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub duration: u64,

    /// Seed of the simulation: the same seed gives the same tracks [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Latitude of the area the devices move in.
    #[arg(long, default_value_t = 52.52, allow_negative_numbers = true,
          value_parser = parse_latitude)]
    pub lat: f64,

    /// Longitude of the area the devices move in.
    #[arg(long, default_value_t = 13.405, allow_negative_numbers = true,
          value_parser = parse_longitude)]
    pub lon: f64,
}

fn parse_number(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if !(min..=max).contains(&value) {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(value)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let value = parse_number(text, 0.0, 100_000.0)?;
    if value <= 0.0 {
        return Err("must be more than 0".into());
    }
    Ok(value)
}

fn parse_latitude(text: &str) -> Result<f64, String> {
    parse_number(text, -85.0, 85.0)
}

fn parse_longitude(text: &str) -> Result<f64, String> {
    parse_number(text, -180.0, 180.0)
}

/// The server to send to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// OwnTracks HTTP mode: the `/pub` endpoint.
    Http(reqwest::Url),
    Mqtt {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http(url) => write!(f, "{url}"),
            Target::Mqtt { host, port } if host.contains(':') => {
                write!(f, "mqtt://[{host}]:{port}")
            }
            Target::Mqtt { host, port } => write!(f, "mqtt://{host}:{port}"),
        }
    }
}

impl Target {
    /// From the options, else from the running server's `runtime.json`.
    pub fn resolve(args: &GenerateArgs) -> anyhow::Result<Target> {
        let mqtt = args.mqtt || args.mqtt_host.is_some() || args.mqtt_port.is_some();
        let host = || {
            args.mqtt_host
                .clone()
                .unwrap_or_else(|| "127.0.0.1".to_owned())
        };
        match (&args.url, mqtt, args.mqtt_port) {
            (Some(url), false, _) => return http_url(url).map(Target::Http),
            (_, true, Some(port)) => return Ok(Target::Mqtt { host: host(), port }),
            _ => {}
        }
        let dir = &args.data_dir;
        let info = match RuntimeInfo::read(dir) {
            Ok(info) => info,
            Err(error) if error.kind() == io::ErrorKind::NotFound => bail!(
                "no running server found in {} ({RUNTIME_FILE} missing); give --url or --mqtt-port",
                dir.display()
            ),
            Err(error) => bail!("cannot read {}: {error}", dir.join(RUNTIME_FILE).display()),
        };
        if mqtt {
            let Some(port) = info.mqtt_port else {
                bail!(
                    "the server in {} has MQTT disabled; give --mqtt-port or leave out --mqtt",
                    dir.display()
                );
            };
            Ok(Target::Mqtt { host: host(), port })
        } else {
            let Some(port) = info.http_port else {
                bail!(
                    "the server in {} has HTTP disabled; give --url or use --mqtt",
                    dir.display()
                );
            };
            http_url(&format!("http://127.0.0.1:{port}")).map(Target::Http)
        }
    }
}

/// `--url` as the `/pub` endpoint: a bare `http://host:port` means `/pub` on it.
fn http_url(text: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(text).with_context(|| format!("--url {text}"))?;
    match url.scheme() {
        "http" => {}
        "https" => bail!(
            "--url {text}: https is not supported; give the server's plain HTTP address, or use --mqtt"
        ),
        other => bail!("--url {text}: {other}: is not an HTTP URL"),
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/pub");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CENTRE: (f64, f64) = (52.52, 13.405);

    fn parse(args: &[&str]) -> Result<GenerateArgs, clap::Error> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(
            ["mytracks-load", "generate-tail"].iter().chain(args.iter()),
        )?;
        match cli.command {
            crate::Command::GenerateTail(args) => Ok(args),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn command_line() {
        let args = parse(&["--user", "alice"]).unwrap();
        assert_eq!(
            (args.devices, args.rate, args.duration, args.seed),
            (3, 1.0, 60, None)
        );
        assert_eq!((args.lat, args.lon), CENTRE);
        assert_eq!(args.data_dir, PathBuf::from("./mytracks-data"));
        assert!(!args.mqtt);
        let args = parse(&[
            "--mqtt-user",
            "bob",
            "--mqtt-password",
            "pw",
            "--mqtt",
            "--devices",
            "5",
            "--rate",
            "0.5",
            "--duration",
            "0",
            "--seed",
            "42",
            "--lat",
            "-33.9",
            "--lon",
            "-70.6",
        ])
        .unwrap();
        assert_eq!(
            (args.user.as_str(), args.password.as_deref()),
            ("bob", Some("pw"))
        );
        assert_eq!(
            (args.devices, args.rate, args.duration, args.seed),
            (5, 0.5, 0, Some(42))
        );
        assert_eq!((args.lat, args.lon), (-33.9, -70.6));
        for bad in [
            &[][..],
            &["--user", "a", "--rate", "0"],
            &["--user", "a", "--rate", "x"],
            &["--user", "a", "--devices", "0"],
            &["--user", "a", "--lat", "91"],
            &["--user", "a", "--url", "http://x", "--mqtt"],
            &["--user", "a", "--url", "http://x", "--mqtt-port", "1883"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn resolve(args: &[&str]) -> anyhow::Result<Target> {
        Target::resolve(&parse(args).unwrap())
    }

    #[test]
    fn target_from_runtime_json_or_options() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let error = resolve(&["--user", "a", "--data-dir", data]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("no running server found in {data} (runtime.json missing); give --url or --mqtt-port")
        );
        // Options need no running server.
        assert_eq!(
            resolve(&["--user", "a", "--data-dir", data, "--url", "http://h:8"]).unwrap(),
            Target::Http("http://h:8/pub".parse().unwrap())
        );
        assert_eq!(
            resolve(&["--user", "a", "--url", "http://h/owntracks/pub"]).unwrap(),
            Target::Http("http://h/owntracks/pub".parse().unwrap())
        );
        let error = resolve(&["--user", "a", "--url", "https://h"]).unwrap_err();
        assert!(
            error.to_string().contains("https is not supported"),
            "{error}"
        );
        assert!(resolve(&["--user", "a", "--url", "not a url"]).is_err());
        let target = resolve(&["--user", "a", "--data-dir", data, "--mqtt-port", "1884"]).unwrap();
        assert_eq!(target.to_string(), "mqtt://127.0.0.1:1884");
        let target = resolve(&["--user", "a", "--mqtt-host", "::1", "--mqtt-port", "1"]).unwrap();
        assert_eq!(target.to_string(), "mqtt://[::1]:1");

        std::fs::write(
            dir.path().join(RUNTIME_FILE),
            r#"{"pid": 1, "http_port": 8081, "mqtt_port": 1884}"#,
        )
        .unwrap();
        assert_eq!(
            resolve(&["--user", "a", "--data-dir", data])
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8081/pub"
        );
        assert_eq!(
            resolve(&["--user", "a", "--data-dir", data, "--mqtt"]).unwrap(),
            Target::Mqtt {
                host: "127.0.0.1".into(),
                port: 1884
            }
        );
        assert_eq!(
            resolve(&[
                "--user",
                "a",
                "--data-dir",
                data,
                "--mqtt-host",
                "localhost"
            ])
            .unwrap(),
            Target::Mqtt {
                host: "localhost".into(),
                port: 1884
            }
        );

        std::fs::write(
            dir.path().join(RUNTIME_FILE),
            r#"{"pid": 1, "http_port": null, "mqtt_port": null}"#,
        )
        .unwrap();
        let error = resolve(&["--user", "a", "--data-dir", data]).unwrap_err();
        assert!(error.to_string().contains("HTTP disabled"), "{error}");
        let error = resolve(&["--user", "a", "--data-dir", data, "--mqtt"]).unwrap_err();
        assert!(error.to_string().contains("MQTT disabled"), "{error}");
        std::fs::write(dir.path().join(RUNTIME_FILE), "{").unwrap();
        let error = resolve(&["--user", "a", "--data-dir", data]).unwrap_err();
        assert!(error.to_string().starts_with("cannot read "), "{error}");
    }
}
