//! The field benchmark (issue 7): ONE table, each figure beside its floor.
//!
//! `scripts/field-bench.sh` (release). It measures here local record
//! latency, a month of Heremakono through the 32 kbit/s, 600 ms fault
//! proxy, and a hub with 200 devices; and it reuses the sync bench
//! (`cargo bench -p fmp-sync --bench sync`: first, incremental, no-op,
//! reconciliation) and the report bench (`cargo bench -p fmp-report
//! --bench report`, 1,000,000 submissions): the script runs them first
//! and this reads their tables (files named by `FMP_SYNC_BENCH_OUT` and
//! `FMP_REPORT_BENCH_OUT`), so no figure is computed twice.
//!
//! Floors: bytes — zstd-3 of the same data as JSON lines; link time — the
//! floor's bytes at the link's bandwidth; record — a bare SQLite insert
//! of the JSON with the store's pragmas (WAL, synchronous=FULL); hub —
//! the same 10,000 submissions synced in memory, one store to another
//! (no HTTP, no signatures per request); report — one SQL aggregate over
//! June's rows of the same database.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fmp_core::Submission;
use fmp_core::store::Store;
use fmp_hub::client::{self, SyncOptions};
use fmp_testkit::proxy::{FaultProxy, Faults};

struct Row {
    what: String,
    value: String,
    floor: String,
    ratio: String,
}

fn row(what: &str, value: String, floor: String, ratio: f64) -> Row {
    Row {
        what: what.into(),
        value,
        floor,
        ratio: format!("{ratio:.2}×"),
    }
}

fn floor_bytes(subs: &[Submission]) -> usize {
    let mut lines = String::new();
    for s in subs {
        lines.push_str(&s.to_value().to_string());
        lines.push('\n');
    }
    zstd::bulk::compress(lines.as_bytes(), 3)
        .expect("zstd")
        .len()
}

