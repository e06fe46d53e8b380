//! fmp-report: HQ's monthly FMP report and the data exports.
//!
//! - `report.rs`: the report's JSON shape and `monthly_report`, computed from
//!   the store's aggregates over its materialized columns, on one snapshot.
//! - `rounding.rs`: largest-remainder percentages and the "top five and Other"
//!   share tables with their change in percentage points.
//! - `countries.rs`: the country names and the "in Europe" question, behind a trait.
//! - `markdown.rs`: the report as text that reads like the seed report.
//! - `html.rs` and `svg.rs`: the report as one self-contained HTML page with SVG charts.
//! - `export.rs`: one row per submission as CSV (+HXL), XLSX or JSON lines.
//! - `fixture.rs`: test support, a seeded fixture matching the June 2020 seed
//!   report, and stores built from it through the store's API.
//! - `error.rs`: `ReportError`.

pub mod countries;
pub mod error;
pub mod export;
pub mod fixture;
pub mod html;
pub mod markdown;
pub mod report;
pub mod rounding;
pub mod svg;

pub use countries::{BuiltinCountries, CountryInfo};
pub use error::ReportError;
pub use export::{ExportFilter, export_csv, export_jsonl, export_xlsx};
pub use html::to_html;
pub use markdown::to_markdown;
pub use report::{Report, ReportOptions, monthly_report, monthly_report_on};
pub use rounding::ShareRow;
