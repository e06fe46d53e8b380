//! Pipelining over HTTP (ADR 0001, "Keeping the link busy"): `client::sync`
//! sends the next request while the phone stores the last answer, and a
//! sync stopped with a request in flight beside an answer being stored
//! resumes with every change once.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use fmp_core::store::{Store, StoreError, testing};
use fmp_hub::Limits;
use fmp_hub::client::{self, CancelToken, Event, SyncOptions};

fn record(phone: &Store, n: usize, tag: &str) {
    for i in 0..n {
        let mut s = fmp_core::example_submission();
        s.fmp = "ML-GOG".into();
        s.notes = format!("{tag} {i}: {:x}", (i as u64 + 1).wrapping_mul(0x9E37_79B9));
        phone.record(s).unwrap();
    }
}

/// Requests the hub has served (each leaves its nonce in the hub's store).
fn served(hub_dir: &std::path::Path) -> i64 {
    testing::count_rows(&Store::open(hub_dir).unwrap(), "request_nonces").unwrap()
}

/// Once the first answer is stored, the phone's store is held by another
/// connection until the hub has served request 3, or 8 s: storing answer
/// 2 waits meanwhile. Request 3 can reach the hub then only if it was
/// built and sent before answer 2 was stored.
#[test]
fn the_next_request_reaches_the_hub_while_the_phone_still_stores_the_last_answer() {
    let common::Joined {
        phone,
        hub,
        hub_dir,
        tmp,
    } = common::joined(Limits::default());
    record(&phone, 150, "held");
    let phone_dir = tmp.path().join("phone");
    let before = served(&hub_dir);
    let early = Arc::new(AtomicBool::new(false));
    let saw = early.clone();
    let started = AtomicBool::new(false);
    let summary = client::sync(
        &phone,
        SyncOptions {
            url: Some(hub.url()),
            fixed_size: true,
            max_bytes: 4096,
            progress: Some(Box::new(move |p| {
                if !matches!(p.event, Event::RoundTrip) || started.swap(true, Ordering::SeqCst) {
                    return;
                }
                let (held, is_held) = mpsc::channel();
                let (dir, hub_dir, saw) = (phone_dir.clone(), hub_dir.clone(), saw.clone());
                std::thread::spawn(move || {
                    let other = Store::open(&dir).unwrap();
                    other
                        .transaction(|_| -> Result<(), StoreError> {
                            held.send(()).unwrap();
                            let until = Instant::now() + Duration::from_secs(8);
                            while Instant::now() < until {
                                if served(&hub_dir) >= before + 3 {
                                    saw.store(true, Ordering::SeqCst);
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            Ok(())
                        })
                        .unwrap();
                });
                is_held.recv().unwrap();
            })),
            ..SyncOptions::default()
        },
    )
    .unwrap();
    assert!(
        early.load(Ordering::SeqCst),
        "request 3 reached the hub before answer 2 was stored: {summary:?}"
    );
    assert!(summary.round_trips >= 3, "{summary:?}");
    assert_eq!((summary.sent, summary.retries), (150, 0), "{summary:?}");
}

/// Cancelled (as an app stops a sync, or a kill) from the progress
/// callback after round trip k, with request k+1 in flight beside answer k
/// being stored, for several k: each next sync resumes from the stored
/// cursors; in the end the hub holds every change once, and a last sync
/// has nothing to send.
#[test]
fn a_sync_stopped_mid_pipeline_resumes_with_every_change_once() {
    let common::Joined {
        phone,
        hub,
        hub_dir,
        tmp: _tmp,
    } = common::joined(Limits::default());
    record(&phone, 1000, "stop");
    let mut stopped = 0;
    for k in 1..=4u32 {
        let cancel = CancelToken::new();
        let c = cancel.clone();
        let trips = Arc::new(AtomicU32::new(0));
        let t = trips.clone();
        let r = client::sync(
            &phone,
            SyncOptions {
                url: Some(hub.url()),
                fixed_size: true,
                max_bytes: 2048,
                cancel: Some(cancel),
                progress: Some(Box::new(move |p| {
                    if matches!(p.event, Event::RoundTrip)
                        && t.fetch_add(1, Ordering::SeqCst) + 1 == k
                    {
                        c.cancel();
                    }
                })),
                ..SyncOptions::default()
            },
        );
        match r {
            Err(fmp_hub::HubError::Cancelled) => stopped += 1,
            Ok(s) => panic!("k {k}: not stopped: {s:?}"),
            Err(e) => panic!("k {k}: {e}"),
        }
    }
    assert_eq!(stopped, 4);
    let done = client::sync(
        &phone,
        SyncOptions {
            url: Some(hub.url()),
            ..SyncOptions::default()
        },
    )
    .unwrap();
    assert!(done.sent > 0, "the rest went at the end: {done:?}");
    let hub_store = Store::open(&hub_dir).unwrap();
    assert_eq!(testing::count_rows(&hub_store, "changes").unwrap(), 1000);
    assert_eq!(testing::count_rows(&hub_store, "pending").unwrap(), 0);
    assert_eq!(
        testing::converged(&hub_store).unwrap(),
        testing::converged(&phone).unwrap()
    );
    let noop = client::sync(
        &phone,
        SyncOptions {
            url: Some(hub.url()),
            ..SyncOptions::default()
        },
    )
    .unwrap();
    assert_eq!((noop.sent, noop.round_trips), (0, 1), "{noop:?}");
}
