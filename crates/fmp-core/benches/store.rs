//! Store benchmark: `cargo bench -p fmp-core --bench store`. Prints one table.
//!
//! Durable `record` (median, p99) beside a bare durable SQLite insert of the
//! same JSON (WAL, synchronous=FULL, one transaction each), records per
//! second over 10,000, bytes on disk per submission, and the time to open a
//! store of 100,000 submissions and list one FMP-month of it.
//! Set `FMP_BENCH_N` to change the 100,000.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use fmp_core::form::example_submission;
use fmp_core::model::Submission;
use fmp_core::store::{Filter, Store};
use rusqlite::{Connection, params};

const FMPS: [&str; 9] = [
    "ML-WAB", "ML-PKI", "ML-TBK", "ML-MNK", "ML-SEV", "ML-GOG", "ML-BEN", "ML-HER", "ML-BKO",
];

fn submission(i: u64) -> Submission {
    let mut s = example_submission();
    s.id = None;
    s.fmp = FMPS[(i % 9) as usize].to_string();
    // Spread over 2020-2021, one minute apart per FMP.
    let t = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::minutes((i / 9) as i64 * 95);
    s.observed_at = t;
    let men = 1 + (i % 40) as u32;
    s.people.adult_male = men;
    s.nationalities.clear();
    s.nationalities.insert(
        "MLI".into(),
        men + s.people.adult_female + s.people.minor_male + s.people.minor_female - 1,
    );
    s.nationalities.insert("BFA".into(), 1);
    s.notes = format!("bench {i}");
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let n_big: u64 = std::env::var("FMP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // 1. Durable record vs bare insert, 1,000 samples each.
    let store = Store::init(&tmp.path().join("a"), "bench").expect("init");
    let samples = 1000;
    let mut rec = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        let s = submission(i);
        let t = Instant::now();
        store.record(s).expect("record");
        rec.push(t.elapsed());
    }
    rec.sort();
    let bare_conn = Connection::open(tmp.path().join("bare.sqlite3")).expect("bare");
    bare_conn
        .pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    bare_conn
        .pragma_update(None, "synchronous", "FULL")
        .expect("full");
    bare_conn
        .execute(
            "CREATE TABLE s (id TEXT PRIMARY KEY, json TEXT NOT NULL)",
            [],
        )
        .expect("create");
    let mut bare = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        let json = serde_json::to_string(&submission(i)).expect("json");
        let id = uuid::Uuid::now_v7().to_string();
        let t = Instant::now();
        bare_conn
            .execute(
                "INSERT INTO s (id, json) VALUES (?1, ?2)",
                params![id, json],
            )
            .expect("insert");
        bare.push(t.elapsed());
    }
    bare.sort();
    let (rm, rp) = (percentile(&rec, 0.5), percentile(&rec, 0.99));
    let (bm, bp) = (percentile(&bare, 0.5), percentile(&bare, 0.99));
    rows.push((
        "durable record, median".into(),
        format!("{:.0} µs", rm.as_secs_f64() * 1e6),
        format!(
            "{:.2}× bare insert ({:.0} µs)",
            rm.as_secs_f64() / bm.as_secs_f64(),
            bm.as_secs_f64() * 1e6
        ),
    ));
    rows.push((
        "durable record, p99".into(),
        format!("{:.0} µs", rp.as_secs_f64() * 1e6),
        format!(
            "{:.2}× bare insert ({:.0} µs)",
            rp.as_secs_f64() / bp.as_secs_f64(),
            bp.as_secs_f64() * 1e6
        ),
    ));

    // 2. Records per second over a loop of 10,000.
    let store = Store::init(&tmp.path().join("b"), "bench").expect("init");
    let t = Instant::now();
    for i in 0..10_000u64 {
        store.record(submission(i)).expect("record");
    }
    let el = t.elapsed();
    rows.push((
        "records/s, loop of 10,000".into(),
        format!("{:.0}", 10_000.0 / el.as_secs_f64()),
        "each one durable transaction".into(),
    ));
    drop(store);
    let bytes = dir_size(&tmp.path().join("b"));
    let json_bytes: usize = (0..10_000u64)
        .map(|i| {
            serde_json::to_string(&submission(i))
                .map(|s| s.len())
                .unwrap_or(0)
        })
        .sum();
    rows.push((
        "bytes on disk per submission".into(),
        format!("{}", bytes / 10_000),
        format!(
            "{:.1}× its JSON ({} B)",
            bytes as f64 / json_bytes as f64,
            json_bytes / 10_000
        ),
    ));

    // 3. Open and list at n_big submissions (loaded in batches of 1,000).
    let dir = tmp.path().join("c");
    let store = Store::init(&dir, "bench").expect("init");
    let now = Utc::now();
    let mut i = 0u64;
    while i < n_big {
        let batch: Vec<Submission> = (i..(i + 1000).min(n_big)).map(submission).collect();
        store.record_many(batch, now).expect("batch");
        i += 1000;
    }
    drop(store);
    let t = Instant::now();
    let store = Store::open(&dir).expect("open");
    let open = t.elapsed();
    rows.push((
        format!("open a store of {n_big}"),
        format!("{:.1} ms", open.as_secs_f64() * 1e3),
        "aim: < 100 ms".into(),
    ));
    let month = chrono::NaiveDate::from_ymd_opt(2020, 6, 1);
    let filter = Filter {
        fmp: Some("ML-HER".into()),
        from: month,
        to: chrono::NaiveDate::from_ymd_opt(2020, 6, 30),
        ..Filter::default()
    };
    let t = Instant::now();
    let listed = store.list(&filter).expect("list");
    let list = t.elapsed();
    rows.push((
        format!("list ML-HER, June 2020 ({} rows)", listed.len()),
        format!("{:.1} ms", list.as_secs_f64() * 1e3),
        format!("of {n_big} submissions"),
    ));
    rows.push((
        "disk per submission at this size".into(),
        format!("{} B", dir_size(&dir) / n_big.max(1)),
        String::new(),
    ));

    println!("| measure | value | beside |");
    println!("|---|---|---|");
    for (a, b, c) in rows {
        println!("| {a} | {b} | {c} |");
    }
}
