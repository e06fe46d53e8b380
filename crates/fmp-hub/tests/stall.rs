//! A link that goes silent (no FIN, no RST, nothing) costs the stall
//! timeout, not the whole request timeout: a hub that accepts and never
//! answers, or that stops in the middle of its answer, fails the sync with
//! a network error saying the link went silent, after the retries (a
//! request sent but never answered is no progress), each on a fresh
//! connection; an answer that is slow but keeps coming is read to
//! its end. Messages are the smallest allowed (2 KiB), as the answer to a
//! request may begin up to the time that request takes at 8 kbit/s after
//! the stall timeout.
//!
//! A cancelled sync stops at once, in the middle of a request held by such
//! a hub, and a sync cancelled before it starts sends nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Joined;
use fmp_hub::client::{self, CancelToken, Event, SyncOptions};
use fmp_hub::{HubError, Limits};

/// A phone joined to a real hub, with one submission to send.
fn joined() -> Joined {
    let j = common::joined(Limits::default());
    let mut s = fmp_core::example_submission();
    s.fmp = "ML-GOG".into();
    j.phone.record(s).unwrap();
    j
}

/// Reads one HTTP request (head, then `content-length` bytes of body).
fn read_request(c: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf).unwrap_or(0);
        if n == 0 {
            return;
        }
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if got.len() >= end + 4 + len {
            return;
        }
    }
}

/// A fake hub on a loopback port: `answer` runs on each connection it
/// accepts (on its own thread). Counts the connections.
fn fake_hub(answer: fn(TcpStream)) -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let a = accepted.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            a.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || answer(c));
        }
    });
    (url, accepted)
}

/// Holds the connection open and says nothing until the client leaves.
fn drain(mut c: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
}

fn opts(url: &str, retries: u32, stall: Duration, errors: Arc<Mutex<Vec<String>>>) -> SyncOptions {
    SyncOptions {
        url: Some(url.to_string()),
        retries,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        stall_timeout: stall,
        max_bytes: fmp_sync::wire::MIN_MAX_BYTES,
        progress: Some(Box::new(move |p| {
            if let Event::Retry { error, .. } = &p.event {
                errors.lock().unwrap().push(error.clone());
            }
        })),
        ..SyncOptions::default()
    }
}

fn assert_silent(err: &HubError, url: &str) {
    match err {
        HubError::Network { url: u, detail } => {
            assert_eq!(u, url);
            assert!(
                detail.contains("went silent") && detail.contains("stall timeout of 0.3 s"),
                "{detail}"
            );
        }
        other => panic!("a network error, not {other:?}"),
    }
}

#[test]
fn a_hub_that_accepts_and_never_answers_fails_after_the_retries_with_a_stall() {
    let j = joined();
    let (silent, accepted) = fake_hub(drain);
    let errors = Arc::new(Mutex::new(Vec::new()));
    let err = client::sync(
        &j.phone,
        opts(&silent, 2, Duration::from_millis(300), errors.clone()),
    )
    .unwrap_err();
    assert_silent(&err, &silent);
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("went silent")),
        "{errors:?}"
    );
    assert!(
        err.to_string().contains(&silent),
        "the message names the hub: {err}"
    );
    // A frozen connection is never reused: each try opens its own.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);

    // Nothing was lost: the real hub takes the submission.
    let sum = client::sync(&j.phone, SyncOptions::default()).unwrap();
    assert_eq!(sum.sent, 1);
    j.hub.shutdown().unwrap();
}

#[test]
fn a_hub_that_goes_silent_in_the_middle_of_its_answer_is_abandoned() {
    let j = joined();
    let (silent, _) = fake_hub(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789");
        drain(c);
    });
    let errors = Arc::new(Mutex::new(Vec::new()));
    let err = client::sync(
        &j.phone,
        opts(&silent, 0, Duration::from_millis(300), errors),
    )
    .unwrap_err();
    assert_silent(&err, &silent);
}

