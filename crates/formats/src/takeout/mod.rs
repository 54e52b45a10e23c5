//! Google Takeout's location history, three shapes (design 4.3 "Google Takeout"):
//! `Records.json`, Semantic Location History month files, and the on-device `Timeline.json`
//! (Android object or iOS array).

mod coords;
pub(crate) mod records;
pub(crate) mod semantic;
pub(crate) mod timeline;

use crate::item::rfc3339_seconds;
use serde::Deserialize;
use std::borrow::Cow;

/// A number that may come as text (`"timestampMs": "1700000000000"`).
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Lenient<'a> {
    Number(f64),
    #[serde(borrow)]
    Text(&'a str),
}

impl Lenient<'_> {
    fn value(self) -> Option<f64> {
        match self {
            Lenient::Number(n) => Some(n),
            Lenient::Text(t) => t.trim().parse().ok(),
        }
        .filter(|v: &f64| v.is_finite())
    }
}

/// A Takeout time: RFC 3339 text (`timestamp`), else milliseconds (`timestampMs`). `Err`
/// when one is there but unusable, `Ok(None)` when neither is.
fn takeout_time(text: Option<&Cow<'_, str>>, ms: Option<Lenient<'_>>) -> Result<Option<i64>, ()> {
    if let Some(text) = text {
        return rfc3339_seconds(text).map(Some).ok_or(());
    }
    match ms {
        None => Ok(None),
        #[allow(clippy::cast_possible_truncation)] // range checked
        Some(ms) => match ms.value() {
            Some(ms) if ms.abs() < 9e18 => Ok(Some((ms / 1000.0).floor() as i64)),
            _ => Err(()),
        },
    }
}
