//! The hardened hub, attacked from outside with crafted clients over real
//! loopback sockets: a request captured before a restart is refused as a
//! replay after it; a `want` flood, an oversized change list and a zstd
//! bomb are refused with a 400/413 naming the limit before any store work;
//! connections past the caps get `503 busy`, idle ones are closed after the
//! header timeout; and a real phone's sync completes through all of it.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fmp_core::store::{Store, testing};
use fmp_hub::auth::Signed;
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::server::{ErrorBody, SYNC_PATH};
use fmp_hub::{HubHandle, Limits, ServeOptions, enroll, serve_with};
use fmp_sync::wire::{Batch, DocRef, WireChange};

struct Setup {
    _tmp: tempfile::TempDir,
    hub_dir: PathBuf,
    phone: Store,
}

fn start(dir: &Path, limits: Limits) -> HubHandle {
    serve_with(ServeOptions {
        store: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        tls: None,
        limits,
    })
    .unwrap()
}

/// A hub store, and a phone joined to it (through `hub`) with `n` records.
fn setup(hub: &HubHandle, hub_dir: PathBuf, tmp: tempfile::TempDir, n: usize) -> Setup {
    let code = {
        let h = Store::open(&hub_dir).unwrap();
        enroll::create_code(&h, &["ML-GOG".into()], Duration::from_secs(60), false).unwrap()
    };
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    client::join(&phone, &hub.url(), &code).unwrap();
    record(&phone, n, "first");
    Setup {
        _tmp: tmp,
        hub_dir,
        phone,
    }
}

fn record(phone: &Store, n: usize, tag: &str) {
    for i in 0..n {
        let mut s = fmp_core::example_submission();
        s.fmp = "ML-GOG".into();
        s.observed_at += chrono::Duration::minutes(i as i64 * 7);
        s.notes = format!("{tag} #{i}");
        phone.record(s).unwrap();
    }
}

fn hub_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    drop(Store::init(&dir, "hub").unwrap());
    (tmp, dir)
}

/// One signed POST of `body` to `url` + `path`, as a hostile client would
/// send it (headers given, so a captured request can be sent again).
fn post(url: &str, headers: &[(&'static str, String)], body: Vec<u8>) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = reqwest::Client::new().post(format!("{url}{SYNC_PATH}"));
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let resp = r.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    })
}

fn error(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn count(dir: &Path, table: &str) -> i64 {
    testing::count_rows(&Store::open(dir).unwrap(), table).unwrap()
}

fn hub_id(dir: &Path) -> uuid::Uuid {
    Store::open(dir).unwrap().identity().device_id
}

/// The phone's next honest sync request (what it would push).
fn honest_body(phone: &Store, hub: uuid::Uuid) -> Vec<u8> {
    let trust = fmp_hub::db::trust(phone).unwrap();
    let mut c = fmp_sync::Client::new(phone, &trust, hub);
    c.next_request().unwrap().unwrap()
}

fn sync_ok(phone: &Store, url: &str) -> client::Summary {
    client::sync(
        phone,
        SyncOptions {
            url: Some(url.to_string()),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            retries: 20,
            ..SyncOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn a_request_captured_before_a_restart_is_refused_as_replayed_after_it() {
    let (tmp, dir) = hub_dir();
    let hub = start(&dir, Limits::default());
    let s = setup(&hub, dir.clone(), tmp, 3);
    let body = honest_body(&s.phone, hub_id(&s.hub_dir));
    let signed = Signed::new(s.phone.identity(), "POST", SYNC_PATH, &body);
    let headers = signed.headers();
    let (status, b) = post(&hub.url(), &headers, body.clone());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(count(&s.hub_dir, "submissions"), 3);
    assert_eq!(
        count(&s.hub_dir, "request_nonces"),
        2,
        "the join's nonce and the sync's are on disk"
    );
    hub.shutdown().unwrap();

    // A new hub over the same store: its memory is empty, its disk is not.
    let hub = start(&s.hub_dir, Limits::default());
    let changes = count(&s.hub_dir, "changes");
    let (status, b) = post(&hub.url(), &headers, body);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&b));
    let e = error(&b);
    assert_eq!(e.error, "replayed", "{e:?}");
    assert_eq!(count(&s.hub_dir, "changes"), changes, "nothing stored");

    // The phone itself syncs on as usual.
    // (It never read the answer to the captured request, so it sends its
    // first three again: stored once.)
    record(&s.phone, 2, "second");
    let sum = sync_ok(&s.phone, &hub.url());
    assert_eq!(sum.sent, 5, "{sum:?}");
    assert_eq!(count(&s.hub_dir, "submissions"), 5);
}

#[test]
fn a_want_flood_is_refused_naming_the_limit_and_the_phone_still_syncs() {
    let (tmp, dir) = hub_dir();
    let hub = start(&dir, Limits::default());
    let s = setup(&hub, dir.clone(), tmp, 2);
    let hash = testing::changes(&s.phone).unwrap()[0].hash;
    let req = fmp_sync::Request {
        from: s.phone.identity().device_id,
        to: hub_id(&s.hub_dir),
        push: Batch::default(),
        push_upto: 0,
        pull_after: None,
        max_bytes: fmp_sync::DEFAULT_MAX_BYTES,
        want: vec![hash; 100_000],
        reconcile: None,
        push_after: 0,
        log_end: 0,
        restored: false,
    };
    let body = req.encode().unwrap();
    assert!(body.len() < 1024 * 1024, "the flood fits the body limit");
    let signed = Signed::new(s.phone.identity(), "POST", SYNC_PATH, &body);
    let (status, b) = post(&hub.url(), &signed.headers(), body);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&b));
    let e = error(&b);
    assert_eq!(e.error, "too_many", "{e:?}");
    assert!(
        e.reason.contains("100000") && e.reason.contains("1000"),
        "{e:?}"
    );
    assert!(e.reason.contains("1 distinct"), "{e:?}");

    let sum = sync_ok(&s.phone, &hub.url());
    assert_eq!(sum.sent, 2, "{sum:?}");
    assert_eq!(count(&s.hub_dir, "submissions"), 2);
}

