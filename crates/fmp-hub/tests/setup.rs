//! Joins from the attacker's side: crafted, signed join requests (not the
//! honest client) trying to take over an enrolled or revoked device, guess
//! codes with a fresh device id per guess, or pick a colleague's name or a
//! terminal escape as a name. Each is refused and changes nothing.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fmp_core::store::{Identity, Store, testing};
use fmp_hub::auth::Signed;
use fmp_hub::server::{Buckets, ErrorBody, Hub, JOIN_PATH, JoinRequest, SYNC_PATH};
use fmp_hub::{Limits, app, db, enroll};
use tower::ServiceExt;
use uuid::Uuid;

fn hub_with(tmp: &Path, limits: Limits) -> std::sync::Arc<Hub> {
    Hub::new(Store::init(&tmp.join("hub"), "hub").unwrap(), limits).unwrap()
}

fn code(hub: &Hub, fmp: &str) -> String {
    enroll::create_code(hub.store(), &[fmp.into()], Duration::from_secs(600), false).unwrap()
}

fn store(tmp: &Path, name: &str) -> Store {
    Store::init(&tmp.join(name), name).unwrap()
}

/// A join request signed by `key` with `key`'s public key in the body,
/// but claiming device `as_device` and name `name` (headers and body are
/// the requester's to fill).
fn crafted_join(key: &Identity, as_device: Uuid, name: &str, code: &str) -> Request<Body> {
    let body = serde_json::to_vec(&JoinRequest {
        code: code.into(),
        name: name.into(),
        public_key: hex::encode(key.public_key()),
        hq: None,
        enrolls: false,
    })
    .unwrap();
    let mut s = Signed::new(key, "POST", JOIN_PATH, &body);
    s.device = as_device;
    let mut b = Request::post(JOIN_PATH);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    b.body(Body::from(body)).unwrap()
}

fn honest_join(device: &Store, code: &str) -> Request<Body> {
    let id = device.identity();
    crafted_join(id, id.device_id, &id.name, code)
}

fn call(hub: &std::sync::Arc<Hub>, req: Request<Body>) -> (StatusCode, ErrorBody) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = app(hub.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let e = serde_json::from_slice(&body).unwrap_or(ErrorBody {
            error: String::new(),
            reason: String::from_utf8_lossy(&body).into_owned(),
            refused: Vec::new(),
        });
        (status, e)
    })
}

/// The hub's enrollment tables, row by row.
fn enrollment(hub: &Hub) -> Vec<String> {
    let mut out = Vec::new();
    for t in ["hub_devices", "hub_codes", "devices"] {
        let mut rows: Vec<String> = testing::table_rows(hub.store(), t).unwrap();
        rows.sort();
        out.push(format!("{t}: {rows:?}"));
    }
    out
}

fn sync_status(hub: &std::sync::Arc<Hub>, phone: &Store) -> StatusCode {
    let trust = db::trust(phone).unwrap();
    let body = fmp_sync::Client::new(phone, &trust, hub.store().identity().device_id)
        .next_request()
        .unwrap()
        .unwrap();
    let s = Signed::new(phone.identity(), "POST", SYNC_PATH, &body);
    let mut b = Request::post(SYNC_PATH);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    call(hub, b.body(Body::from(body)).unwrap()).0
}

#[test]
fn a_join_naming_an_enrolled_device_with_another_key_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let phone = store(tmp.path(), "gogui-phone-1");
    let mallory = store(tmp.path(), "mallory");
    let (s, e) = call(&hub, honest_join(&phone, &code(&hub, "ML-GOG")));
    assert_eq!(s, StatusCode::OK, "{e:?}");
    let victim = phone.identity().device_id;
    // A valid code (even one for other FMPs) and the victim's id.
    let fresh = code(&hub, "ML-HER");
    let before = enrollment(&hub);
    let (s, e) = call(
        &hub,
        crafted_join(mallory.identity(), victim, "gogui-phone-1", &fresh),
    );
    assert_eq!(
        (s, e.error.as_str()),
        (StatusCode::FORBIDDEN, "wrong_device")
    );
    assert!(e.reason.contains(&victim.to_string()), "{}", e.reason);
    assert_eq!(enrollment(&hub), before, "key, scope and code unchanged");
    // The victim still syncs with its own key.
    assert_eq!(sync_status(&hub, &phone), StatusCode::OK);
    // The code was not spent: an honest new phone still joins with it.
    let other = store(tmp.path(), "gogui-phone-2");
    assert_eq!(call(&hub, honest_join(&other, &fresh)).0, StatusCode::OK);
}