fn month(fmp: &str, scale: f64) -> Vec<Submission> {
    fmp_report::fixture::many_months(7, (2020, 6), 1, scale)
        .into_iter()
        .filter(|s| s.fmp == fmp)
        .map(|mut s| {
            s.id = None;
            s
        })
        .collect()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn record_latency(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::init(&dir.path().join("phone"), "phone").expect("init");
    let subs = month("ML-HER", 3.0);
    let mut lat = Vec::new();
    for s in subs.iter().cycle().take(300) {
        let t = Instant::now();
        store.record(s.clone()).expect("record");
        lat.push(t.elapsed());
    }
    let conn = rusqlite::Connection::open(dir.path().join("floor.sqlite3")).expect("db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, json TEXT)", [])
        .expect("table");
    let mut base = Vec::new();
    for s in subs.iter().cycle().take(300) {
        let json = s.to_value().to_string();
        let t = Instant::now();
        conn.execute("INSERT INTO t (json) VALUES (?1)", [json])
            .expect("insert");
        base.push(t.elapsed());
    }
    let (p50, f50) = (pct(&mut lat, 0.5), pct(&mut base, 0.5));
    let p99 = pct(&mut lat, 0.99);
    rows.push(row(
        "local record latency, p50 (p99)",
        format!("{:.2} ms ({:.2} ms)", ms(p50), ms(p99)),
        format!("{:.2} ms bare SQLite insert", ms(f50)),
        p50.as_secs_f64() / f50.as_secs_f64(),
    ));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn joined_phone(
    root: &std::path::Path,
    hub_dir: &std::path::Path,
    url: &str,
    name: &str,
    fmp: &str,
) -> Store {
    let phone = Store::init(&root.join(name), name).expect("init");
    let hub = Store::open(hub_dir).expect("open hub");
    let code =
        fmp_hub::enroll::create_code(&hub, &[fmp.to_string()], Duration::from_secs(3600), false)
            .expect("code");
    client::join(&phone, url, &code).expect("join");
    phone
}

fn heremakono_over_32k(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tmp");
    let hub_dir = dir.path().join("hub");
    Store::init(&hub_dir, "hub").expect("init");
    let hub = fmp_hub::serve(&hub_dir, "127.0.0.1:0").expect("serve");
    let proxy = FaultProxy::start(&hub.url(), Faults::seeded(1).link(32, 600)).expect("proxy");
    let phone = joined_phone(dir.path(), &hub_dir, &proxy.url(), "heremakono-1", "ML-HER");
    let subs = month("ML-HER", 1.0);
    for s in &subs {
        phone.record(s.clone()).expect("record");
    }
    let t = Instant::now();
    let sum = client::sync(&phone, SyncOptions::default()).expect("sync");
    let secs = t.elapsed().as_secs_f64();
    let floor = floor_bytes(&subs);
    let floor_secs = floor as f64 / 4000.0;
    rows.push(row(
        &format!(
            "a month of Heremakono ({} submissions) over 32 kbit/s, 600 ms",
            subs.len()
        ),
        format!(
            "{secs:.1} s, {} B, {} round trips",
            sum.bytes_sent + sum.bytes_received,
            sum.round_trips
        ),
        format!("{floor_secs:.1} s ({floor} B at 4 kB/s)"),
        secs / floor_secs,
    ));
}

fn hub_200_devices(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tmp");
    let hub_dir = dir.path().join("hub");
    Store::init(&hub_dir, "hub").expect("init");
    let limits = fmp_hub::Limits {
        rate_burst: 1e6,
        rate_per_sec: 1e6,
        ..fmp_hub::Limits::default()
    };
    let hub = fmp_hub::serve_with(fmp_hub::ServeOptions {
        store: hub_dir.clone(),
        listen: "127.0.0.1:0".into(),
        tls: None,
        limits,
    })
    .expect("serve");
    // Spread over the nine FMPs, as a region's phones are: each device
    // pulls its FMP's data from the others (about 1,100 submissions).
    let all = fmp_report::fixture::many_months(7, (2020, 6), 1, 20.0);
    let fmps: Vec<String> = fmp_core::reference::Registry::mali_default()
        .fmps
        .iter()
        .map(|f| f.code.clone())
        .collect();
    let phones: Vec<Store> = (0..200)
        .map(|i| {
            let fmp = &fmps[i % fmps.len()];
            let subs: Vec<Submission> = all
                .iter()
                .filter(|s| &s.fmp == fmp)
                .map(|s| {
                    let mut s = s.clone();
                    s.id = None;
                    s
                })
                .collect();
            let p = joined_phone(dir.path(), &hub_dir, &hub.url(), &format!("d{i}"), fmp);
            for (k, s) in subs.iter().cycle().skip(i * 50).take(50).enumerate() {
                let mut s = s.clone();
                s.notes = format!("device {i} #{k}");
                p.record(s).expect("record");
            }
            p
        })
        .collect();
    let lat = Arc::new(Mutex::new(Vec::new()));
    let pulled = Arc::new(Mutex::new(0u64));
    let t = Instant::now();
    std::thread::scope(|sc| {
        for p in &phones {
            let (lat, pulled) = (lat.clone(), pulled.clone());
            sc.spawn(move || {
                let t = Instant::now();
                let sum = client::sync(p, SyncOptions::default()).expect("sync");
                lat.lock().expect("lock").push(t.elapsed());
                *pulled.lock().expect("lock") += sum.received;
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let mut lat = lat.lock().expect("lock").clone();
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    // Floor: the same 10,000 changes from one store into another, in memory.
    let all = Store::open(&hub_dir).expect("open");
    let target = Store::init(&dir.path().join("floor"), "floor").expect("init");
    let mut trust = fmp_sync::StaticTrust::new(true);
    for s in [&all, &target] {
        trust.insert(
            s.identity().device_id,
            fmp_sync::AuthorInfo {
                public_key: s.identity().public_key().to_vec(),
                fmps: None,
                may_enroll: true,
            },
        );
    }
    let t = Instant::now();
    fmp_sync::sync_in_memory(&target, &trust, &all, &trust, fmp_sync::DEFAULT_MAX_BYTES)
        .expect("in memory");
    let floor = t.elapsed().as_secs_f64();
    rows.push(row(
        "hub: 200 devices × 50 submissions at once (9 FMPs)",
        format!(
            "{:.0} submissions/s in; {} pulled by the devices; sync p50 {:.0} ms, p99 {:.0} ms",
            10_000.0 / secs,
            *pulled.lock().expect("lock"),
            ms(p50),
            ms(p99)
        ),
        format!(
            "{:.0} submissions/s in memory, one store to another",
            10_000.0 / floor
        ),
        secs / floor,
    ));
}

/// The table another bench printed, from the file named by `var`.
fn table(var: &str) -> Option<String> {
    let path = std::env::var(var).ok()?;
    std::fs::read_to_string(path).ok()
}

fn cells(table: &str, label: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.starts_with(&format!("| {label}")))
        .map(|l| {
            l.split('|')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn sync_rows(rows: &mut Vec<Row>) {
    let Some(t) = table("FMP_SYNC_BENCH_OUT") else {
        eprintln!("no sync bench table (run scripts/field-bench.sh)");
        return;
    };
    for (label, what) in [
        ("first full sync", "sync of 10,000: first (full)"),
        ("incremental", "sync: incremental (100 new + 50 edited)"),
        ("no-op", "sync: no-op"),
        (
            "fallback reconciliation",
            "sync: reconciliation (9,900 of 10,000 shared, no cursor)",
        ),
    ] {
        // | name | round trips | up | down | total | floor | ratio | time |
        let c = cells(&t, label);
        if c.len() < 7 {
            eprintln!("sync bench: no row {label}");
            continue;
        }
        rows.push(Row {
            what: what.into(),
            value: format!("{} B, {} round trips", c[4], c[1]),
            floor: if c[5] == "–" {
                "–".into()
            } else {
                format!("{} B", c[5])
            },
            ratio: c[6].clone(),
        });
    }
}

fn report_row(rows: &mut Vec<Row>) {
    let Some(t) = table("FMP_REPORT_BENCH_OUT") else {
        eprintln!("no report bench table (run scripts/field-bench.sh)");
        return;
    };
    let c = cells(&t, "June 2020 report");
    let Some(ms_text) = c.get(1) else {
        eprintln!("report bench: no row");
        return;
    };
    let ms_v: f64 = ms_text.trim_end_matches(" ms").parse().unwrap_or(0.0);
    let db = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/fmp-report-bench-1000000.sqlite3"
    );
    let conn = rusqlite::Connection::open(db).expect("bench db");
    let t0 = Instant::now();
    let _: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT fmp, direction, sum(total) FROM submissions WHERE month = '2020-06' GROUP BY fmp, direction)",
            [],
            |r| r.get(0),
        )
        .expect("aggregate");
    let floor = ms(t0.elapsed());
    rows.push(row(
        "June report at 1,000,000 submissions",
        format!("{ms_v:.0} ms"),
        format!("{floor:.0} ms one GROUP BY over June"),
        ms_v / floor.max(0.001),
    ));
}

fn main() {
    println!("| measure | value | floor | ratio |");
    println!("|---|---|---|---|");
    let steps: [fn(&mut Vec<Row>); 5] = [
        record_latency,
        sync_rows,
        heremakono_over_32k,
        report_row,
        hub_200_devices,
    ];
    for step in steps {
        let mut rows = Vec::new();
        step(&mut rows);
        for r in rows {
            println!("| {} | {} | {} | {} |", r.what, r.value, r.floor, r.ratio);
        }
    }
}