#[test]
fn an_answer_that_is_slow_but_keeps_coming_is_read_to_its_end() {
    let j = joined();
    // Twelve pieces 150 ms apart: 1.8 s in all, each gap far within the
    // 1 s stall timeout. The body is not a sync message: reading it to the
    // end gets it refused as such, not abandoned as a stall.
    let (slow, _) = fake_hub(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 120\r\n\r\n");
        for _ in 0..12 {
            std::thread::sleep(Duration::from_millis(150));
            if c.write_all(b"not a sync").is_err() {
                return;
            }
        }
        drain(c);
    });
    let errors = Arc::new(Mutex::new(Vec::new()));
    let err = client::sync(&j.phone, opts(&slow, 0, Duration::from_secs(1), errors)).unwrap_err();
    assert!(
        matches!(err, HubError::Sync(_)),
        "the whole answer was read and refused as garbage, not abandoned: {err:?}"
    );
}

/// Options against `url` with a stall timeout of 60 s and a request timeout
/// of 120 s: without cancellation such a sync waits a minute at least.
fn patient(url: &str, cancel: &CancelToken) -> SyncOptions {
    SyncOptions {
        url: Some(url.to_string()),
        stall_timeout: Duration::from_secs(60),
        timeout: Duration::from_secs(120),
        cancel: Some(cancel.clone()),
        ..SyncOptions::default()
    }
}

#[test]
fn a_sync_held_by_a_silent_hub_is_cancelled_from_another_thread() {
    let j = joined();
    let (silent, accepted) = fake_hub(drain);
    let cancel = CancelToken::new();
    let canceller = {
        let c = cancel.clone();
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            // Once the request is out (the hub accepted it), then a little more.
            while accepted.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(300));
            c.cancel();
        })
    };
    let t0 = Instant::now();
    let err = client::sync(&j.phone, patient(&silent, &cancel)).unwrap_err();
    // The test's own guard: a sync not cancelled would wait 60 s at least.
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    canceller.join().unwrap();
    assert!(matches!(err, HubError::Cancelled), "{err:?}");
    assert!(
        err.to_string().contains("cancelled") && err.to_string().contains("resumes"),
        "{err}"
    );
    assert!(cancel.is_cancelled());
    // Cancelled is not retried: the silent hub saw one connection only.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // Nothing was lost: the real hub takes the submission.
    let sum = client::sync(&j.phone, SyncOptions::default()).unwrap();
    assert_eq!(sum.sent, 1);
    j.hub.shutdown().unwrap();
}

#[test]
fn a_sync_cancelled_during_its_backoff_wait_stops() {
    let j = joined();
    // A hub that closes every connection at once: each try fails at once,
    // and the sync waits (up to a minute) before the next.
    let (closing, accepted) = fake_hub(drop);
    let cancel = CancelToken::new();
    let c = cancel.clone();
    let opts = SyncOptions {
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(60),
        progress: Some(Box::new(move |p| {
            if matches!(p.event, Event::Retry { .. }) {
                c.cancel();
            }
        })),
        ..patient(&closing, &cancel)
    };
    let t0 = Instant::now();
    let err = client::sync(&j.phone, opts).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(matches!(err, HubError::Cancelled), "{err:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "no try after the cancel"
    );
}

#[test]
fn a_sync_cancelled_before_it_starts_sends_nothing() {
    let j = joined();
    let (hub, accepted) = fake_hub(drain);
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = client::sync(&j.phone, patient(&hub, &cancel)).unwrap_err();
    assert!(matches!(err, HubError::Cancelled), "{err:?}");
    // Nor does one to the hub joined.
    let err = client::sync(
        &j.phone,
        SyncOptions {
            cancel: Some(cancel),
            ..SyncOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, HubError::Cancelled), "{err:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a connection was opened"
    );
    let sum = client::sync(&j.phone, SyncOptions::default()).unwrap();
    assert_eq!(sum.sent, 1, "the submission was still waiting");
    j.hub.shutdown().unwrap();
}
