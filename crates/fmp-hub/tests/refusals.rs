//! Every refusal of the hub, through the router without a socket: right
//! status, a JSON body naming the reason, and the hub's store unchanged.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fmp_core::store::{Store, testing};
use fmp_hub::auth::Signed;
use fmp_hub::server::{ErrorBody, Hub, JOIN_PATH, JoinRequest, SYNC_PATH};
use fmp_hub::{Limits, app, db, enroll};
use tower::ServiceExt;

struct Fixture {
    _tmp: tempfile::TempDir,
    hub: std::sync::Arc<Hub>,
    phone: Store,
}

/// A hub, a phone not yet joined, and an enrollment code for ML-GOG.
fn unjoined() -> (tempfile::TempDir, std::sync::Arc<Hub>, Store, String) {
    let tmp = tempfile::tempdir().unwrap();
    let hub_store = Store::init(&tmp.path().join("hub"), "hub").unwrap();
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let hub = Hub::new(hub_store, Limits::default()).unwrap();
    let code = gogui_code(&hub);
    (tmp, hub, phone, code)
}

/// A one-hour enrollment code for ML-GOG.
fn gogui_code(hub: &Hub) -> String {
    enroll::create_code(
        hub.store(),
        &["ML-GOG".into()],
        Duration::from_secs(60),
        false,
    )
    .unwrap()
}