#[test]
fn too_many_changes_and_a_zstd_bomb_are_refused_before_any_work() {
    let (tmp, dir) = hub_dir();
    let limits = Limits {
        max_body: 64 * 1024,
        ..Limits::default()
    };
    let hub = start(&dir, limits.clone());
    let s = setup(&hub, dir.clone(), tmp, 1);
    let changes = count(&s.hub_dir, "changes");
    let send = |body: Vec<u8>| {
        let signed = Signed::new(s.phone.identity(), "POST", SYNC_PATH, &body);
        post(&hub.url(), &signed.headers(), body)
    };

    let mut req = fmp_sync::Request {
        from: s.phone.identity().device_id,
        to: hub_id(&s.hub_dir),
        push: Batch::default(),
        push_upto: 0,
        pull_after: None,
        max_bytes: fmp_sync::DEFAULT_MAX_BYTES,
        want: Vec::new(),
        reconcile: None,
        push_after: 0,
        log_end: 0,
        restored: false,
    };
    req.push.changes = vec![
        WireChange {
            doc: DocRef::InChange,
            bytes: vec![0; 4],
        };
        fmp_hub::server::MAX_CHANGES + 1
    ];
    let (status, b) = send(req.encode().unwrap());
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&b));
    let e = error(&b);
    assert_eq!(e.error, "too_many", "{e:?}");
    assert!(e.reason.contains("changes"), "{e:?}");

    // 2 MiB of zeros compress to a few hundred bytes: past 16 × 64 KiB.
    let zeros = vec![0u8; 2 * 1024 * 1024];
    let mut bomb = vec![fmp_sync::PROTOCOL_VERSION, b'Q'];
    bomb.extend(zstd::bulk::compress(&zeros, 3).unwrap());
    assert!(bomb.len() < limits.max_body);
    let (status, b) = send(bomb);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&b));
    let e = error(&b);
    assert_eq!(e.error, "too_large", "{e:?}");
    assert!(
        e.reason.contains(&limits.max_decoded().to_string()),
        "{e:?}"
    );
    assert_eq!(count(&s.hub_dir, "changes"), changes, "nothing stored");
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{from}:0").parse().unwrap())?;
            sock.connect(to).await
        })
        .unwrap();
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

#[test]
fn connections_past_the_caps_get_503_busy_idle_ones_are_closed_and_the_phone_syncs() {
    let (tmp, dir) = hub_dir();
    let limits = Limits {
        header_timeout: Duration::from_secs(2),
        max_connections: 16,
        max_connections_per_ip: 4,
        ..Limits::default()
    };
    let hub = start(&dir, limits);
    let s = setup(&hub, dir.clone(), tmp, 3);

    // An attacker from another address holds its 4 slots with half-sent
    // requests, and tries 20 more.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = connect_from("127.0.0.2", hub.addr());
        c.write_all(b"POST /v1/sync HTTP/1.1\r\nHost: hub\r\n")
            .unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        let mut c = connect_from("127.0.0.2", hub.addr());
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
        assert!(got.contains("\"busy\""), "{got:?}");
    }

    // Meanwhile a real phone syncs.
    let sum = sync_ok(&s.phone, &hub.url());
    assert_eq!(sum.sent, 3, "{sum:?}");
    assert_eq!(count(&s.hub_dir, "submissions"), 3);

    // The half-sent requests are dropped after the header timeout.
    for c in &mut held {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        match c.read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the hub kept a half-sent request open: {e}"),
        }
    }
    // And the attacker's address gets slots again.
    let mut c = connect_from("127.0.0.2", hub.addr());
    c.write_all(b"GET /v1/hub HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
}