#[test]
fn a_revoked_device_is_not_reenrolled_by_a_code_only_by_reinstatement() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let phone = store(tmp.path(), "gogui-phone-1");
    let mallory = store(tmp.path(), "mallory");
    assert_eq!(
        call(&hub, honest_join(&phone, &code(&hub, "ML-GOG"))).0,
        StatusCode::OK
    );
    let victim = phone.identity().device_id;
    assert_eq!(db::revoke(hub.store(), &victim.to_string()).unwrap(), 1);
    let before = enrollment(&hub);
    // Another key with a fresh code: wrong_device.
    let (s, e) = call(
        &hub,
        crafted_join(mallory.identity(), victim, "x", &code(&hub, "ML-GOG")),
    );
    assert_eq!(
        (s, e.error.as_str()),
        (StatusCode::FORBIDDEN, "wrong_device")
    );
    assert_eq!(
        enrollment(&hub)[0],
        before[0],
        "key, scope, revoked_at unchanged"
    );
    // The revoked phone itself with a fresh code: still revoked.
    let fresh = code(&hub, "ML-GOG");
    let before_codes = enrollment(&hub);
    let (s, e) = call(&hub, honest_join(&phone, &fresh));
    assert_eq!(
        (s, e.error.as_str()),
        (StatusCode::FORBIDDEN, "revoked_device")
    );
    assert!(e.reason.contains("--reinstate"), "{}", e.reason);
    assert_eq!(enrollment(&hub), before_codes, "revoked_at unchanged");
    assert_eq!(sync_status(&hub, &phone), StatusCode::FORBIDDEN);
    // The supervisor's explicit action brings it back, same key and FMPs.
    assert_eq!(db::reinstate(hub.store(), "gogui-phone-1").unwrap(), victim);
    assert_eq!(sync_status(&hub, &phone), StatusCode::OK);
    let d = fmp_hub::status::devices(hub.store()).unwrap();
    assert_eq!(d[0].fmps, Some(vec!["ML-GOG".to_string()]));
    assert_eq!(d[0].revoked_at, None);
    // Reinstating a device that is not revoked is refused clearly.
    let err = db::reinstate(hub.store(), &victim.to_string()).unwrap_err();
    assert!(err.to_string().contains("no revoked device"), "{err}");
}

#[test]
fn join_guesses_with_a_fresh_device_id_each_are_limited_per_address() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    Store::init(&hub_dir, "hub").unwrap();
    let served = fmp_hub::serve_with(fmp_hub::ServeOptions {
        store: hub_dir,
        listen: "127.0.0.1:0".into(),
        tls: None,
        limits: Limits {
            join_burst: 5.0,
            join_per_sec: 0.001,
            ..Limits::default()
        },
    })
    .unwrap();
    let guesser = store(tmp.path(), "guesser");
    let rt = tokio::runtime::Runtime::new().unwrap();
    fmp_hub::tls::install_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let body = serde_json::to_vec(&JoinRequest {
            code: format!("2345{i}-ABCDE"),
            name: format!("guess-{i}"),
            public_key: hex::encode(guesser.identity().public_key()),
            hq: None,
            enrolls: false,
        })
        .unwrap();
        let mut s = Signed::new(guesser.identity(), "POST", JOIN_PATH, &body);
        s.device = Uuid::now_v7();
        let mut rb = http.post(format!("{}{JOIN_PATH}", served.url())).body(body);
        for (k, v) in s.headers() {
            rb = rb.header(k, v);
        }
        let status = rt.block_on(async { rb.send().await.unwrap().status().as_u16() });
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], &[403; 5], "{statuses:?}");
    assert_eq!(&statuses[5..], &[429; 7], "{statuses:?}");
}