/// Joins `device` to `hub` with `code`; the join must succeed.
fn join_ok(hub: &std::sync::Arc<Hub>, device: &Store, code: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(call(hub, join_request(device, code)));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

fn fixture() -> Fixture {
    let (tmp, hub, phone, code) = unjoined();
    join_ok(&hub, &phone, &code);
    Fixture {
        _tmp: tmp,
        hub,
        phone,
    }
}

fn join_request(phone: &Store, code: &str) -> Request<Body> {
    let id = phone.identity();
    let body = serde_json::to_vec(&JoinRequest {
        code: code.into(),
        name: id.name.clone(),
        public_key: hex::encode(id.public_key()),
        hq: None,
        enrolls: false,
    })
    .unwrap();
    signed(phone, JOIN_PATH, body)
}

fn signed(store: &Store, path: &str, body: Vec<u8>) -> Request<Body> {
    let s = Signed::new(store.identity(), "POST", path, &body);
    let mut b = Request::post(path);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    b.body(Body::from(body)).unwrap()
}

async fn call(hub: &std::sync::Arc<Hub>, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app(hub.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body.to_vec())
}

fn error(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// Everything a request could have changed, as row counts and contents.
fn fingerprint(dir: &Path) -> Vec<String> {
    let store = Store::open(dir).unwrap();
    let mut out = Vec::new();
    for t in [
        "documents",
        "changes",
        "bundles",
        "peers",
        "devices",
        "pending",
        "submissions",
        "hub_codes",
        "hub_devices",
    ] {
        let rows: Vec<String> = testing::table_rows(&store, t).unwrap();
        out.push(format!("{t}: {rows:?}"));
    }
    out
}

/// A sync request from `phone` to the hub pushing what it recorded.
fn sync_body(f: &Fixture) -> Vec<u8> {
    let trust = db::trust(&f.phone).unwrap();
    let mut c = fmp_sync::Client::new(&f.phone, &trust, f.hub.store().identity().device_id);
    c.next_request().unwrap().unwrap()
}

fn record(store: &Store, fmp: &str) {
    let mut s = fmp_core::example_submission();
    s.fmp = fmp.into();
    store.record(s).unwrap();
}

fn check(f: &Fixture, req: Request<Body>, status: StatusCode, code: &str, words: &str) {
    let before = fingerprint(f.hub.store().dir());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (got, body) = rt.block_on(call(&f.hub, req));
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    let e = error(&body);
    assert_eq!(e.error, code, "{e:?}");
    assert!(e.reason.contains(words), "{e:?}");
    assert_eq!(
        before,
        fingerprint(f.hub.store().dir()),
        "the hub's store is unchanged"
    );
}

#[test]
fn no_signature() {
    let f = fixture();
    record(&f.phone, "ML-GOG");
    let req = Request::post(SYNC_PATH)
        .body(Body::from(sync_body(&f)))
        .unwrap();
    check(&f, req, StatusCode::UNAUTHORIZED, "unsigned", "not signed");
}

#[test]
fn bad_signature() {
    let f = fixture();
    record(&f.phone, "ML-GOG");
    let body = sync_body(&f);
    let mut req = signed(&f.phone, SYNC_PATH, body.clone());
    // The same headers over another body: the signature no longer covers it.
    let mut other = body;
    other.push(0);
    *req.body_mut() = Body::from(other);
    check(
        &f,
        req,
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "does not verify",
    );
}

#[test]
fn replayed_request() {
    let f = fixture();
    record(&f.phone, "ML-GOG");
    let body = sync_body(&f);
    let req = signed(&f.phone, SYNC_PATH, body.clone());
    let (h, b) = (req.headers().clone(), body);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt.block_on(call(&f.hub, req));
    assert_eq!(status, StatusCode::OK);
    let mut again = Request::post(SYNC_PATH).body(Body::from(b)).unwrap();
    *again.headers_mut() = h;
    check(
        &f,
        again,
        StatusCode::UNAUTHORIZED,
        "replayed",
        "already received",
    );
}

#[test]
fn unknown_device() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let stranger = Store::init(&tmp.path().join("s"), "stranger").unwrap();
    let req = signed(&stranger, SYNC_PATH, b"anything".to_vec());
    check(
        &f,
        req,
        StatusCode::FORBIDDEN,
        "unknown_device",
        "not enrolled",
    );
}

#[test]
fn revoked_device() {
    let f = fixture();
    record(&f.phone, "ML-GOG");
    assert_eq!(db::revoke(f.hub.store(), "phone").unwrap(), 1);
    let req = signed(&f.phone, SYNC_PATH, sync_body(&f));
    check(&f, req, StatusCode::FORBIDDEN, "revoked_device", "revoked");
}

#[test]
fn a_join_asked_again_by_the_same_device_gets_the_same_enrollment() {
    let (tmp, hub, phone, code) = unjoined();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (first, a) = rt.block_on(call(&hub, join_request(&phone, &code)));
    assert_eq!(first, StatusCode::OK, "{}", String::from_utf8_lossy(&a));
    let enrolled = fingerprint(hub.store().dir());
    // Its answer was lost on a cut link: the phone asks again.
    let (again, b) = rt.block_on(call(&hub, join_request(&phone, &code)));
    assert_eq!(again, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&a).unwrap(),
        serde_json::from_slice(&b).unwrap(),
    );
    assert_eq!(a["fmps"], b["fmps"]);
    assert_eq!(a["certificate"]["device"], b["certificate"]["device"]);
    assert_eq!(
        enrolled,
        fingerprint(hub.store().dir()),
        "asking again changes nothing at the hub"
    );
    assert_eq!(db::devices(hub.store()).unwrap().len(), 1);
    // Once revoked, the code does not bring it back.
    assert_eq!(db::revoke(hub.store(), "phone").unwrap(), 1);
    let f = Fixture {
        _tmp: tmp,
        hub,
        phone,
    };
    let req = join_request(&f.phone, &code);
    check(&f, req, StatusCode::FORBIDDEN, "revoked_device", "revoked");
}

