//! A rough timing of the report over many submissions. Ignored by default:
//! `cargo test -p fmp-report --release --test scale -- --ignored --nocapture`
//! (`FMP_BENCH_N` sets the number of submissions, default 1,000,000).
//! Measured here (2 cores, in-memory SQLite): 821,301 submissions over 12
//! months, the June report in 3.8 s.

use std::time::Instant;

use fmp_report::fixture;
use fmp_report::{BuiltinCountries, ReportOptions, monthly_report};

#[test]
#[ignore = "slow: a benchmark"]
fn report_over_many_submissions() {
    let target: f64 = std::env::var("FMP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000.0);
    let t = Instant::now();
    // ~740 submissions per month at scale 1; 12 months.
    let subs = fixture::many_months(1, (2019, 7), 12, target / 12.0 / 740.0);
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &fixture::stored(subs.clone())).expect("store");
    println!(
        "{} submissions generated and stored in {:.1?}",
        subs.len(),
        t.elapsed()
    );
    drop(subs);
    let t = Instant::now();
    let r = monthly_report(
        &store,
        &fixture::mali_registry(),
        &BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .expect("report");
    println!(
        "report of 2020-06 in {:.2?}: national total {}",
        t.elapsed(),
        r.national.total
    );
}