#[test]
fn joins_are_limited_for_the_whole_hub_and_the_buckets_stay_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(
        tmp.path(),
        Limits {
            join_burst: 1e9,
            join_per_sec: 1e9,
            join_global_burst: 40.0,
            join_global_per_sec: 0.001,
            max_buckets: 16,
            ..Limits::default()
        },
    );
    let guesser = store(tmp.path(), "guesser");
    let mut refused = 0;
    for i in 0..60 {
        let (s, _) = call(
            &hub,
            crafted_join(
                guesser.identity(),
                Uuid::now_v7(),
                &format!("g{i}"),
                "23456-ABCDE",
            ),
        );
        if s == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN);
        }
    }
    assert_eq!(refused, 20, "the 41st join onwards is refused");
    let (devices, addresses) = hub.bucket_counts();
    assert!(devices <= 16, "{devices} device buckets kept");
    assert!(addresses <= 16, "{addresses} address buckets kept");
}

#[test]
fn the_bucket_map_evicts_idle_buckets_first_then_the_longest_idle() {
    let mut b: Buckets<u32> = Buckets::new(100);
    let t0 = std::time::Instant::now();
    for k in 0..10_000u32 {
        let now = t0 + Duration::from_millis(u64::from(k));
        assert!(b.take(k, 2.0, 1.0, now));
        assert!(b.len() <= 100);
    }
    // A busy key keeps its (empty) bucket while newer keys arrive.
    let now = t0 + Duration::from_secs(20);
    assert!(b.take(1, 2.0, 0.0, now));
    assert!(b.take(1, 2.0, 0.0, now));
    assert!(!b.take(1, 2.0, 0.0, now));
    for k in 20_000..20_050u32 {
        assert!(b.take(k, 2.0, 0.0, now));
    }
    assert!(!b.take(1, 2.0, 0.0, now), "its empty bucket was kept");
}

#[test]
fn names_with_control_characters_and_duplicate_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let first = store(tmp.path(), "gogui-phone-1");
    let used = code(&hub, "ML-GOG");
    assert_eq!(call(&hub, honest_join(&first, &used)).0, StatusCode::OK);
    let other = store(tmp.path(), "other");
    let key = other.identity();
    for bad in [
        "gogui\n[ok] hq",
        "\u{1b}[2Jwiped",
        "",
        "   ",
        "rtl\u{202e}gnp.exe",
        &"x".repeat(65),
    ] {
        let before = enrollment(&hub);
        let (s, e) = call(
            &hub,
            crafted_join(key, key.device_id, bad, &code(&hub, "ML-GOG")),
        );
        assert_eq!(
            (s, e.error.as_str()),
            (StatusCode::BAD_REQUEST, "bad_name"),
            "{bad:?}"
        );
        let after = enrollment(&hub);
        assert_eq!(after[0], before[0], "no device stored for {bad:?}");
    }
    // A colleague's name: refused, naming the clash.
    let (s, e) = call(
        &hub,
        crafted_join(key, key.device_id, "gogui-phone-1", &code(&hub, "ML-GOG")),
    );
    assert_eq!((s, e.error.as_str()), (StatusCode::CONFLICT, "name_taken"));
    assert!(
        e.reason.contains(&first.identity().device_id.to_string()),
        "{}",
        e.reason
    );
    // A spent code is named as such first, whatever the name.
    let (s, e) = call(
        &hub,
        crafted_join(key, key.device_id, "gogui-phone-1", &used),
    );
    assert_eq!((s, e.error.as_str()), (StatusCode::FORBIDDEN, "code_used"));
    // 64 characters (not bytes) is fine.
    let (s, e) = call(
        &hub,
        crafted_join(key, key.device_id, &"é".repeat(64), &code(&hub, "ML-GOG")),
    );
    assert_eq!(s, StatusCode::OK, "{e:?}");
}

/// A sync request to the hub, signed by `device`, with `partial` set as the
/// hub client sets it on its second attempt.
fn sync_request(device: &Store, body: Vec<u8>, partial: bool) -> Request<Body> {
    let s = Signed::new(device.identity(), "POST", SYNC_PATH, &body);
    let mut b = Request::post(SYNC_PATH);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    if partial {
        b = b.header(fmp_hub::server::H_PARTIAL, "1");
    }
    b.body(Body::from(body)).unwrap()
}