#[test]
fn expired_and_reused_codes() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let other = Store::init(&tmp.path().join("o"), "other").unwrap();
    let expired =
        enroll::create_code(f.hub.store(), &["ML-GOG".into()], Duration::ZERO, false).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    check(
        &f,
        join_request(&other, &expired),
        StatusCode::FORBIDDEN,
        "code_expired",
        "expired",
    );
    let used = gogui_code(&f.hub);
    join_ok(&f.hub, &other, &used);
    let tmp2 = tempfile::tempdir().unwrap();
    let third = Store::init(&tmp2.path().join("t"), "third").unwrap();
    check(
        &f,
        join_request(&third, &used),
        StatusCode::FORBIDDEN,
        "code_used",
        "already used",
    );
    check(
        &f,
        join_request(&third, "ABCDE-23456"),
        StatusCode::FORBIDDEN,
        "unknown_code",
        "not known",
    );
}

#[test]
fn write_for_another_fmp() {
    let f = fixture();
    // Recorded before the phone's enrollment narrowed it (or by a tampered app).
    f.phone.set_enrolled_fmps(None).unwrap();
    record(&f.phone, "ML-HER");
    let req = signed(&f.phone, SYNC_PATH, sync_body(&f));
    let before = fingerprint(f.hub.store().dir());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(call(&f.hub, req));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let e = error(&body);
    assert_eq!(e.error, "out_of_scope");
    assert_eq!(e.refused.len(), 1);
    assert!(
        e.refused[0]
            .reason
            .contains("may not write submissions of ML-HER"),
        "{e:?}"
    );
    assert_eq!(before, fingerprint(f.hub.store().dir()));
}

#[test]
fn oversized_body() {
    let f = fixture();
    let req = signed(&f.phone, SYNC_PATH, vec![1u8; 2 * 1024 * 1024]);
    check(&f, req, StatusCode::PAYLOAD_TOO_LARGE, "too_large", "limit");
}

#[test]
fn garbage_bodies() {
    let f = fixture();
    for body in [
        Vec::new(),
        b"hello".to_vec(),
        vec![1, b'Q', 0, 0, 0],
        vec![9, b'Q', 1, 2],
        vec![1, b'R', 40, 181, 47, 253],
    ] {
        let req = signed(&f.phone, SYNC_PATH, body.clone());
        let before = fingerprint(f.hub.store().dir());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (status, b) = rt.block_on(call(&f.hub, req));
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            String::from_utf8_lossy(&b)
        );
        let e = error(&b);
        assert!(
            e.error == "bad_message" || e.error == "unknown_version",
            "{e:?}"
        );
        assert!(
            e.reason.contains("nothing of it was stored") || e.reason.contains("version"),
            "{e:?}"
        );
        assert_eq!(before, fingerprint(f.hub.store().dir()));
    }
}

#[test]
fn a_message_from_another_device_than_the_signer() {
    let f = fixture();
    record(&f.phone, "ML-GOG");
    let body = sync_body(&f);
    // Enroll a second device, which replays the phone's message under its own signature.
    let tmp = tempfile::tempdir().unwrap();
    let other = Store::init(&tmp.path().join("o"), "other").unwrap();
    join_ok(&f.hub, &other, &gogui_code(&f.hub));
    check(
        &f,
        signed(&other, SYNC_PATH, body),
        StatusCode::FORBIDDEN,
        "wrong_device",
        "signed by",
    );
}

#[test]
fn rate_limited_device() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(
        Store::init(&tmp.path().join("hub"), "hub").unwrap(),
        Limits {
            rate_burst: 2.0,
            rate_per_sec: 0.001,
            ..Limits::default()
        },
    )
    .unwrap();
    let phone = Store::init(&tmp.path().join("p"), "p").unwrap();
    join_ok(&hub, &phone, &gogui_code(&hub));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let trust = db::trust(&phone).unwrap();
    let body = fmp_sync::Client::new(&phone, &trust, hub.store().identity().device_id)
        .next_request()
        .unwrap()
        .unwrap();
    let (s1, _) = rt.block_on(call(&hub, signed(&phone, SYNC_PATH, body.clone())));
    assert_eq!(s1, StatusCode::OK);
    let (s2, b) = rt.block_on(call(&hub, signed(&phone, SYNC_PATH, body)));
    assert_eq!(s2, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error(&b).error, "rate_limited");
}
