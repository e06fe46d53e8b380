//! Sync benchmark: prints one table for a store of 10,000 submissions.
//!
//! `cargo bench -p fmp-sync --bench sync` (release). Stores live in
//! /dev/shm when it exists, so fsync does not dominate the setup.
//! The floor beside each figure is zstd-3 of the same new data as
//! canonical JSON lines; round trips count request/response pairs; bytes
//! are both directions, whole messages after compression.

use std::time::Instant;

mod common;
use common::{Rep, id, trust_all};

use fmp_core::Submission;
use fmp_core::store::{Filter, Store};
use fmp_sync::{Client, Report, respond, sync_in_memory};
use uuid::Uuid;

const N: u32 = 10_000;
const MAX: u32 = 64 * 1024;

fn submission(fmp: &str, n: u32) -> Submission {
    let male = 5 + (n * 7 % 41);
    let female = n * 3 % 9;
    let minor = n % 4;
    let total = male + female + minor;
    let bfa = total * (n % 5) / 5;
    let places = [
        "Bobo-Dioulasso",
        "Ouagadougou",
        "Niamey",
        "Dakar",
        "Kayes",
        "Abidjan",
    ];
    let dests = ["Sikasso", "Bamako", "Gao", "Mopti", "Kayes"];
    let movement = [
        "seasonal",
        "economic_long_term",
        "short_term_local",
        "forced",
        "tourism",
    ];
    let transport = ["bus", "truck", "car", "motorbike", "foot"];
    Submission::from_json(&format!(
        r#"{{"form":"dtm-fmp-flow","form_version":1,"fmp":"{fmp}",
        "observed_at":"2020-06-{:02}T{:02}:{:02}:00Z","direction":"{}","transport":"{}",
        "departure":{{"country":"BFA","place":"{}"}},
        "next_destination":{{"country":"MLI","place":"{}"}},
        "final_destination":{{"country":"MLI"}},"movement_type":"{}",
        "people":{{"adult_male":{male},"adult_female":{female},"minor_male":{minor},"minor_female":0}},
        "vulnerable":{{"under5":{},"elderly":{},"disability":0,"pregnant":0}},
        "nationalities":{{"BFA":{bfa},"MLI":{}}},"notes":"{}"}}"#,
        1 + n % 30,
        n % 24,
        n * 13 % 60,
        if n.is_multiple_of(3) { "outgoing" } else { "incoming" },
        transport[(n % 5) as usize],
        places[(n % 6) as usize],
        dests[(n * 7 % 5) as usize],
        movement[(n * 11 % 5) as usize],
        minor.min(1),
        n % 3,
        total - bfa,
        if n.is_multiple_of(10) { format!("convoy {n}") } else { String::new() },
    ))
    .expect("valid submission")
}

fn base_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn rep(name: &str) -> Rep {
    common::rep(name, &base_dir())
}

fn floor(subs: &[Submission]) -> usize {
    let mut lines = String::new();
    for s in subs {
        lines.push_str(&serde_json::to_string(&s.to_value()).expect("json"));
        lines.push('\n');
    }
    zstd::bulk::compress(lines.as_bytes(), 3)
        .expect("zstd")
        .len()
}