fn raw_call(hub: &std::sync::Arc<Hub>, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = app(hub.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    })
}

fn submissions_on(store: &Store) -> usize {
    store.list(&Default::default()).unwrap().len()
}

/// A crafted push carrying an enrolled phone's own bundles and a stranger's
/// (picked up phone to phone, self-signed): the stranger's changes are
/// refused alone with their reason and the phone's applied; but a bad
/// signature on a known author's bundle still refuses the whole request.
#[test]
fn a_strangers_bundle_in_a_push_is_refused_alone_but_a_forged_known_one_refuses_all() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let phone = store(tmp.path(), "gogui-phone-1");
    let stranger = store(tmp.path(), "stranger");
    assert_eq!(
        call(&hub, honest_join(&phone, &code(&hub, "ML-GOG"))).0,
        StatusCode::OK
    );
    for (s, n) in [(&phone, 3u32), (&stranger, 2)] {
        for i in 0..n {
            let mut sub = fmp_core::example_submission();
            sub.fmp = "ML-GOG".into();
            sub.observed_at += chrono::Duration::minutes(i64::from(i) * 7);
            sub.notes = format!("{} #{i}", s.identity().name);
            s.record(sub).unwrap();
        }
    }
    let open = fmp_sync::StaticTrust::new(false);
    fmp_sync::sync_in_memory(&stranger, &open, &phone, &open, 65536).unwrap();
    let trust = db::trust(&phone).unwrap();
    let hub_id = hub.store().identity().device_id;
    let body = fmp_sync::Client::new(&phone, &trust, hub_id)
        .next_request()
        .unwrap()
        .unwrap();
    let req = fmp_sync::Request::decode(&body).unwrap();
    assert_eq!(req.push.bundles.len(), 2, "the phone's and the stranger's");
    // A known author's bundle with a bad signature: the whole request.
    let mut forged = req.clone();
    let mine = forged
        .push
        .bundles
        .iter_mut()
        .find(|b| b.author == phone.identity().device_id)
        .unwrap();
    mine.sig[0] ^= 1;
    let (s, b) = raw_call(&hub, sync_request(&phone, forged.encode().unwrap(), true));
    assert_eq!(s, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&b));
    let e: ErrorBody = serde_json::from_slice(&b).unwrap();
    assert_eq!(e.error, "bad_bundle");
    assert_eq!(submissions_on(hub.store()), 0, "nothing stored");
    // All or nothing (the client's first try): refused, listing the
    // stranger's changes, nothing stored.
    let (s, b) = raw_call(&hub, sync_request(&phone, body.clone(), false));
    assert_eq!(s, StatusCode::FORBIDDEN);
    let e: ErrorBody = serde_json::from_slice(&b).unwrap();
    assert_eq!(e.refused.len(), 2, "{e:?}");
    assert!(
        e.refused.iter().all(|r| fmp_sync::may_pass_later(&r.reason)
            && r.reason
                .contains(&stranger.identity().device_id.to_string())),
        "{e:?}"
    );
    assert_eq!(submissions_on(hub.store()), 0, "nothing stored");
    // Partial (the client's second try): the phone's three are applied.
    let (s, b) = raw_call(&hub, sync_request(&phone, body, true));
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let resp = fmp_sync::Response::decode(&b).unwrap();
    assert_eq!((resp.accepted, resp.refused.len()), (3, 2), "{resp:?}");
    assert_eq!(submissions_on(hub.store()), 3);
}

/// A sync request from `key`'s store claiming device `as_device`, with a
/// certificate (and name) in the re-enrollment headers.
fn sync_with_certificate(
    hub: &std::sync::Arc<Hub>,
    key: &Store,
    as_device: Uuid,
    cert: &fmp_sync::Certificate,
    name: Option<&str>,
) -> (StatusCode, ErrorBody) {
    let trust = db::trust(key).unwrap();
    let body = fmp_sync::Client::new(key, &trust, hub.store().identity().device_id)
        .next_request()
        .unwrap()
        .unwrap();
    let mut s = Signed::new(key.identity(), "POST", SYNC_PATH, &body);
    s.device = as_device;
    let mut b = Request::post(SYNC_PATH);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    b = b.header(fmp_hub::server::H_CERTIFICATE, hex::encode(cert.encode()));
    if let Some(n) = name {
        b = b.header(fmp_hub::server::H_NAME, hex::encode(n.as_bytes()));
    }
    call(hub, b.body(Body::from(body)).unwrap())
}

