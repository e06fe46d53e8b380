//! Pipelining (ADR 0001, "Keeping the link busy"): the next request goes
//! out while the last answer is being stored, and a sync cut anywhere in
//! the pipeline (the request sent ahead lost, its answer lost, both)
//! resumes from the stored cursors and converges, every change once.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use fmp_core::store::{Store, StoreError};
use fmp_sync::{Client, Report, SyncError, respond};
use rand::{Rng, SeedableRng};

/// A phone with `mine` records of its own syncing with a hub holding
/// `theirs` from another device, both ways in several messages.
fn pair(mine: u32, theirs: u32) -> (Replica, Replica, fmp_sync::StaticTrust) {
    let phone = replica("phone");
    let hub = replica("hub");
    let other = replica("other");
    let trust = trust_all(&[&phone, &hub, &other]);
    for n in 0..mine {
        phone
            .store
            .record(submission(FMPS[(n % 4) as usize], n))
            .expect("record");
    }
    for n in 0..theirs {
        other
            .store
            .record(submission("ML-GOG", 10_000 + n))
            .expect("record other");
    }
    if theirs > 0 {
        fmp_sync::sync_in_memory(&other.store, &trust, &hub.store, &trust, 65536)
            .expect("other to hub");
    }
    (phone, hub, trust)
}

/// Runs a sync of the phone with the hub while holding the phone's writer
/// from the moment the hub gets request 1 until it gets request 2 (or
/// `wait` passes): storing answer 1 waits meanwhile. True if request 2
/// reached the hub while the writer was still held, that is before
/// answer 1 was stored.
fn second_request_while_first_answer_unstored(pipelined: bool, wait: Duration) -> (bool, Report) {
    let (phone, hub, trust) = pair(120, 60);
    let held = AtomicBool::new(false);
    let second_seen = AtomicBool::new(false);
    let second_while_held = AtomicBool::new(false);
    let calls = AtomicU32::new(0);
    let report = std::thread::scope(|s| {
        let send = |req: Vec<u8>| -> Result<Vec<u8>, SyncError> {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => {
                    s.spawn(|| {
                        phone.store.transaction(|_| -> Result<(), StoreError> {
                            held.store(true, Ordering::SeqCst);
                            let until = Instant::now() + wait;
                            while !second_seen.load(Ordering::SeqCst) && Instant::now() < until {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            held.store(false, Ordering::SeqCst);
                            Ok(())
                        })
                    });
                    while !held.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                1 => {
                    second_while_held.store(held.load(Ordering::SeqCst), Ordering::SeqCst);
                    second_seen.store(true, Ordering::SeqCst);
                }
                _ => {}
            }
            respond(&hub.store, &trust, &req)
        };
        let client = Client::new(&phone.store, &trust, id(&hub)).with_max_bytes(4096);
        if pipelined {
            client.run_pipelined(send)
        } else {
            client.run(send)
        }
    })
    .expect("sync");
    assert_eq!(dump(&phone.store), dump(&hub.store), "converged");
    (second_while_held.load(Ordering::SeqCst), report)
}

/// The deterministic sign of pipelining: request 2 reaches the hub while
/// the phone's store is held so that answer 1 cannot be stored. A serial
/// client cannot send it before storing answer 1 (checked below: it
/// waits out the hold).
#[test]
fn the_next_request_reaches_the_hub_while_the_last_answer_is_being_stored() {
    let (early, report) = second_request_while_first_answer_unstored(true, Duration::from_secs(30));
    assert!(
        early,
        "request 2 must go out before answer 1 is stored: {report:?}"
    );
    assert!(report.round_trips > 3, "several messages: {report:?}");
    assert_eq!((report.pushed, report.pulled), (120, 60), "{report:?}");
}

/// The same observation of a serial client: request 2 comes only after
/// the hold ends (the observation can tell the two apart).
#[test]
fn a_serial_client_sends_the_next_request_only_after_storing_the_answer() {
    let (early, report) =
        second_request_while_first_answer_unstored(false, Duration::from_millis(1500));
    assert!(!early, "{report:?}");
}

/// A transport that fails at random: the request lost before the hub
/// sees it, or the answer lost after the hub stored it. Calls from the
/// pipeline's thread (requests sent ahead) are counted.
struct Flaky {
    rng: rand::rngs::StdRng,
    per_mille: u32,
    ahead: u32,
    main: std::thread::ThreadId,
}

impl Flaky {
    fn send(
        &mut self,
        hub: &Replica,
        trust: &fmp_sync::StaticTrust,
        req: Vec<u8>,
    ) -> Result<Vec<u8>, SyncError> {
        if std::thread::current().id() != self.main {
            self.ahead += 1;
        }
        let fail = self.rng.random_range(0..1000) < self.per_mille;
        let before = self.rng.random_bool(0.5);
        if fail && before {
            return Err(SyncError::Malformed("cut before the hub".into()));
        }
        let resp = respond(&hub.store, trust, &req)?;
        if fail {
            return Err(SyncError::Malformed("cut after the hub stored it".into()));
        }
        Ok(resp)
    }
}

/// Cuts at random points of pipelined syncs, seeded: a request sent
/// ahead lost, its answer lost after the hub stored it, the answer being
/// stored meanwhile or not. Each sync resumes from the stored cursors
/// (a new client, as after a kill); in the end both hold the same, every
/// change exactly once, and a further sync has nothing to do.
#[test]
fn cuts_anywhere_in_a_pipelined_sync_resume_and_converge_every_change_once() {
    for seed in 0..6u64 {
        let (phone, hub, trust) = pair(150, 80);
        let mut flaky = Flaky {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            per_mille: 300,
            ahead: 0,
            main: std::thread::current().id(),
        };
        let flaky = std::sync::Mutex::new(&mut flaky);
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts < 200, "seed {seed}: no progress");
            let r = Client::new(&phone.store, &trust, id(&hub))
                .with_max_bytes(3000)
                .run_pipelined(|req| {
                    flaky
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .send(&hub, &trust, req)
                });
            match r {
                Ok(_) => break,
                Err(SyncError::Malformed(m)) if m.starts_with("cut") => continue,
                Err(e) => panic!("seed {seed}: {e}"),
            }
        }
        let ahead = flaky.lock().unwrap_or_else(|p| p.into_inner()).ahead;
        assert!(ahead > 5, "seed {seed}: requests were sent ahead ({ahead})");
        assert_eq!(dump(&phone.store), dump(&hub.store), "seed {seed}");
        for s in [&phone.store, &hub.store] {
            assert_eq!(
                testing::count_rows(s, "changes").expect("count"),
                230,
                "seed {seed}: every change once"
            );
            assert_eq!(testing::count_rows(s, "pending").expect("count"), 0);
        }
        let noop = fmp_sync::sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536)
            .expect("noop");
        assert_eq!(
            (noop.round_trips, noop.pushed, noop.pulled),
            (1, 0, 0),
            "seed {seed}: {noop:?}"
        );
    }
}

