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
use fmp_core::store::{Store, testing};
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
    let mut base = testing::bare_insert_timings(
        &dir.path().join("floor.sqlite3"),
        subs.iter()
            .cycle()
            .take(300)
            .map(|s| s.to_value().to_string()),
    )
    .expect("bare inserts");
    let (p50, f50) = (pct(&mut lat, 0.5), pct(&mut base, 0.5));
    let p99 = pct(&mut lat, 0.99);
    rows.push(row(
        "local record latency, p50 (p99)",
        format!("{:.2} ms ({:.2} ms)", ms(p50), ms(p99)),
        format!("{:.2} ms bare SQLite insert", ms(f50)),
        p50.as_secs_f64() / f50.as_secs_f64(),
    ));
}

/// `1 round trip`, `13 round trips`.
fn trips(n: &str) -> String {
    if n == "1" {
        "1 round trip".into()
    } else {
        format!("{n} round trips")
    }
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
    // The first sync after joining (reference data, certificates) is not
    // the month's: it goes first, untimed, and its bytes are shown apart.
    let first = client::sync(&phone, SyncOptions::default()).expect("first sync");
    let subs = month("ML-HER", 1.0);
    for s in &subs {
        phone.record(s.clone()).expect("record");
    }
    let t = Instant::now();
    let sum = client::sync(&phone, SyncOptions::default()).expect("sync");
    let secs = t.elapsed().as_secs_f64();
    // The floor is the data as stored, ids included (as the sync bench's).
    let stored: Vec<Submission> = phone
        .list(&Default::default())
        .expect("list")
        .into_iter()
        .map(|s| s.submission)
        .collect();
    let floor = floor_bytes(&stored);
    let floor_secs = floor as f64 / 4000.0;
    rows.push(row(
        &format!(
            "a month of Heremakono ({} submissions) over 32 kbit/s, 600 ms",
            subs.len()
        ),
        format!(
            "{secs:.1} s, {} B, {} (after joining: {} B)",
            sum.bytes_sent + sum.bytes_received,
            trips(&sum.round_trips.to_string()),
            first.bytes_sent + first.bytes_received
        ),
        format!("{floor_secs:.1} s ({floor} B at 4 kB/s)"),
        secs / floor_secs,
    ));
}

/// Longest link time one goodput run is given (a fixed size a link never
/// lets through delivers nothing in it).
const GOODPUT_BUDGET: Duration = Duration::from_secs(60);