fn issued_by(issuer: &Identity, device: &Store, fmp: &str) -> fmp_sync::Certificate {
    fmp_sync::Certificate::issue(
        issuer,
        device.identity().device_id,
        device.identity().public_key(),
        Some(vec![fmp.to_string()]),
        fmp_sync::Role::Enumerator,
    )
}

#[test]
fn a_device_the_hub_forgot_comes_back_with_the_certificate_the_hub_issued_it() {
    // The hub's store is older than the phone's enrollment (restored from a
    // copy): it has no row for the phone, but its own key signed the
    // phone's certificate.
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let phone = store(tmp.path(), "gogui-phone-1");
    assert_eq!(sync_status(&hub, &phone), StatusCode::FORBIDDEN);
    let cert = issued_by(hub.store().identity(), &phone, "ML-GOG");
    let me = phone.identity().device_id;
    let (s, e) = sync_with_certificate(&hub, &phone, me, &cert, Some("Gogui 1 — Ménaka"));
    assert_eq!(s, StatusCode::OK, "{e:?}");
    let d = fmp_hub::status::devices(hub.store()).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].device, me);
    assert_eq!(d[0].name, "Gogui 1 — Ménaka");
    assert_eq!(d[0].fmps, Some(vec!["ML-GOG".to_string()]));
    // From then on it syncs as any enrolled phone, without the header.
    assert_eq!(sync_status(&hub, &phone), StatusCode::OK);
}

#[test]
fn certificates_the_hub_did_not_issue_or_another_device_s_re_enroll_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let other_hub = store(tmp.path(), "bamako-hub");
    let phone = store(tmp.path(), "gogui-phone-1");
    let mallory = store(tmp.path(), "mallory");
    let before = enrollment(&hub);
    let me = phone.identity().device_id;
    let refused = |(s, e): (StatusCode, ErrorBody), why: &str| {
        assert_eq!(s, StatusCode::FORBIDDEN, "{e:?}");
        assert_eq!(e.error, "unknown_device");
        assert!(e.reason.contains(why), "{}", e.reason);
    };
    // Issued by another hub.
    let cert = issued_by(other_hub.identity(), &phone, "ML-GOG");
    refused(
        sync_with_certificate(&hub, &phone, me, &cert, None),
        "did not issue",
    );
    // Naming this hub as issuer, signed by another key.
    let mut forged = issued_by(other_hub.identity(), &phone, "ML-GOG");
    forged.issuer = hub.store().identity().device_id;
    refused(
        sync_with_certificate(&hub, &phone, me, &forged, None),
        "signature",
    );
    // A genuine certificate of the phone, sent by Mallory as the phone:
    // the request is not signed with the certified key.
    let genuine = issued_by(hub.store().identity(), &phone, "ML-GOG");
    let (s, _) = sync_with_certificate(&hub, &mallory, me, &genuine, None);
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The phone's certificate sent by Mallory as Mallory.
    refused(
        sync_with_certificate(&hub, &mallory, mallory.identity().device_id, &genuine, None),
        "another device's",
    );
    assert_eq!(enrollment(&hub), before, "nothing enrolled");
}

#[test]
fn a_revoked_device_s_certificate_does_not_reinstate_it() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_with(tmp.path(), Limits::default());
    let phone = store(tmp.path(), "gogui-phone-1");
    assert_eq!(
        call(&hub, honest_join(&phone, &code(&hub, "ML-GOG"))).0,
        StatusCode::OK
    );
    let me = phone.identity().device_id;
    assert_eq!(db::revoke(hub.store(), &me.to_string()).unwrap(), 1);
    let before = enrollment(&hub);
    let cert = issued_by(hub.store().identity(), &phone, "ML-GOG");
    let (s, e) = sync_with_certificate(&hub, &phone, me, &cert, None);
    assert_eq!(
        (s, e.error.as_str()),
        (StatusCode::FORBIDDEN, "revoked_device")
    );
    assert_eq!(enrollment(&hub), before, "still revoked, nothing changed");
}
