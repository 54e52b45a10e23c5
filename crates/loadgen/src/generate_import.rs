//! `mytracks-load generate-import`: large history files for the import benchmark, written
//! as the real programs write them: a Google Takeout `Records.json` and an OwnTracks Recorder
//! store. A seeded random walk at 1 Hz, so the same arguments give the same bytes.

use anyhow::Context;
use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ImportFormat {
    /// Google Takeout `Records.json` (`{"locations":[...]}`, E7 coordinates, some with
    /// activity arrays).
    Records,
    /// An OwnTracks Recorder store (`rec/<user>/<device>/YYYY-MM.rec`, 2 users x 2 devices,
    /// with transitions and status lines among the locations).
    Rec,
}

#[derive(Debug, Args)]
pub struct GenerateImportArgs {
    #[arg(long, value_enum)]
    pub format: ImportFormat,
    /// Stop once this many bytes are written (suffixes k, M, G: powers of 1024).
    #[arg(long, value_parser = parse_size)]
    pub bytes: u64,
    /// The file (`records`) or the store directory (`rec`) to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random walk.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Unix time of the first point.
    #[arg(long, default_value_t = 1_640_995_200)]
    pub start: i64,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {text}"))?;
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("unknown size unit in {text} (k, M, G)")),
    };
    Ok(n << shift)
}

/// A point of the walk.
struct Walk {
    rng: StdRng,
    tst: i64,
    lat: f64,
    lon: f64,
}

impl Walk {
    fn new(seed: u64, start: i64) -> Walk {
        Walk {
            rng: StdRng::seed_from_u64(seed),
            tst: start,
            lat: 52.52,
            lon: 13.405,
        }
    }

    fn step(&mut self) {
        self.tst += 1;
        self.lat = (self.lat + self.rng.gen_range(-0.0002..0.0002)).clamp(-89.0, 89.0);
        self.lon = (self.lon + self.rng.gen_range(-0.0002..0.0002)).clamp(-179.0, 179.0);
    }
}

pub fn run(args: &GenerateImportArgs) -> anyhow::Result<()> {
    let written = match args.format {
        ImportFormat::Records => records(args)?,
        ImportFormat::Rec => rec_store(args)?,
    };
    println!(
        "wrote {} points ({} bytes) to {}",
        written.0,
        written.1,
        args.out.display()
    );
    Ok(())
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// `Records.json`: (points, bytes).
fn records(args: &GenerateImportArgs) -> anyhow::Result<(u64, u64)> {
    let mut out = create(&args.out)?;
    let mut walk = Walk::new(args.seed, args.start);
    let mut bytes = 0u64;
    let mut points = 0u64;
    let head = "{\n  \"locations\": [";
    out.write_all(head.as_bytes())?;
    bytes += head.len() as u64;
    while bytes < args.bytes {
        walk.step();
        let separator = if points == 0 { "" } else { "," };
        let activity = if points.is_multiple_of(10) {
            format!(
                ",\n    \"activity\": [{{\"activity\": [{{\"type\": \"STILL\", \"confidence\": 76}}, \
                 {{\"type\": \"ON_FOOT\", \"confidence\": 24}}], \"timestamp\": \"{}\"}}]",
                iso_millis(walk.tst, 0)
            )
        } else {
            String::new()
        };
        let record = format!(
            "{separator}{{\n    \"latitudeE7\": {},\n    \"longitudeE7\": {},\n    \"accuracy\": {},\n    \
             \"altitude\": {},\n    \"verticalAccuracy\": 3,\n    \"source\": \"WIFI\",\n    \
             \"deviceTag\": 1234567890,\n    \"platformType\": \"ANDROID\"{activity},\n    \
             \"timestamp\": \"{}\"\n  }}",
            (walk.lat * 1e7).round() as i64,
            (walk.lon * 1e7).round() as i64,
            walk.rng.gen_range(3..40),
            walk.rng.gen_range(20..80),
            iso_millis(walk.tst, walk.rng.gen_range(0..1000)),
        );
        out.write_all(record.as_bytes())?;
        bytes += record.len() as u64;
        points += 1;
    }
    out.write_all(b"]\n}\n")?;
    out.flush()?;
    Ok((points, bytes + 4))
}

/// A Recorder store: 2 users x 2 devices, a month file each as the walk crosses months.
fn rec_store(args: &GenerateImportArgs) -> anyhow::Result<(u64, u64)> {
    let devices = [
        ("alice", "phone"),
        ("alice", "tablet"),
        ("bob", "phone"),
        ("bob", "car"),
    ];
    let share = args.bytes / devices.len() as u64;
    let (mut points, mut bytes) = (0, 0);
    for (n, (user, device)) in devices.iter().enumerate() {
        let mut walk = Walk::new(args.seed + n as u64, args.start);
        let mut written = 0u64;
        let mut month = String::new();
        let mut out: Option<BufWriter<File>> = None;
        while written < share {
            walk.step();
            let iso = iso_millis(walk.tst, 0);
            let this_month = &iso[..7];
            if this_month != month {
                if let Some(mut done) = out.take() {
                    done.flush()?;
                }
                month = this_month.to_owned();
                let path = args.out.join(format!("rec/{user}/{device}/{month}.rec"));
                out = Some(create(&path)?);
            }
            let file = out.as_mut().expect("opened above");
            let iso = format!("{}Z", &iso[..19]);
            let line = if points % 500 == 499 {
                format!(
                    "{iso}\tevent             \t{{\"_type\":\"transition\",\"event\":\"leave\",\"desc\":\"Home\",\"lat\":{:.6},\"lon\":{:.6},\"tst\":{},\"acc\":10,\"tid\":\"{}\",\"wtst\":{},\"t\":\"c\"}}\n",
                    walk.lat, walk.lon, walk.tst, &device[..2], args.start
                )
            } else if points % 1000 == 998 {
                format!("{iso}\tstatus            \t{{\"_type\":\"status\",\"android\":{{\"hib\":1,\"bo\":1,\"loc\":0}}}}\n")
            } else {
                format!(
                    "{iso}\t*                 \t{{\"_type\":\"location\",\"acc\":{},\"alt\":{},\"batt\":{},\"bs\":1,\"conn\":\"m\",\"created_at\":{},\"lat\":{:.7},\"lon\":{:.7},\"m\":1,\"tid\":\"{}\",\"tst\":{},\"vac\":3,\"vel\":{}}}\n",
                    walk.rng.gen_range(3..40), walk.rng.gen_range(20..80), walk.rng.gen_range(5..100),
                    walk.tst, walk.lat, walk.lon, &device[..2], walk.tst, walk.rng.gen_range(0..30)
                )
            };
            file.write_all(line.as_bytes())?;
            written += line.len() as u64;
            points += 1;
        }
        if let Some(mut done) = out.take() {
            done.flush()?;
        }
        bytes += written;
    }
    Ok((points, bytes))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of Unix seconds (proleptic Gregorian, UTC).
fn iso_millis(tst: i64, millis: u32) -> String {
    let days = tst.div_euclid(86_400);
    let secs = tst.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_millis(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_709_280_000, 5), "2024-03-01T08:00:00.005Z");
        assert_eq!(iso_millis(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10k"), Ok(10 << 10));
        assert!(parse_size("1T").is_err());
    }
}
