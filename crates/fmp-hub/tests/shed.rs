//! Load shedding: a hub whose store queue is full answers a sync request
//! at once with `503`, `Retry-After` and `{"error": "busy"}`, before it
//! reads the request's body (a crafted client sends the head and a few
//! bytes, and gets the answer); the honest client waits the `Retry-After`,
//! sends the request again (counted as shed, not as a retry) and completes
//! once the store is free, with nothing applied twice.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fmp_core::store::{Store, StoreError, testing};
use fmp_hub::auth::Signed;
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::server::{Hub, SYNC_PATH};
use fmp_hub::{Limits, enroll};

/// A hub served in this process (so the test can hold its store).
struct Served {
    hub: Arc<Hub>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(store: Store, limits: Limits) -> Served {
    let hub = Hub::new(store, limits).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = hub.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(fmp_hub::server::run(
            h,
            "127.0.0.1:0",
            None,
            move |a| tx.send(a).unwrap(),
            async move {
                let _ = stopped.await;
            },
        ))
        .unwrap();
    });
    let addr = rx.recv().unwrap();
    Served {
        hub,
        url: format!("http://{addr}"),
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(60), "waited for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The signed head of a sync request from `phone` announcing `len` bytes.
fn head(phone: &Store, addr: &str, body: &[u8], len: usize) -> String {
    let signed = Signed::at(
        phone.identity(),
        "POST",
        SYNC_PATH,
        body,
        chrono::Utc::now().timestamp(),
    );
    let mut h = format!("POST {SYNC_PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {len}\r\n");
    for (k, v) in signed.headers() {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h
}

#[test]
fn a_full_queue_sheds_before_the_body_and_the_client_completes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    let hub_store = Store::init(&hub_dir, "hub").unwrap();
    let code = enroll::create_code(
        &hub_store,
        &["ML-GOG".into()],
        Duration::from_secs(60),
        false,
    )
    .unwrap();
    let srv = serve(
        hub_store,
        Limits {
            max_queued: 1,
            ..Limits::default()
        },
    );
    let addr = srv.url.trim_start_matches("http://").to_string();
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    client::join(&phone, &srv.url, &code).unwrap();
    let subs: Vec<_> = (0..30)
        .map(|i| {
            let mut s = fmp_core::example_submission();
            s.fmp = "ML-GOG".into();
            s.observed_at += chrono::Duration::minutes(i);
            s.notes = format!("shed #{i}");
            s
        })
        .collect();
    phone.record_many(subs, chrono::Utc::now()).unwrap();

    // The store's writer is held (a long request in front of everyone).
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked) = std::sync::mpsc::channel::<()>();
    let store = srv.hub.store().clone();
    let holder = std::thread::spawn(move || {
        store
            .transaction(|_w| -> Result<(), StoreError> {
                locked_tx.send(()).unwrap();
                let _ = held.recv();
                Ok(())
            })
            .unwrap();
    });
    locked.recv().unwrap();

    // A first request takes the one place in the queue and waits there.
    let mut first = TcpStream::connect(&addr).unwrap();
    first
        .write_all(head(&phone, &addr, b"", 0).as_bytes())
        .unwrap();
    wait_for("the first request to queue", || srv.hub.load().queued == 1);

    // A crafted client sends a head announcing 100 kB and only 10 bytes:
    // the 503 comes back while the hub still waits for the rest.
    let mut crafted = TcpStream::connect(&addr).unwrap();
    crafted
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = vec![7u8; 100_000];
    crafted
        .write_all(head(&phone, &addr, &body, body.len()).as_bytes())
        .unwrap();
    crafted.write_all(&body[..10]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("}") {
        let n = crafted.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&got).to_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    let retry_after: u64 = answer
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {answer}"));
    assert!((1..=30).contains(&retry_after), "{answer}");
    assert!(answer.contains(r#""error":"busy""#), "{answer}");
    assert_eq!(srv.hub.load().shed, 1);

    // The honest client is shed too while the queue is full…
    let p = phone;
    let syncing = std::thread::spawn(move || {
        let r = client::sync(
            &p,
            SyncOptions {
                retries: 0,
                ..SyncOptions::default()
            },
        );
        (r, p)
    });
    wait_for("the client to be shed", || srv.hub.load().shed >= 2);
    // …and once the store is free it completes, every record once.
    release.send(()).unwrap();
    holder.join().unwrap();
    drop(first);
    let (r, phone) = syncing.join().unwrap();
    let summary = r.unwrap();
    assert_eq!(summary.sent, 30, "{summary:?}");
    assert!(summary.shed >= 1, "{summary:?}");
    assert_eq!(summary.retries, 0, "a shed is not a failure: {summary:?}");
    let load = srv.hub.load();
    assert_eq!(load.applied_twice, 0, "{load:?}");
    let hub_store = srv.hub.store();
    assert_eq!(hub_store.list(&Default::default()).unwrap().len(), 30);
    let hashes: Vec<[u8; 32]> = testing::changes(hub_store)
        .unwrap()
        .into_iter()
        .map(|c| c.hash)
        .collect();
    let logged = hashes.len();
    let distinct = hashes
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert_eq!(logged, distinct);
    // Nothing left to send.
    let again = client::sync(&phone, SyncOptions::default()).unwrap();
    assert_eq!(again.sent, 0);
}
