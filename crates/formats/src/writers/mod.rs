//! Writers of the location exports (GeoJSON, GPX, CSV): the REST history export, the
//! account export and the command line share them. Each writes to any [`std::io::Write`] one
//! point at a time (one `write_all` per point), so an export of millions of points streams in
//! constant memory. Text that reaches a file comes from devices (topic levels, payloads), so
//! it is made safe for the programs that open these files: XML gets no character XML 1.0
//! forbids; spreadsheet cells never start a formula.
//!
//! The writers know no database: callers map their rows to [`ExportPoint`].

mod csv;
mod geojson;
mod gpx;
mod text;

pub use csv::CsvWriter;
pub use geojson::GeoJsonWriter;
pub use gpx::GpxWriter;
pub use text::{csv_text, push_timestamp, rfc3339, xml_text};

/// One location as the exports write it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExportPoint<'a> {
    /// The stored row's id (GeoJSON `id` property).
    pub id: i64,
    /// Which device: the writers look its (user, device) names up by this.
    pub device_id: i64,
    /// Fix time, Unix seconds.
    pub tst: i64,
    pub lat: f64,
    pub lon: f64,
    pub acc: Option<f64>,
    pub alt: Option<f64>,
    pub vac: Option<f64>,
    pub vel: Option<f64>,
    pub cog: Option<f64>,
    pub batt: Option<i64>,
    pub tid: Option<&'a str>,
}
