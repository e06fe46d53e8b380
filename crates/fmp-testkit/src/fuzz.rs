//! Fuzz entry points. `fuzz/fuzz_targets/*.rs` (libFuzzer, nightly) call
//! them; `tests/fuzz_corpus.rs` replays every file of `fuzz/seeds/` and
//! `fuzz/regressions/` through the same functions on stable, in CI.
//!
//! Each panics only on a real bug: a decoder that panics, a message that
//! does not survive re-encoding, a submission accepted by validation whose
//! canonical JSON does not parse back to the same submission, or a hub
//! that answers outside input with a 5xx.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use fmp_core::Submission;
use fmp_core::store::Store;
use fmp_hub::auth::Signed;
use fmp_hub::server::{HUB_PATH, Hub, JOIN_PATH, JoinRequest, SYNC_PATH};
use fmp_hub::{Limits, app, enroll};
use fmp_sync::{Request as SyncRequest, Response as SyncResponse};
use tower::ServiceExt;

/// The sync message decoder: requests and responses. Whatever decodes
/// must re-encode and decode to the same message.
pub fn wire(data: &[u8]) {
    if let Ok(r) = SyncRequest::decode(data) {
        let again = r.encode().and_then(|b| SyncRequest::decode(&b));
        assert!(
            matches!(again, Ok(ref x) if *x == r),
            "request does not round-trip"
        );
    }
    if let Ok(r) = SyncResponse::decode(data) {
        let again = r.encode().and_then(|b| SyncResponse::decode(&b));
        assert!(
            matches!(again, Ok(ref x) if *x == r),
            "response does not round-trip"
        );
    }
}

/// The submission JSON parser and validation. A submission that parses
/// and validates must survive its canonical JSON unchanged.
pub fn submission(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sub) = Submission::from_json(text) else {
        return;
    };
    static REF: OnceLock<(fmp_core::reference::Registry, fmp_core::form::Forms)> = OnceLock::new();
    let (registry, forms) = REF.get_or_init(|| {
        (
            fmp_core::reference::Registry::mali_default(),
            fmp_core::form::Forms::builtin(),
        )
    });
    if fmp_core::validate::validate(&sub, registry, forms, chrono_now()).is_ok() {
        let canonical = sub.to_value().to_string();
        let back = Submission::from_json(&canonical);
        assert!(
            matches!(back, Ok(ref b) if b.to_value() == sub.to_value()),
            "a valid submission does not survive its canonical JSON: {canonical}"
        );
    }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    // A fixed clock, so a run replays: mid-2020, the seed report's month.
    chrono::DateTime::from_timestamp(1_593_000_000, 0).unwrap_or_default()
}

struct HubFixture {
    _dir: tempfile::TempDir,
    hub: std::sync::Arc<Hub>,
    phone: Store,
    rt: tokio::runtime::Runtime,
}

fn hub_fixture() -> Option<&'static HubFixture> {
    static FIX: OnceLock<Option<HubFixture>> = OnceLock::new();
    FIX.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        let hub_store = Store::init(&dir.path().join("hub"), "fuzz-hub").ok()?;
        let phone = Store::init(&dir.path().join("phone"), "fuzz-phone").ok()?;
        let limits = Limits {
            rate_burst: 1e12,
            rate_per_sec: 1e12,
            ..Limits::default()
        };
        let hub = Hub::new(hub_store, limits).ok()?;
        let code = enroll::create_code(
            hub.store(),
            &["ML-GOG".into()],
            Duration::from_secs(3600),
            false,
        )
        .ok()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let id = phone.identity();
        let body = serde_json::to_vec(&JoinRequest {
            code,
            name: id.name.clone(),
            public_key: hex::encode(id.public_key()),
            hq: None,
            enrolls: false,
        })
        .ok()?;
        let req = signed(&phone, JOIN_PATH, body)?;
        let status = rt.block_on(app(hub.clone()).oneshot(req)).ok()?.status();
        if !status.is_success() {
            return None;
        }
        Some(HubFixture {
            _dir: dir,
            hub,
            phone,
            rt,
        })
    })
    .as_ref()
}

fn signed(store: &Store, path: &str, body: Vec<u8>) -> Option<Request<Body>> {
    let s = Signed::new(store.identity(), "POST", path, &body);
    let mut b = Request::post(path);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    b.body(Body::from(body)).ok()
}

/// The hub's request handling, through the router without a socket. The
/// first byte picks the route and whether the request is signed by an
/// enrolled phone (so the fuzzer reaches the sync decoder and the store);
/// the rest is the body. Outside input must never get a 5xx.
pub fn hub_request(data: &[u8]) {
    let Some(fix) = hub_fixture() else {
        panic!("the fuzz hub fixture could not be built");
    };
    let (sel, body) = match data.split_first() {
        Some((s, b)) => (*s, b.to_vec()),
        None => (0, Vec::new()),
    };
    let path = match sel & 3 {
        0 => SYNC_PATH,
        1 => JOIN_PATH,
        2 => HUB_PATH,
        _ => "/v1/other",
    };
    let req = if sel & 4 != 0 {
        signed(&fix.phone, path, body)
    } else {
        Request::post(path).body(Body::from(body)).ok()
    };
    let Some(req) = req else { return };
    let status = fix
        .rt
        .block_on(app(fix.hub.clone()).oneshot(req))
        .map(|r| r.status());
    match status {
        Ok(s) => assert!(
            !s.is_server_error(),
            "the hub answered outside input with {s} (selector {sel:#04x})"
        ),
        Err(e) => panic!("the router failed: {e}"),
    }
}