/// One goodput run: a fresh hub and phone (joined directly, first sync
/// directly), `subs` recorded, then `fmp sync`s through `faults` until
/// every submission is at the hub or the budget is spent. The canonical
/// JSON bytes of the submissions the hub holds, the link time, the syncs
/// it took, and whether all arrived.
fn goodput_run(
    subs: &[Submission],
    faults: Faults,
    max_bytes: u32,
    fixed: bool,
) -> (usize, f64, u32, bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let hub_dir = dir.path().join("hub");
    Store::init(&hub_dir, "hub").expect("init");
    let hub = fmp_hub::serve(&hub_dir, "127.0.0.1:0").expect("serve");
    let phone = joined_phone(dir.path(), &hub_dir, &hub.url(), "heremakono-1", "ML-HER");
    client::sync(&phone, SyncOptions::default()).expect("first sync");
    phone
        .record_many(subs.to_vec(), chrono::Utc::now())
        .expect("record");
    let proxy = FaultProxy::start(&hub.url(), faults).expect("proxy");
    let cancel = client::CancelToken::new();
    let c2 = cancel.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        if done_rx.recv_timeout(GOODPUT_BUDGET).is_err() {
            c2.cancel();
        }
    });
    let t = Instant::now();
    let mut syncs = 0;
    loop {
        syncs += 1;
        let r = client::sync(
            &phone,
            SyncOptions {
                url: Some(proxy.url()),
                max_bytes,
                fixed_size: fixed,
                cancel: Some(cancel.clone()),
                ..SyncOptions::default()
            },
        );
        if r.is_ok() || cancel.is_cancelled() {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = done_tx.send(());
    let _ = timer.join();
    let held = Store::open(&hub_dir)
        .expect("open")
        .list(&Default::default())
        .expect("list");
    let bytes = held
        .iter()
        .map(|s| s.submission.to_value().to_string().len())
        .sum();
    (bytes, secs, syncs, held.len() == subs.len())
}

/// Goodput (submission bytes delivered per second of link time) on links
/// that cut every connection after 2, 8 and 32 KB (64 kbit/s, 100 ms one
/// way) and on the clean 32 kbit/s, 600 ms link: the adaptive message size
/// beside fixed 64 KiB and fixed 1.5 KB messages. Floor: both fixed sizes
/// on the same link; ratio: the better of them over the adaptive one.
fn goodput(rows: &mut Vec<Row>) {
    let subs = month("ML-HER", 1.0);
    let links: [(&str, Faults); 4] = [
        (
            "cut every 2 KB",
            Faults::seeded(2)
                .link(64, 100)
                .cut_after(2_000..=2_000, None),
        ),
        (
            "cut every 8 KB",
            Faults::seeded(8)
                .link(64, 100)
                .cut_after(8_000..=8_000, None),
        ),
        (
            "cut every 32 KB",
            Faults::seeded(32)
                .link(64, 100)
                .cut_after(32_000..=32_000, None),
        ),
        ("32 kbit/s, 600 ms", Faults::seeded(1).link(32, 600)),
    ];
    for (name, faults) in links {
        let mut figures = Vec::new();
        for (label, max, fixed) in [
            ("adaptive", fmp_sync::DEFAULT_MAX_BYTES, false),
            ("fixed 64 KiB", fmp_sync::DEFAULT_MAX_BYTES, true),
            ("fixed 1.5 KB", 1_500, true),
        ] {
            let (bytes, secs, syncs, all) = goodput_run(&subs, faults.clone(), max, fixed);
            eprintln!(
                "goodput {name}, {label}: {bytes} B in {secs:.1} s, {syncs} sync(s), all: {all}"
            );
            figures.push((label, bytes as f64 / secs, secs, all));
        }
        let best_fixed = figures[1].1.max(figures[2].1);
        let shown = |f: &(&str, f64, f64, bool)| {
            format!(
                "{} {:.0} B/s ({:.1} s{})",
                f.0,
                f.1,
                f.2,
                if f.3 { "" } else { ", not all delivered" }
            )
        };
        rows.push(Row {
            what: format!("goodput, {} submissions, {name}", subs.len()),
            value: shown(&figures[0]),
            floor: format!("{}; {}", shown(&figures[1]), shown(&figures[2])),
            ratio: format!("{:.2}×", best_fixed / figures[0].1.max(1e-9)),
        });
    }
}

/// A registry of `n` FMPs: Mali's nine, then copies of Gogui (a border
/// post) under new codes, so 200 devices can be spread two per FMP as a
/// post's enumerators are.
fn registry_of(n: usize) -> fmp_core::reference::Registry {
    let mut r = fmp_core::reference::Registry::mali_default();
    let gogui = r
        .get("ML-GOG")
        .cloned()
        .expect("Gogui in the default registry");
    for i in r.fmps.len()..n {
        let mut f = gogui.clone();
        f.code = format!("ML-B{i:03}");
        f.name = format!("Bench post {i}");
        r.fmps.push(f);
    }
    r
}

fn hub_200_devices(rows: &mut Vec<Row>) {
    const DEVICES: usize = 200;
    const PER: usize = 50;
    let dir = tempfile::tempdir().expect("tmp");
    let hub_dir = dir.path().join("hub");
    let registry = registry_of(DEVICES / 2);
    Store::init(&hub_dir, "hub")
        .expect("init")
        .set_registry(&registry)
        .expect("registry");
    let limits = fmp_hub::Limits {
        rate_burst: 1e6,
        rate_per_sec: 1e6,
        join_burst: 1e6,
        join_per_sec: 1e6,
        join_global_burst: 1e6,
        join_global_per_sec: 1e6,
        ..fmp_hub::Limits::default()
    };
    let hub = fmp_hub::serve_with(fmp_hub::ServeOptions {
        store: hub_dir.clone(),
        listen: "127.0.0.1:0".into(),
        tls: None,
        limits,
    })
    .expect("serve");
    // Two devices per FMP, as a post's enumerators: each pushes its 50 and
    // pulls what its partner already pushed, so the 2 cores shared with
    // the 200 clients mostly measure the hub, not 200 phones' CPUs.
    let june: Vec<Submission> = month("ML-GOG", 3.0);
    let t = Instant::now();
    let phones: Vec<Store> = (0..DEVICES)
        .map(|i| {
            let fmp = &registry.fmps[i / 2].code;
            let p = joined_phone(dir.path(), &hub_dir, &hub.url(), &format!("d{i}"), fmp);
            client::sync(&p, SyncOptions::default()).expect("registry sync");
            let subs = june
                .iter()
                .cycle()
                .skip(i * PER)
                .take(PER)
                .enumerate()
                .map(|(k, s)| {
                    let mut s = s.clone();
                    s.fmp = fmp.clone();
                    s.notes = format!("device {i} #{k}");
                    s
                })
                .collect();
            p.record_many(subs, chrono::Utc::now()).expect("record");
            p
        })
        .collect();
    eprintln!(
        "hub bench: {DEVICES} devices joined and recorded {} offline in {:.1} s",
        DEVICES * PER,
        t.elapsed().as_secs_f64()
    );
    let lat = Arc::new(Mutex::new(Vec::new()));
    let totals = Arc::new(Mutex::new((0u64, 0u64, 0u64, 0u64)));
    let t = Instant::now();
    std::thread::scope(|sc| {
        for p in &phones {
            let (lat, totals) = (lat.clone(), totals.clone());
            sc.spawn(move || {
                let t = Instant::now();
                let sum = client::sync(p, SyncOptions::default()).expect("sync");
                lat.lock().expect("lock").push(t.elapsed());
                let mut g = totals.lock().expect("lock");
                g.0 += sum.sent;
                g.1 += sum.received;
                g.2 += u64::from(sum.round_trips);
                g.3 += u64::from(sum.retries);
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let mut lat = lat.lock().expect("lock").clone();
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    let (sent, pulled, round_trips, retries) = *totals.lock().expect("lock");
    let held = Store::open(&hub_dir)
        .expect("open")
        .list(&Default::default())
        .expect("list")
        .len();
    assert_eq!(
        held,
        DEVICES * PER,
        "the hub must hold every submission once"
    );
    // Floor: the same changes from one store into another, in memory
    // (verify, apply, materialize; no HTTP, no per-request signatures).
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
                role: fmp_sync::Role::Hq,
            },
        );
    }
    let t = Instant::now();
    fmp_sync::sync_in_memory(&target, &trust, &all, &trust, fmp_sync::DEFAULT_MAX_BYTES)
        .expect("in memory");
    let floor = t.elapsed().as_secs_f64();
    let n = (DEVICES * PER) as f64;
    rows.push(row(
        &format!(
            "hub: {DEVICES} devices × {PER} submissions syncing at once (2 per FMP)"
        ),
        format!(
            "{:.0} submissions/s in ({sent} in, {pulled} pulled, {round_trips} round trips, {retries} retries); sync p50 {:.0} ms, p99 {:.0} ms",
            n / secs,
            ms(p50),
            ms(p99)
        ),
        format!("{:.0} submissions/s in memory, one store to another", n / floor),
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
            value: format!("{} B, {}", c[4], trips(&c[1])),
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
    // The report bench's store (a directory since the report reads it
    // through the store's API).
    let db = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/fmp-report-bench-1000000"
    ))
    .join(fmp_core::store::DB_FILE);
    let floor = ms(testing::month_aggregate_time(&db, "2020-06").expect("aggregate"));
    rows.push(row(
        "June report at 1,000,000 submissions",
        format!("{ms_v:.0} ms"),
        format!("{floor:.0} ms one GROUP BY over June"),
        ms_v / floor.max(0.001),
    ));
}

/// One part of the table: appends its rows.
type Step = fn(&mut Vec<Row>);

fn main() {
    // `FMP_FIELD_STEPS=hub,record` runs only those rows (names below).
    let only = std::env::var("FMP_FIELD_STEPS").ok();
    let steps: [(&str, Step); 6] = [
        ("record", record_latency),
        ("sync", sync_rows),
        ("heremakono", heremakono_over_32k),
        ("report", report_row),
        ("hub", hub_200_devices),
        ("goodput", goodput),
    ];
    println!("| measure | value | floor | ratio |");
    println!("|---|---|---|---|");
    for (name, step) in steps {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|w| w.trim() == name))
        {
            continue;
        }
        let mut rows = Vec::new();
        step(&mut rows);
        for r in rows {
            println!("| {} | {} | {} | {} |", r.what, r.value, r.floor, r.ratio);
        }
    }
}
