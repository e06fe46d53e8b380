//! Report benchmark: `cargo bench -p fmp-report --bench report`. Prints one table.
//!
//! Builds an on-disk store of `FMP_BENCH_N` submissions (default 1,000,000:
//! twelve months of nine FMPs, the scale of a region over a year), recorded
//! through the store's API into `target/fmp-report-bench-N/`, then times the
//! June 2020 report in a fresh child process, so its peak memory (VmHWM) is
//! the report's alone.

use fmp_core::store::ops::*;
use std::process::Command;
use std::time::Instant;

use fmp_core::store::Store;
use fmp_report::{BuiltinCountries, ReportOptions, fixture, monthly_report};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn child(dir: &str) {
    let store = Store::open(std::path::Path::new(dir)).expect("open");
    let before = vm_hwm_kib();
    let t = Instant::now();
    let r = monthly_report(
        &store,
        &fixture::mali_registry(),
        &BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .expect("report");
    let el = t.elapsed();
    let md = fmp_report::to_markdown(&r);
    let html = fmp_report::to_html(&r);
    println!(
        "{} {} {} {} {}",
        el.as_millis(),
        before,
        vm_hwm_kib(),
        md.len(),
        html.len()
    );
}

fn main() {
    let target: f64 = std::env::var("FMP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000.0);
    let target_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let dir = target_dir.join(format!("fmp-report-bench-{}", target as u64));
    let dir_s = dir.to_string_lossy().to_string();
    if let Ok(path) = std::env::var("FMP_BENCH_CHILD") {
        child(&path);
        return;
    }
    if !dir.join(fmp_core::store::DB_FILE).exists() {
        let t = Instant::now();
        let subs = fixture::many_months(1, (2019, 7), 12, target / 12.0 / 740.0);
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let store = Store::init(&tmp, "fmp-report bench").expect("create");
        for chunk in subs.chunks(50_000) {
            fixture::load(&store, &fixture::stored(chunk.to_vec())).expect("load");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).expect("rename");
        eprintln!("built {} in {:.1?}", dir.display(), t.elapsed());
    }
    let store = Store::open(&dir).expect("open");
    let by_month = store.snapshot(|r| r.records_by_month()).expect("count");
    let n: u64 = by_month.iter().map(|(_, c)| c).sum();
    let june: u64 = by_month
        .iter()
        .find(|(m, _)| m == "2020-06")
        .map_or(0, |(_, c)| *c);
    drop(store);
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new(exe)
        .env("FMP_BENCH_CHILD", &dir_s)
        .output()
        .expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [ms, before, after, md, html] = v[..] else {
        panic!("child failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    let size = std::fs::metadata(dir.join(fmp_core::store::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("| measure | value | beside |");
    println!("|---|---|---|");
    println!(
        "| submissions in the store | {n} | {june} in June 2020; database {} MB |",
        size / 1_000_000
    );
    println!("| June 2020 report (SQL aggregates) | {ms} ms | aim: < 10,000 ms |");
    println!(
        "| peak memory of the report process | {} MiB | {} MiB before the report |",
        after / 1024,
        before / 1024
    );
    println!("| Markdown / HTML size | {md} B / {html} B | |");
}
