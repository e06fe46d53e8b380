//! `fmp demo`: the whole run on the embedded default. Nine phones (one per
//! FMP) record May and June 2020 offline (June's totals are the seed
//! report's), sync to two regional hubs over loopback, the hubs forward to
//! an HQ hub, and HQ lists what arrived per FMP and writes the June report.

use crate::output::out;
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

/// The two supervisors' regions of the demo and their FMPs.
const REGIONS: [(&str, &[&str]); 2] = [
    ("gao", &["ML-WAB", "ML-PKI", "ML-TBK", "ML-MNK", "ML-SEV"]),
    ("bamako", &["ML-GOG", "ML-BEN", "ML-HER", "ML-BKO"]),
];

fn hub_err(e: fmp_hub::HubError) -> CliError {
    CliError::Usage(e.to_string())
}

/// A one-time enrollment code from the hub whose store is in `dir`.
fn code(dir: &Path, fmps: &[&str], may_enroll: bool) -> Result<String, CliError> {
    let store = Store::open(dir)?;
    let fmps: Vec<String> = fmps.iter().map(|f| f.to_string()).collect();
    fmp_hub::enroll::create_code(
        &store,
        &fmps,
        std::time::Duration::from_secs(3600),
        may_enroll,
    )
    .map_err(hub_err)
}

fn sync(dir: &Path) -> Result<fmp_hub::client::Summary, CliError> {
    let store = Store::open(dir)?;
    fmp_hub::client::sync(&store, fmp_hub::client::SyncOptions::default()).map_err(hub_err)
}

/// Runs the demo into `dir`: nine phones record May and June 2020 offline,
/// sync to two regional hubs over loopback, the hubs forward to HQ, and HQ
/// writes the June report.
pub fn run(dir: &Path) -> Result<ExitCode, CliError> {
    fresh_dir(dir)?;
    let subs = fmp_report::fixture::may_june_2020(2020);

    // HQ, then the two regional hubs, each joining HQ for its region.
    let hq_dir = dir.join("hq");
    drop(Store::init(&hq_dir, "hq")?);
    let hq = fmp_hub::serve(&hq_dir, "127.0.0.1:0").map_err(hub_err)?;
    out!("HQ hub listening on {}", hq.url())?;
    let mut hubs = Vec::new();
    for (region, fmps) in REGIONS {
        let hub_dir = dir.join("hubs").join(region);
        let store = Store::init(&hub_dir, &format!("hub-{region}"))?;
        let c = code(&hq_dir, fmps, true)?;
        fmp_hub::client::join(&store, &hq.url(), &c).map_err(hub_err)?;
        drop(store);
        let handle = fmp_hub::serve(&hub_dir, "127.0.0.1:0").map_err(hub_err)?;
        out!(
            "{region} hub listening on {}, joined HQ for {}",
            handle.url(),
            fmps.join(", ")
        )?;
        hubs.push((region, fmps, hub_dir, handle));
    }

    // Nine phones, one per FMP: join the region's hub, then record offline.
    let mut by_fmp: BTreeMap<String, BTreeMap<String, Vec<Submission>>> = BTreeMap::new();
    for s in subs {
        let day = s.observed_at.format("%Y-%m-%d").to_string();
        by_fmp
            .entry(s.fmp.clone())
            .or_default()
            .entry(day)
            .or_default()
            .push(s);
    }
    let total: usize = by_fmp.values().flat_map(|d| d.values()).map(Vec::len).sum();
    let mut phones = Vec::new();
    for (_, fmps, hub_dir, handle) in &hubs {
        for fmp in fmps.iter() {
            let phone_dir = dir.join("phones").join(fmp);
            let store = Store::init(&phone_dir, &format!("phone-{fmp}"))?;
            let c = code(hub_dir, &[fmp], false)?;
            fmp_hub::client::join(&store, &handle.url(), &c).map_err(hub_err)?;
            phones.push((fmp.to_string(), phone_dir, store));
        }
    }
    let pb = progress(total as u64, "recording");
    let now = Utc::now();
    for (fmp, _, store) in &phones {
        for day in by_fmp.remove(fmp).unwrap_or_default().into_values() {
            let n = day.len() as u64;
            store.record_many(day, now)?;
            pb.inc(n);
        }
    }
    pb.finish_and_clear();
    out!("nine phones recorded {total} submissions offline (May and June 2020)")?;

    // A link appears: each phone syncs with its region's hub.
    let (mut sent, mut bytes, mut trips) = (0u64, 0u64, 0u64);
    for (_, phone_dir, store) in phones {
        drop(store);
        let s = sync(&phone_dir)?;
        sent += s.sent;
        bytes += s.bytes_sent + s.bytes_received;
        trips += u64::from(s.round_trips);
    }
    out!(
        "phones -> regional hubs: {sent} changes, {bytes} bytes, {}",
        round_trips(trips)
    )?;
    // The regional hubs forward to HQ.
    for (region, _, hub_dir, _) in &hubs {
        let s = sync(hub_dir)?;
        out!(
            "{region} hub -> HQ: {} changes, {} bytes, {}",
            s.sent,
            s.bytes_sent + s.bytes_received,
            round_trips(u64::from(s.round_trips))
        )?;
    }
    for (_, _, _, handle) in hubs {
        handle.shutdown().map_err(hub_err)?;
    }
    hq.shutdown().map_err(hub_err)?;

    let store = Store::open(&hq_dir)?;
    out!()?;
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
    out!()?;
    out!(
        "HQ's June 2020 report written to {}/report-2020-06.{{json,md,html}}",
        dir.display()
    )?;
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
    out!("June 2020 as it arrived at HQ, per FMP:")?;
    let mut per: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for r in &rows {
        let e = per.entry(r.submission.fmp.as_str()).or_default();
        e.0 += 1;
        match r.submission.direction {
            Direction::Incoming => e.1 += r.submission.people.total(),
            Direction::Outgoing => e.2 += r.submission.people.total(),
        }
    }
    out!(
        "{:<7}  {:<12}  {:<10}  {:>11}  {:>8}  {:>8}  {:>8}",
        "fmp",
        "name",
        "kind",
        "submissions",
        "incoming",
        "outgoing",
        "total"
    )?;
    for f in &store.registry().fmps {
        let (n, i, o) = per.get(f.code.as_str()).copied().unwrap_or_default();
        out!(
            "{:<7}  {:<12}  {:<10}  {:>11}  {:>8}  {:>8}  {:>8}",
            f.code,
            f.name,
            f.kind.as_str(),
            n,
            i,
            o,
            i + o
        )?;
    }
    let report = fmp_report::monthly_report(
        store,
        &store.registry(),
        &fmp_report::BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let n = &report.national;
    out!()?;
    out!(
        "June 2020, national (entry/exit FMPs only): {} incoming, {} outgoing, {} in total; {} active FMPs; {:.1} individuals per day",
        n.incoming,
        n.outgoing,
        n.total,
        n.active_fmps,
        n.avg_per_day
    )?;
    Ok(())
}

/// `1 round trip`, `N round trips`.
fn round_trips(n: u64) -> String {
    if n == 1 {
        "1 round trip".to_string()
    } else {
        format!("{n} round trips")
    }
}

#[cfg(test)]
mod round_trip_tests {
    #[test]
    fn one_round_trip_is_singular() {
        assert_eq!(super::round_trips(1), "1 round trip");
        assert_eq!(super::round_trips(0), "0 round trips");
        assert_eq!(super::round_trips(13), "13 round trips");
    }
}
