//! The restore signals of the sync protocol from a hostile device's side:
//! crafted sync messages, signed by an enrolled phone, sent through the
//! hub's router. A phone that claims to be restored gets back its own
//! changes and nothing beyond its FMPs; a change whose actor names
//! another device, at any epoch, is refused whole and nothing is stored.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fmp_core::doc::{Op, actor_for_epoch, new_submission_committed};
use fmp_core::store::{Store, testing};
use fmp_hub::auth::Signed;
use fmp_hub::server::{Hub, JOIN_PATH, JoinRequest, SYNC_PATH};
use fmp_hub::{Limits, app, db, enroll};
use fmp_sync::bundle::Bundle;
use fmp_sync::wire::{Batch, DocRef, HashRef, WireBundle, WireChange};
use tower::ServiceExt;
use uuid::Uuid;

fn signed(store: &Store, path: &str, body: Vec<u8>) -> Request<Body> {
    let s = Signed::new(store.identity(), "POST", path, &body);
    let mut b = Request::post(path);
    for (k, v) in s.headers() {
        b = b.header(k, v);
    }
    b.body(Body::from(body)).unwrap()
}

fn call(hub: &std::sync::Arc<Hub>, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let resp = app(hub.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    })
}

fn join(hub: &std::sync::Arc<Hub>, phone: &Store, fmp: &str) {
    let code =
        enroll::create_code(hub.store(), &[fmp.into()], Duration::from_secs(60), false).unwrap();
    let id = phone.identity();
    let body = serde_json::to_vec(&JoinRequest {
        code,
        name: id.name.clone(),
        public_key: hex::encode(id.public_key()),
        hq: None,
        enrolls: false,
    })
    .unwrap();
    let (status, body) = call(hub, signed(phone, JOIN_PATH, body));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

fn record(store: &Store, fmp: &str, n: i64) -> Uuid {
    let mut s = fmp_core::example_submission();
    s.fmp = fmp.into();
    s.observed_at += chrono::Duration::minutes(n);
    store.record(s).unwrap()
}

/// The honest client's whole sync of `phone` with the hub, through the router.
fn honest_sync(hub: &std::sync::Arc<Hub>, phone: &Store) {
    let trust = db::trust(phone).unwrap();
    let mut c = fmp_sync::Client::new(phone, &trust, hub.store().identity().device_id);
    while let Some(req) = c.next_request().unwrap() {
        let (status, body) = call(hub, signed(phone, SYNC_PATH, req));
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        c.handle_response(&body).unwrap();
    }
}

/// The raw changes of one document, as `store` logged them.
fn changes_of(store: &Store, doc: Uuid) -> Vec<Vec<u8>> {
    testing::changes(store)
        .unwrap()
        .into_iter()
        .filter(|c| c.doc_id == doc.to_string())
        .map(|c| c.bytes)
        .collect()
}

fn fixture() -> (tempfile::TempDir, std::sync::Arc<Hub>, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let hub_store = Store::init(&tmp.path().join("hub"), "hub").unwrap();
    let phone = Store::init(&tmp.path().join("phone"), "gogui-phone").unwrap();
    let hub = Hub::new(hub_store, Limits::default()).unwrap();
    join(&hub, &phone, "ML-GOG");
    (tmp, hub, phone)
}

#[test]
fn a_phone_claiming_a_restore_gets_back_its_own_changes_and_nothing_beyond_its_fmps() {
    let (tmp, hub, phone) = fixture();
    let other = Store::init(&tmp.path().join("other"), "heremakono-phone").unwrap();
    join(&hub, &other, "ML-HER");
    let mine: Vec<Uuid> = (0..3).map(|n| record(&phone, "ML-GOG", n)).collect();
    let theirs = record(&other, "ML-HER", 0);
    honest_sync(&hub, &phone);
    honest_sync(&hub, &other);
    let me = phone.identity().device_id;
    let before = fmp_sync::cursor(hub.store(), me).unwrap();
    assert!(before.pulled > 0);

    // "I was restored and my log is empty: send me everything after 0."
    let req = fmp_sync::Request {
        from: me,
        to: hub.store().identity().device_id,
        push: Batch::default(),
        push_upto: 0,
        pull_after: Some(0),
        max_bytes: 65536,
        want: Vec::new(),
        reconcile: None,
        push_after: 0,
        log_end: 0,
        restored: true,
    };
    let (status, body) = call(&hub, signed(&phone, SYNC_PATH, req.encode().unwrap()));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let resp = fmp_sync::Response::decode(&body).unwrap();
    let got: Vec<&Vec<u8>> = resp.pull.changes.iter().map(|c| &c.bytes).collect();
    for id in &mine {
        for c in changes_of(hub.store(), *id) {
            assert!(got.contains(&&c), "its own record {id} comes back");
        }
    }
    for c in changes_of(hub.store(), theirs) {
        assert!(!got.contains(&&c), "nothing of ML-HER");
    }
    assert_eq!(
        resp.pulled_yours, before.pulled,
        "the hub still holds what it held"
    );
    // The claim does not lower what the hub holds of the phone.
    assert_eq!(
        fmp_sync::cursor(hub.store(), me).unwrap().pulled,
        before.pulled
    );
}

#[test]
fn a_change_whose_actor_names_another_device_is_refused_whole_at_any_epoch() {
    let (tmp, hub, phone) = fixture();
    let other = Store::init(&tmp.path().join("other"), "gogui-phone-2").unwrap();
    join(&hub, &other, "ML-GOG");
    let me = phone.identity().device_id;
    let before = testing::count_rows(hub.store(), "changes").unwrap();
    let push = |actor| {
        let id = Uuid::now_v7();
        let mut sub = fmp_core::example_submission();
        sub.fmp = "ML-GOG".into();
        sub.id = Some(id);
        let (_, change) =
            new_submission_committed(actor, id, &sub, Op::Record, 1_592_000_000_000).unwrap();
        let b = Bundle::sign(phone.identity(), vec![change.hash().0]);
        let req = fmp_sync::Request {
            from: me,
            to: hub.store().identity().device_id,
            push: Batch {
                certs: Vec::new(),
                bundles: vec![WireBundle {
                    author: me,
                    hashes: vec![HashRef::Here(0)],
                    sig: b.sig,
                }],
                changes: vec![WireChange {
                    doc: DocRef::InChange,
                    bytes: change.raw_bytes().to_vec(),
                }],
            },
            push_upto: 1,
            pull_after: Some(0),
            max_bytes: 65536,
            want: Vec::new(),
            reconcile: None,
            push_after: 0,
            log_end: 1,
            restored: false,
        };
        call(&hub, signed(&phone, SYNC_PATH, req.encode().unwrap()))
    };
    let other_id = other.identity().device_id;
    for actor in [actor_for_epoch(other_id, 0), actor_for_epoch(other_id, 7)] {
        let (status, body) = push(actor);
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(String::from_utf8_lossy(&body).contains("bad_bundle"));
    }
    let after = testing::count_rows(hub.store(), "changes").unwrap();
    assert_eq!(before, after, "nothing stored");
    // The phone's own id at an epoch: accepted.
    let (status, body) = push(actor_for_epoch(me, 2));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let resp = fmp_sync::Response::decode(&body).unwrap();
    assert!(resp.refused.is_empty(), "{resp:?}");
    assert_eq!(resp.accepted, 1);
}