fn current(store: &Store, ids: &[Uuid]) -> Vec<Submission> {
    ids.iter()
        .map(|i| store.get(*i).expect("get").submission)
        .collect()
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn row(name: &str, r: &Report, floor: Option<usize>, secs: f64) {
    let bytes = r.bytes_sent + r.bytes_received;
    let (f, ratio) = match floor {
        Some(f) if f > 0 => (f.to_string(), format!("{:.2}×", bytes as f64 / f as f64)),
        _ => ("–".into(), "–".into()),
    };
    println!(
        "| {name} | {} | {} | {} | {} | {f} | {ratio} | {:.2} s |",
        r.round_trips, r.bytes_sent, r.bytes_received, bytes, secs
    );
}

fn main() {
    let fmps = ["ML-HER", "ML-GOG", "ML-MNK", "ML-BEN", "ML-BKO"];
    let t0 = Instant::now();
    let a = rep("hub-a");
    let shared_peer = rep("restored");
    let b = rep("hq-b");
    let trust = trust_all(&[&a, &shared_peer, &b]);
    let mut all: Vec<Uuid> = Vec::new();
    for n in 0..(N - 100) {
        all.push(
            a.store
                .record(submission(fmps[(n % 5) as usize], n))
                .expect("record"),
        );
    }
    // A replica that got the first 9,900 and then lost its progress record.
    sync_in_memory(&shared_peer.store, &trust, &a.store, &trust, MAX).expect("prefill");
    fmp_sync::forget_peer(&shared_peer.store, id(&a)).expect("forget");
    fmp_sync::forget_peer(&a.store, id(&shared_peer)).expect("forget");
    for n in (N - 100)..N {
        all.push(
            a.store
                .record(submission(fmps[(n % 5) as usize], n))
                .expect("record"),
        );
    }
    eprintln!("setup: {:.1} s", t0.elapsed().as_secs_f64());
    let everything = current(&a.store, &all);
    let full_floor = floor(&everything);

    println!(
        "| sync of 10,000 submissions | round trips | bytes up | bytes down | total bytes | floor (zstd-3 JSON lines) | ratio | time |"
    );
    println!("|---|---|---|---|---|---|---|---|");

    // 1. First full sync: B pulls everything from A.
    let rss_before = rss_kib();
    reset_peak();
    let t = Instant::now();
    let full = sync_in_memory(&b.store, &trust, &a.store, &trust, MAX).expect("full");
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_kib();
    row(
        "first full sync (pull 10,000)",
        &full,
        Some(full_floor),
        secs,
    );

    // 2. Fallback reconciliation: 9,900 of A's first 10,000 shared, no cursor.
    let missing = current(&a.store, &all[(N - 100) as usize..]);
    let t = Instant::now();
    let rec = Client::new(&shared_peer.store, &trust, id(&a))
        .with_max_bytes(MAX)
        .reconcile()
        .expect("reconcile")
        .run(|req| respond(&a.store, &trust, &req))
        .expect("run");
    let rec_secs = t.elapsed().as_secs_f64();
    row(
        "fallback reconciliation (9,900 of 10,000 shared)",
        &rec,
        Some(floor(&missing)),
        rec_secs,
    );
    // 3. Incremental: 100 new and 50 edited on A, B syncs.
    let mut touched = Vec::new();
    for n in N..N + 100 {
        touched.push(
            a.store
                .record(submission(fmps[(n % 5) as usize], n))
                .expect("record"),
        );
    }
    for (k, i) in all.iter().step_by(N as usize / 50).take(50).enumerate() {
        a.store
            .edit(*i, &serde_json::json!({"notes": format!("checked by supervisor {k}"), "transport": "truck"}))
            .expect("edit");
        touched.push(*i);
    }
    let inc_floor = floor(&current(&a.store, &touched));
    let t = Instant::now();
    let inc = sync_in_memory(&b.store, &trust, &a.store, &trust, MAX).expect("incremental");
    row(
        "incremental (100 new + 50 edited)",
        &inc,
        Some(inc_floor),
        t.elapsed().as_secs_f64(),
    );

    // 4. No-op.
    let t = Instant::now();
    let noop = sync_in_memory(&b.store, &trust, &a.store, &trust, MAX).expect("noop");
    row("no-op", &noop, None, t.elapsed().as_secs_f64());

    let full_bytes = (full.bytes_sent + full.bytes_received) as f64;
    let rec_bytes = (rec.bytes_sent + rec.bytes_received) as f64;
    println!();
    println!(
        "fallback / full sync: {:.1} %; peak RSS during the full sync: {} MiB (both replicas in one process; {} MiB before it)",
        100.0 * rec_bytes / full_bytes,
        peak / 1024,
        rss_before / 1024
    );
    let a_count = a.store.list(&Filter::default()).expect("list").len();
    let b_count = b.store.list(&Filter::default()).expect("list").len();
    let r_count = shared_peer
        .store
        .list(&Filter::default())
        .expect("list")
        .len();
    println!("submissions: A {a_count}, B {b_count}, restored {r_count}");
    assert_eq!(a_count, b_count);
    assert_eq!(
        r_count, N as usize,
        "the restored replica got the 100 it lacked"
    );
    granularity_spike();
}

/// Granularity spike: the same submissions as one document each, or as
/// one document per FMP-day (a map of submissions), in automerge 0.12.
fn granularity_spike() {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjId, ObjType, ROOT};
    fn put_json(d: &mut AutoCommit, obj: &ObjId, v: &serde_json::Value) {
        if let Some(m) = v.as_object() {
            for (k, x) in m {
                match x {
                    serde_json::Value::Object(_) => {
                        let c = d.put_object(obj, k.as_str(), ObjType::Map).expect("map");
                        put_json(d, &c, x);
                    }
                    serde_json::Value::String(s) => {
                        d.put(obj, k.as_str(), s.as_str()).expect("put")
                    }
                    serde_json::Value::Number(n) => d
                        .put(obj, k.as_str(), n.as_i64().unwrap_or(0))
                        .expect("put"),
                    serde_json::Value::Bool(b) => d.put(obj, k.as_str(), *b).expect("put"),
                    _ => {}
                }
            }
        }
    }
    let actor = fmp_core::doc::actor_for(Uuid::from_bytes([7; 16]));
    let per_day = 200u32;
    let subs: Vec<Submission> = (0..per_day)
        .map(|n| {
            let mut s = submission("ML-HER", n);
            s.id = Some(Uuid::now_v7());
            s
        })
        .collect();
    // (a) one document per submission.
    let (mut saves, mut raw) = (0usize, Vec::new());
    for s in &subs {
        let id = s.id.unwrap_or_default();
        let mut d = fmp_core::doc::new_submission(actor.clone(), id, s).expect("doc");
        fmp_core::doc::commit(&mut d, fmp_core::doc::Op::Record, 0);
        saves += d.save().len();
        raw.extend_from_slice(d.get_last_local_change().expect("change").raw_bytes());
    }
    let a_z = zstd::bulk::compress(&raw, 3).expect("zstd").len();
    // (b) one document per FMP-day, one change per submission.
    let mut day = AutoCommit::new().with_actor(actor);
    let mut raw_b = Vec::new();
    let root = day
        .put_object(ROOT, "submissions", ObjType::Map)
        .expect("map");
    for s in &subs {
        let m = day
            .put_object(&root, s.id.unwrap_or_default().to_string(), ObjType::Map)
            .expect("map");
        put_json(&mut day, &m, &s.to_value());
        fmp_core::doc::commit(&mut day, fmp_core::doc::Op::Record, 0);
        raw_b.extend_from_slice(day.get_last_local_change().expect("change").raw_bytes());
    }
    let b_save = day.save().len();
    let b_z = zstd::bulk::compress(&raw_b, 3).expect("zstd").len();
    let n = per_day as usize;
    println!();
    println!(
        "| granularity ({per_day} submissions, one FMP-day) | saved bytes / submission | change bytes / submission, raw | zstd-3 of the batch / submission |"
    );
    println!("|---|---|---|---|");
    println!(
        "| one document per submission | {} | {} | {} |",
        saves / n,
        raw.len() / n,
        a_z / n
    );
    println!(
        "| one document per FMP-day | {} | {} | {} |",
        b_save / n,
        raw_b.len() / n,
        b_z / n
    );
    println!(
        "| floor: JSON lines, zstd-3 | – | – | {} |",
        floor(&subs) / n
    );
}
