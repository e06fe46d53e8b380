//! Sync speed benchmark: wall time, the client's and the hub's share of
//! it, round trips and bytes for the scenarios of a field sync of 10,000
//! DTM submissions. `cargo bench -p fmp-sync --bench speed` (release).
//!
//! Client and hub run in one thread (`respond` is called in place of the
//! network), so the time inside `respond` is the hub's CPU and the rest of
//! the wall time the client's. Stores live in the system's temp directory
//! (on disk: durable commits included); `FMP_BENCH_DIR` puts them
//! elsewhere, `FMP_BENCH_N` changes the 10,000.
//!
//! A second table compares a serial client (`Client::run`: the next request
//! built once the last answer is stored) with a pipelined one
//! (`Client::run_pipelined`, what `fmp sync` runs: the next request built
//! and answered on another thread while the last answer is stored), for a
//! first push and a pull of the whole log, on a link of no latency and of
//! `FMP_BENCH_RTT_MS` (default `0,600`: half slept before the hub answers,
//! half after). `FMP_BENCH_MODES=serial` runs only the serial rows.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fmp_core::Submission;
use fmp_core::store::Store;
use fmp_sync::{Client, Report, StaticTrust, respond};

mod common;
use common::{Rep, id, trust_all};

const MAX: u32 = 64 * 1024;

fn submission(fmp: &str, n: u32) -> Submission {
    let mut s = fmp_core::example_submission();
    s.id = None;
    s.fmp = fmp.into();
    s.observed_at += chrono::Duration::minutes(i64::from(n) * 7);
    let men = 1 + n % 40;
    s.people.adult_male = men;
    s.nationalities.clear();
    s.nationalities.insert(
        "MLI".into(),
        men + s.people.adult_female + s.people.minor_male + s.people.minor_female - 1,
    );
    s.nationalities.insert("BFA".into(), 1);
    s.notes = if n.is_multiple_of(10) {
        format!("convoy {n}")
    } else {
        String::new()
    };
    s
}

fn rep(name: &str) -> Rep {
    let base = std::env::var_os("FMP_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    common::rep(name, &base)
}

/// One sync of `client` with `hub`; the wall time and the hub's part of it.
fn sync(client: Client<'_>, hub: &Store, trust: &StaticTrust) -> (Report, Duration, Duration) {
    let in_hub = Cell::new(Duration::ZERO);
    let t = Instant::now();
    let report = client
        .with_max_bytes(MAX)
        .run(|req| {
            let h = Instant::now();
            let r = respond(hub, trust, &req);
            in_hub.set(in_hub.get() + h.elapsed());
            r
        })
        .expect("sync");
    (report, t.elapsed(), in_hub.get())
}

/// One sync over a link of `rtt`, serial or pipelined: the wall time and
/// the time spent inside `respond` (the hub's work, on either thread).
fn sync_over(
    client: Client<'_>,
    hub: &Store,
    trust: &StaticTrust,
    rtt: Duration,
    pipelined: bool,
) -> (Report, Duration, Duration) {
    let in_hub = Mutex::new(Duration::ZERO);
    let send = |req: Vec<u8>| {
        std::thread::sleep(rtt / 2);
        let h = Instant::now();
        let r = respond(hub, trust, &req);
        *in_hub.lock().expect("lock") += h.elapsed();
        std::thread::sleep(rtt / 2);
        r
    };
    let t = Instant::now();
    let client = client.with_max_bytes(MAX);
    let report = if pipelined {
        client.run_pipelined(send)
    } else {
        client.run(send)
    }
    .expect("sync");
    let hub_time = *in_hub.lock().expect("lock");
    (report, t.elapsed(), hub_time)
}

fn row(name: &str, changes: u64, (r, wall, hub): &(Report, Duration, Duration)) {
    let client = wall.saturating_sub(*hub);
    let per = |d: &Duration| {
        if changes == 0 {
            "–".to_string()
        } else {
            format!("{:.3}", d.as_secs_f64() * 1000.0 / changes as f64)
        }
    };
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
        wall.as_secs_f64(),
        client.as_secs_f64(),
        hub.as_secs_f64(),
        per(&client),
        per(hub),
        r.round_trips,
        r.bytes_sent + r.bytes_received,
    );
}