/// A request sent ahead pushes changes that depend on those of the
/// request before it (edits of records the earlier message created): the
/// hub stores request n before it answers it, and request n+1 leaves only
/// after that answer is read, so nothing is held back or refused.
#[test]
fn pushed_edits_depending_on_the_previous_message_are_stored_in_order() {
    let phone = replica("phone");
    let hub = replica("hub");
    let trust = trust_all(&[&phone, &hub]);
    let mut ids = Vec::new();
    for n in 0..80 {
        ids.push(phone.store.record(submission("ML-HER", n)).expect("record"));
    }
    for (k, id) in ids.iter().enumerate() {
        phone
            .store
            .edit(*id, &serde_json::json!({"notes": format!("edit {k}")}))
            .expect("edit");
    }
    let r = fmp_sync::sync_in_memory(&phone.store, &trust, &hub.store, &trust, 2500).expect("sync");
    assert!(r.round_trips > 4, "{r:?}");
    assert_eq!(r.pushed, 160, "{r:?}");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert_eq!(
        testing::count_rows(&hub.store, "pending").expect("count"),
        0
    );
    assert_eq!(dump(&phone.store), dump(&hub.store));
}

/// Why one device's requests must reach the hub in order, and do: a hub
/// that took request n+1 before request n (a copy of the hub here) would
/// refuse the edits n+1 carries of records n brings, as depending on
/// changes it does not have; taken in order, nothing is refused. A
/// pipelined request n+1 is built from answer n, which the hub writes
/// only after committing request n, so the order holds.
#[test]
fn request_n_plus_1_is_only_taken_after_request_n_and_would_be_refused_before_it() {
    let phone = replica("phone");
    let root = tempfile::tempdir().expect("tmp");
    let (first, second) = (root.path().join("hub"), root.path().join("copy"));
    drop(Store::init(&first, "hub").expect("init"));
    std::fs::create_dir(&second).expect("mkdir");
    for e in std::fs::read_dir(&first).expect("read") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), second.join(e.file_name())).expect("copy");
    }
    let (hub, copy) = (
        Store::open(&first).expect("open"),
        Store::open(&second).expect("open"),
    );
    let mut trust = fmp_sync::StaticTrust::new(true);
    trust.insert(id(&phone), info(&phone, None));
    trust.insert(hub.identity().device_id, {
        let mut i = info(&phone, None);
        i.public_key = hub.identity().public_key().to_vec();
        i
    });
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(phone.store.record(submission("ML-HER", n)).expect("record"));
    }
    for id in &ids {
        phone
            .store
            .edit(*id, &serde_json::json!({"notes": "edited"}))
            .expect("edit");
    }
    let mut client =
        Client::new(&phone.store, &trust, hub.identity().device_id).with_max_bytes(2048);
    let n = client.next_request().expect("request n").expect("some");
    let answer = client
        .read_response(&respond(&hub, &trust, &n).expect("answer n"))
        .expect("read");
    let ahead = client.ahead(&answer).expect("ahead").expect("built ahead");
    let next = ahead.build(&phone.store).expect("build").expect("fits");
    let decode = |b: Vec<u8>| fmp_sync::Response::decode(&b).expect("decode");
    let wrong = decode(respond(&copy, &trust, next.bytes()).expect("n+1 first"));
    assert!(!wrong.refused.is_empty(), "{wrong:?}");
    assert!(
        wrong.refused.iter().all(|r| r
            .reason
            .contains("depends on a change this replica does not have")),
        "{:?}",
        wrong.refused
    );
    let right = decode(respond(&hub, &trust, next.bytes()).expect("n+1 after n"));
    assert!(right.refused.is_empty(), "{:?}", right.refused);
    assert!(right.accepted > wrong.accepted, "{right:?}");
}
