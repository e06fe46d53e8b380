//! `fmp demo`: May and June 2020 at Mali's nine FMPs (June's totals are the
//! seed report's), recorded into a fresh store, then HQ's June report.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;
use fmp_core::model::{Direction, Submission};
use fmp_core::store::Store;
use fmp_report::ReportOptions;
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::CliError;
use crate::report_commands::{ReportFormat, render};

/// Marker file that lets a later run replace the directory safely.
const MARKER: &str = ".fmp-demo";

fn io(what: String) -> impl FnOnce(std::io::Error) -> CliError {
    move |source| CliError::Io { what, source }
}

/// Removes a previous demo in `dir`; refuses to touch anything else.
fn fresh_dir(dir: &Path) -> Result<(), CliError> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists();
        let is_empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_demo && !is_empty {
            return Err(CliError::Usage(format!(
                "{} exists and is not a previous demo; give another --dir or remove it",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(io(format!("removing {}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `fmp demo`; removed by the next run\n",
    )
    .map_err(io(format!("writing {}", dir.join(MARKER).display())))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        pb
    } else {
        eprintln!("{what}: {len} submissions");
        ProgressBar::hidden()
    }
}

/// Runs the demo into `dir`.
pub fn run(dir: &Path) -> Result<ExitCode, CliError> {
    fresh_dir(dir)?;
    let subs = fmp_report::fixture::may_june_2020(2020);
    let store = Store::init(&dir.join("hq"), "demo-hq")?;

    // Each FMP's days, recorded a day at a time (one durable transaction each).
    let mut by_day: BTreeMap<(String, String), Vec<Submission>> = BTreeMap::new();
    for s in subs {
        by_day
            .entry((s.fmp.clone(), s.observed_at.format("%Y-%m-%d").to_string()))
            .or_default()
            .push(s);
    }
    let total: usize = by_day.values().map(Vec::len).sum();
    let pb = progress(total as u64, "recording");
    let now = Utc::now();
    for day in by_day.into_values() {
        let n = day.len() as u64;
        store.record_many(day, now)?;
        pb.inc(n);
    }
    pb.finish_and_clear();

    print_summary(&store)?;
    let opts = ReportOptions::default();
    for (format, ext) in [
        (ReportFormat::Json, "json"),
        (ReportFormat::Md, "md"),
        (ReportFormat::Html, "html"),
    ] {
        let path = dir.join(format!("report-2020-06.{ext}"));
        let text = render(&store, "2020-06", &opts, format)?;
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    }
    println!();
    println!(
        "June 2020 report written to {}/report-2020-06.{{json,md,html}}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints submissions and individuals per FMP, then the national figures.
fn print_summary(store: &Store) -> Result<(), CliError> {
    let june = fmp_core::store::Filter {
        from: chrono::NaiveDate::from_ymd_opt(2020, 6, 1),
        to: chrono::NaiveDate::from_ymd_opt(2020, 6, 30),
        ..Default::default()
    };
    let rows = store.list(&june)?;
    println!("June 2020 at HQ, per FMP:");
    let mut per: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for r in &rows {
        let e = per.entry(r.submission.fmp.as_str()).or_default();
        e.0 += 1;
        match r.submission.direction {
            Direction::Incoming => e.1 += r.submission.people.total(),
            Direction::Outgoing => e.2 += r.submission.people.total(),
        }
    }
    println!(
        "{:<7}  {:<12}  {:<10}  {:>11}  {:>8}  {:>8}  {:>8}",
        "fmp", "name", "kind", "submissions", "incoming", "outgoing", "total"
    );
    for f in &store.registry().fmps {
        let (n, i, o) = per.get(f.code.as_str()).copied().unwrap_or_default();
        println!(
            "{:<7}  {:<12}  {:<10}  {:>11}  {:>8}  {:>8}  {:>8}",
            f.code,
            f.name,
            f.kind.as_str(),
            n,
            i,
            o,
            i + o
        );
    }
    let report = store
        .with_conn(|conn| {
            fmp_report::monthly_report(
                conn,
                store.registry(),
                &fmp_report::BuiltinCountries,
                "2020-06",
                &ReportOptions::default(),
            )
        })
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let n = &report.national;
    println!();
    println!(
        "June 2020, national (entry/exit FMPs only): {} incoming, {} outgoing, {} in total; {} active FMPs; {:.1} individuals per day",
        n.incoming, n.outgoing, n.total, n.active_fmps, n.avg_per_day
    );
    Ok(())
}
