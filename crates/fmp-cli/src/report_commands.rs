//! `fmp report` and `fmp export`: HQ's monthly report and the data exports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use fmp_core::store::Store;
use fmp_report::{BuiltinCountries, ExportFilter, Report, ReportOptions, monthly_report};

use crate::commands::CliError;

/// Formats of `fmp report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The report as JSON (the source of the other formats).
    Json,
    /// Markdown that reads like the published report.
    Md,
    /// One self-contained HTML file with SVG charts.
    Html,
}

/// Formats of `fmp export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// CSV with an HXL hashtag row under the header.
    Csv,
    /// An Excel workbook (typed columns, frozen header).
    Xlsx,
    /// Canonical submission JSON, one per line (re-importable with `fmp record`).
    Jsonl,
}

fn report_err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// Renders the report of `month` in `format`.
pub fn render(
    store: &Store,
    month: &str,
    opts: &ReportOptions,
    format: ReportFormat,
) -> Result<String, CliError> {
    render_report(&build(store, month, opts)?, format)
}

fn build(store: &Store, month: &str, opts: &ReportOptions) -> Result<Report, CliError> {
    monthly_report(store, &store.registry(), &BuiltinCountries, month, opts).map_err(report_err)
}

fn render_report(report: &Report, format: ReportFormat) -> Result<String, CliError> {
    Ok(match format {
        ReportFormat::Json => serde_json::to_string_pretty(report).map_err(report_err)? + "\n",
        ReportFormat::Md => fmp_report::to_markdown(report),
        ReportFormat::Html => fmp_report::to_html(report),
    })
}

/// Refuses a `--country` that no FMP of the registry is in, naming the
/// countries it holds (and the upper-case code a lower-case one meant).
fn check_country(store: &Store, country: &str) -> Result<(), CliError> {
    let registry = store.registry();
    let mut known: Vec<&str> = registry.fmps.iter().map(|f| f.country.as_str()).collect();
    known.sort_unstable();
    known.dedup();
    if known.contains(&country) {
        return Ok(());
    }
    let upper = country.to_ascii_uppercase();
    let hint = if known.contains(&upper.as_str()) {
        format!("; country codes are upper case: --country {upper}")
    } else {
        String::new()
    };
    Err(CliError::Usage(format!(
        "--country `{country}` is not the country of any FMP in the registry (its countries: {}){hint}",
        known.join(", ")
    )))
}

fn write_out(out: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(p) => std::fs::write(p, bytes).map_err(|source| CliError::Io {
            what: format!("writing {}", p.display()),
            source,
        }),
        None => std::io::stdout()
            .write_all(bytes)
            .map_err(|source| CliError::Io {
                what: "writing output".into(),
                source,
            }),
    }
}

/// `fmp report`.
pub fn report(
    dir: &Path,
    month: &str,
    country: Option<String>,
    approved_only: bool,
    format: ReportFormat,
    out: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let store = Store::open(dir)?;
    if let Some(c) = &country {
        check_country(&store, c)?;
    }
    let report = build(
        &store,
        month,
        &ReportOptions {
            country: country.clone(),
            approved_only,
        },
    )?;
    if report.fmps.iter().all(|f| f.total == 0) {
        let what = if approved_only {
            "no approved submission"
        } else {
            "no submission (rejected and deleted ones left out)"
        };
        let place = country.map(|c| format!(" in {c}")).unwrap_or_default();
        let hint = if approved_only {
            "; without --approved-only the report counts all but rejected ones"
        } else {
            "; check --month, or `fmp list --from YYYY-MM-01` for what the store holds"
        };
        return Err(CliError::Usage(format!(
            "nothing to report: {what} observed in {month}{place}{hint}"
        )));
    }
    let text = render_report(&report, format)?;
    write_out(out, text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `fmp export`.
#[derive(Debug)]
pub struct ExportArgs {
    /// Output format.
    pub format: ExportFormat,
    /// First day.
    pub from: Option<String>,
    /// Last day.
    pub to: Option<String>,
    /// FMP code.
    pub fmp: Option<String>,
    /// Export rejected submissions too (left out by default, as the report does).
    pub include_rejected: bool,
    /// Output file (stdout if absent).
    pub out: Option<PathBuf>,
}

/// `fmp export`.
pub fn export(dir: &Path, a: ExportArgs) -> Result<ExitCode, CliError> {
    let day = |flag: &str, s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            CliError::Usage(format!(
                "--{flag} `{s}` is not a date; write it as YYYY-MM-DD"
            ))
        })
    };
    let filter = ExportFilter {
        from: a.from.as_deref().map(|s| day("from", s)).transpose()?,
        to: a.to.as_deref().map(|s| day("to", s)).transpose()?,
        fmp: a.fmp,
        exclude_rejected: !a.include_rejected,
    };
    let store = Store::open(dir)?;
    if let Some(code) = &filter.fmp
        && store.registry().get(code).is_none()
    {
        let registry = store.registry();
        let known: Vec<&str> = registry.fmps.iter().map(|f| f.code.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--fmp `{code}` is not a known FMP code; the registry's FMPs: {}",
            known.join(", ")
        )));
    }
    let mut buf = Vec::new();
    let rows = match a.format {
        ExportFormat::Csv => fmp_report::export_csv(&store, &filter, &mut buf),
        ExportFormat::Xlsx => fmp_report::export_xlsx(&store, &filter, &mut buf),
        ExportFormat::Jsonl => fmp_report::export_jsonl(&store, &filter, &mut buf),
    }
    .map_err(report_err)?;
    let left_out = if a.include_rejected {
        ""
    } else {
        " (rejected ones left out, as the report does; --include-rejected adds them)"
    };
    if rows == 0 {
        return Err(CliError::Usage(format!(
            "nothing to export: no submission matches{left_out}"
        )));
    }
    write_out(a.out.as_deref(), &buf)?;
    if let Some(p) = &a.out {
        eprintln!("exported {rows} submission(s) to {}{left_out}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