fn main() {
    let n: u32 = std::env::var("FMP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let fmps = ["ML-HER", "ML-GOG", "ML-MNK", "ML-BEN", "ML-BKO"];
    let phone = rep("phone");
    let hub = rep("hub");
    let empty = rep("new-device");
    let trust = trust_all(&[&phone, &hub, &empty]);
    let t0 = Instant::now();
    let subs: Vec<Submission> = (0..n)
        .map(|i| submission(fmps[(i % 5) as usize], i))
        .collect();
    let ids = phone
        .store
        .record_many(subs, chrono::Utc::now())
        .expect("record");
    eprintln!("setup: {n} recorded in {:.1} s", t0.elapsed().as_secs_f64());
    let n64 = u64::from(n);

    println!(
        "| scenario ({n} submissions) | wall s | client s | hub s | client ms/change | hub ms/change | round trips | bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let first = sync(
        Client::new(&phone.store, &trust, id(&hub)),
        &hub.store,
        &trust,
    );
    row("first push", n64, &first);

    for i in n..n + 100 {
        phone
            .store
            .record(submission(fmps[(i % 5) as usize], i))
            .expect("record");
    }
    for (k, i) in ids
        .iter()
        .step_by((n as usize / 50).max(1))
        .take(50)
        .enumerate()
    {
        phone
            .store
            .edit(
                *i,
                &serde_json::json!({"notes": format!("checked {k}"), "transport": "truck"}),
            )
            .expect("edit");
    }
    let inc = sync(
        Client::new(&phone.store, &trust, id(&hub)),
        &hub.store,
        &trust,
    );
    row("incremental (100 new + 50 edited)", 150, &inc);

    let noop = sync(
        Client::new(&phone.store, &trust, id(&hub)),
        &hub.store,
        &trust,
    );
    row("no-op", 0, &noop);

    // The phone's cursor lost on both sides, pushed again by cursor from 0:
    // every change is one the hub has.
    fmp_sync::forget_peer(&phone.store, id(&hub)).expect("forget");
    fmp_sync::forget_peer(&hub.store, id(&phone)).expect("forget");
    let known = sync(
        Client::new(&phone.store, &trust, id(&hub)),
        &hub.store,
        &trust,
    );
    row("re-push of known changes (cursor lost)", n64 + 150, &known);

    let pull = sync(
        Client::new(&empty.store, &trust, id(&hub)),
        &hub.store,
        &trust,
    );
    row("pull into an empty device", n64 + 150, &pull);

    // The same device as a restored copy: all of it, no cursor either side.
    fmp_sync::forget_peer(&empty.store, id(&hub)).expect("forget");
    fmp_sync::forget_peer(&hub.store, id(&empty)).expect("forget");
    let client = Client::new(&empty.store, &trust, id(&hub))
        .reconcile()
        .expect("reconcile");
    let restored = sync(client, &hub.store, &trust);
    row("restored copy (all shared, no cursor)", 0, &restored);
    let bytes = |r: &(Report, Duration, Duration)| (r.0.bytes_sent + r.0.bytes_received) as f64;
    println!();
    println!(
        "restored copy / pull into an empty device: {:.1} % of the bytes",
        100.0 * bytes(&restored) / bytes(&pull)
    );

    // Serial against pipelined, each on fresh stores: the phone's whole
    // log pushed to a new hub, the hub's pulled into a new device.
    let rtts: Vec<u64> = std::env::var("FMP_BENCH_RTT_MS")
        .unwrap_or_else(|_| "0,600".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let modes: Vec<bool> = match std::env::var("FMP_BENCH_MODES").as_deref() {
        Ok("serial") => vec![false],
        _ => vec![false, true],
    };
    println!();
    println!(
        "| scenario ({} changes) | RTT ms | client | wall s | hub s | round trips | bytes |",
        n64 + 150
    );
    println!("|---|---|---|---|---|---|---|");
    for rtt in rtts {
        for &pipelined in &modes {
            let mode = if pipelined { "pipelined" } else { "serial" };
            let new_hub = rep("hub-again");
            let device = rep("device-again");
            let trust = trust_all(&[&phone, &hub, &new_hub, &device]);
            let d = Duration::from_millis(rtt);
            for (name, r) in [
                (
                    "first push",
                    sync_over(
                        Client::new(&phone.store, &trust, id(&new_hub)),
                        &new_hub.store,
                        &trust,
                        d,
                        pipelined,
                    ),
                ),
                (
                    "pull into an empty device",
                    sync_over(
                        Client::new(&device.store, &trust, id(&hub)),
                        &hub.store,
                        &trust,
                        d,
                        pipelined,
                    ),
                ),
            ] {
                println!(
                    "| {name} | {rtt} | {mode} | {:.2} | {:.2} | {} | {} |",
                    r.1.as_secs_f64(),
                    r.2.as_secs_f64(),
                    r.0.round_trips,
                    r.0.bytes_sent + r.0.bytes_received,
                );
            }
        }
    }
}
