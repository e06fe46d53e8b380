//! Trust at every hop, from the attacker's side: a phone enrolled for
//! ML-GOG reads nothing of ML-HER (cursor, reconciliation, `want`), a
//! submission moved into its FMP reaches it whole and one moved out stops,
//! and a regional hub cannot rewrite the registry for its phones (HQ's
//! authority is its key). Real hubs on loopback, real stores in temp dirs.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use fmp_core::store::{Filter, Store, testing};
use fmp_hub::auth::Signed;
use fmp_hub::client::{self, Summary, SyncOptions};
use fmp_hub::server::SYNC_PATH;
use fmp_hub::{HubHandle, enroll};
use fmp_sync::reconcile::{self, Found, Mode, Range};
use fmp_sync::wire::{Batch, HashRef, Request, Response};
use uuid::Uuid;

fn code(hub: &Store, fmps: &[&str], may_enroll: bool) -> String {
    let fmps: Vec<String> = fmps.iter().map(|s| s.to_string()).collect();
    enroll::create_code(hub, &fmps, Duration::from_secs(600), may_enroll).unwrap()
}

fn joined(root: &Path, name: &str, hub: &HubHandle, hub_store: &Store, fmps: &[&str]) -> Store {
    let s = Store::init(&root.join(name), name).unwrap();
    client::join(&s, &hub.url(), &code(hub_store, fmps, false)).unwrap();
    s
}

fn sync(store: &Store) -> Summary {
    client::sync(
        store,
        SyncOptions {
            retries: 0,
            ..SyncOptions::default()
        },
    )
    .unwrap()
}

fn record(store: &Store, fmp: &str, n: u32) -> Uuid {
    let mut s = fmp_core::example_submission();
    s.fmp = fmp.into();
    s.notes = format!("record {n}");
    store.record(s).unwrap()
}

/// `(hash, bytes)` of every change of the hub's ML-HER submissions.
fn changes_of(hub_dir: &Path, fmp: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = Store::open(hub_dir).unwrap();
    let ids: HashSet<String> = store
        .list(&Filter {
            fmp: Some(fmp.into()),
            include_deleted: true,
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .filter_map(|s| s.submission.id.map(|id| id.to_string()))
        .collect();
    testing::changes(&store)
        .unwrap()
        .into_iter()
        .filter(|c| ids.contains(&c.doc_id))
        .map(|c| (c.hash.to_vec(), c.bytes))
        .collect()
}

/// Hashes of the hub's changes of documents that are not submissions.
fn reference_hashes(hub_dir: &Path) -> Vec<Vec<u8>> {
    testing::changes(&Store::open(hub_dir).unwrap())
        .unwrap()
        .into_iter()
        .filter(|c| c.doc_kind.as_ref().is_some_and(|k| k != "submission"))
        .map(|c| c.hash.to_vec())
        .collect()
}

/// Sends a hand-made sync request signed by `store`'s key; the decoded answer.
fn send(hub: &HubHandle, store: &Store, req: &Request) -> Response {
    fmp_hub::tls::install_provider();
    let body = req.encode().unwrap();
    let signed = Signed::new(store.identity(), "POST", SYNC_PATH, &body);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bytes = rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut rb = http.post(format!("{}{SYNC_PATH}", hub.url())).body(body);
        for (k, v) in signed.headers() {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap().to_vec();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes
    });
    Response::decode(&bytes).unwrap()
}

fn bare(from: &Store, to: &Store) -> Request {
    Request {
        from: from.identity().device_id,
        to: to.identity().device_id,
        push: Batch::default(),
        push_upto: 0,
        pull_after: None,
        max_bytes: 4 << 20,
        want: Vec::new(),
        reconcile: None,
        push_after: 0,
        log_end: 0,
        restored: false,
    }
}

/// Every hash a batch names: its changes' bytes and its bundles' lists.
fn assert_nothing_of(batch: &Batch, secret: &[(Vec<u8>, Vec<u8>)], what: &str) {
    for c in &batch.changes {
        assert!(
            !secret.iter().any(|(_, b)| *b == c.bytes),
            "{what}: an ML-HER change was served"
        );
    }
    for b in &batch.bundles {
        for h in &b.hashes {
            if let HashRef::Hash(h) = h {
                assert!(
                    !secret.iter().any(|(s, _)| s.as_slice() == h.as_slice()),
                    "{what}: an ML-HER hash is named in a bundle"
                );
            }
        }
    }
}

fn ranges_ids(ranges: &[Range]) -> Vec<[u8; 32]> {
    ranges
        .iter()
        .flat_map(|r| match &r.mode {
            Mode::Ids(ids) => ids.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_gogui_phone_reads_no_heremakono_change_or_hash_by_reconciliation_or_want() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    let hub_store = Store::init(&hub_dir, "hub").unwrap();
    // The hub is the top of its chain: its registry change is HQ's.
    let mut reg = fmp_core::Registry::mali_default();
    let mut kay = reg.fmps[0].clone();
    kay.code = "ML-KAY".into();
    kay.name = "Kayes".into();
    reg.fmps.push(kay);
    assert!(hub_store.set_registry(&reg).unwrap());
    let hub = fmp_hub::serve(&hub_dir, "127.0.0.1:0").unwrap();
    let her = joined(tmp.path(), "her-phone", &hub, &hub_store, &["ML-HER"]);
    // Enough ML-HER records that reconciliation splits ranges into fingerprints.
    let hers: Vec<Uuid> = (0..40).map(|n| record(&her, "ML-HER", n)).collect();
    sync(&her);
    let gog = joined(tmp.path(), "gog-phone", &hub, &hub_store, &["ML-GOG"]);
    let gogs: Vec<Uuid> = (0..3).map(|n| record(&gog, "ML-GOG", n)).collect();
    sync(&gog);
    // The supervisor corrects one record of each FMP between two syncs
    // (sealed by the hub: a bundle of its own must not mix the two).
    let fix = serde_json::json!({"notes": "checked by the supervisor"});
    hub_store.edit(hers[0], &fix).unwrap();
    hub_store.edit(gogs[0], &fix).unwrap();
    let secret = changes_of(&hub_dir, "ML-HER");
    assert_eq!(secret.len(), 41);
    let mut readable: HashSet<Vec<u8>> = changes_of(&hub_dir, "ML-GOG")
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    readable.extend(reference_hashes(&hub_dir));
    assert_eq!(
        readable.len(),
        5,
        "3 Gogui records, the supervisor's edit of one, the registry"
    );

    // The attacker: a Gogui phone, joined properly, speaking by hand.
    let mallory = joined(tmp.path(), "mallory", &hub, &hub_store, &["ML-GOG"]);

    // 1. Reconciliation from an empty set, driven to the end.
    let mut found = Found::default();
    let mut send_ranges = reconcile::initial(&[]);
    let mut counted = 0u64;
    let mut first = true;
    for _ in 0..50 {
        let resp = send(
            &hub,
            &mallory,
            &Request {
                reconcile: Some(send_ranges.clone()),
                ..bare(&mallory, &hub_store)
            },
        );
        assert_nothing_of(&resp.pull, &secret, "reconciliation");
        let incoming = resp.reconcile.clone().unwrap_or_default();
        for id in ranges_ids(&incoming) {
            assert!(
                !secret.iter().any(|(h, _)| h.as_slice() == id.as_slice()),
                "an ML-HER hash is in a reconciliation item list"
            );
        }
        if first {
            // The fingerprints count only what the phone may read.
            counted = incoming
                .iter()
                .map(|r| match &r.mode {
                    Mode::Fingerprint { count, .. } => *count,
                    Mode::Ids(ids) => ids.len() as u64,
                    Mode::Skip => 0,
                })
                .sum();
            first = false;
        }
        send_ranges = reconcile::answer(&[], &incoming, Some(&mut found), 48 * 1024);
        if reconcile::is_done(&send_ranges) {
            break;
        }
    }
    assert_eq!(counted, readable.len() as u64, "fingerprinted items");
    let need: HashSet<Vec<u8>> = found.need.iter().map(|h| h.to_vec()).collect();
    assert_eq!(
        need, readable,
        "the phone learns exactly its scope's hashes"
    );

    // 2. Every ML-HER hash wanted (and one Gogui one): only the latter comes.
    let mut want: Vec<[u8; 32]> = secret
        .iter()
        .map(|(h, _)| h.as_slice().try_into().unwrap())
        .collect();
    want.extend(found.need.iter().copied());
    let resp = send(
        &hub,
        &mallory,
        &Request {
            want,
            ..bare(&mallory, &hub_store)
        },
    );
    assert_nothing_of(&resp.pull, &secret, "want");
    assert_eq!(
        resp.pull.changes.len(),
        readable.len(),
        "Gogui and registry"
    );

    // 3. A cursor pull from the start: Gogui data and the registry, no Heremakono.
    let resp = send(
        &hub,
        &mallory,
        &Request {
            pull_after: Some(0),
            ..bare(&mallory, &hub_store)
        },
    );
    assert_nothing_of(&resp.pull, &secret, "cursor pull");
    assert_eq!(resp.pull.changes.len(), readable.len());
    let her_id = her.identity().device_id;
    assert!(
        resp.pull.certs.iter().all(|c| c.device != her_id),
        "no certificate of a Heremakono device travels with Gogui data"
    );

    // The honest phone gets the same: its records and the registry.
    sync(&mallory);
    assert_eq!(
        mallory
            .list(&fmp_core::store::Filter::default())
            .unwrap()
            .len(),
        3
    );
    assert!(mallory.registry().get("ML-KAY").is_some());
}

#[test]
fn a_record_moved_into_gogui_reaches_the_gogui_phone_whole_and_one_moved_out_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    let hub_store = Store::init(&hub_dir, "hub").unwrap();
    let hub = fmp_hub::serve(&hub_dir, "127.0.0.1:0").unwrap();
    let her = joined(tmp.path(), "her-phone", &hub, &hub_store, &["ML-HER"]);
    let gog = joined(tmp.path(), "gog-phone", &hub, &hub_store, &["ML-GOG"]);
    let misfiled = record(&her, "ML-HER", 1);
    sync(&her);
    her.edit(misfiled, &serde_json::json!({"notes": "seen twice"}))
        .unwrap();
    sync(&her);
    let mine = record(&gog, "ML-GOG", 2);
    // The Gogui phone's cursor passes the Heremakono record (not served).
    sync(&gog);
    assert!(gog.get(misfiled).is_err());

    // The supervisor corrects both at the hub.
    hub_store
        .edit(misfiled, &serde_json::json!({"fmp": "ML-GOG"}))
        .unwrap();
    hub_store
        .edit(mine, &serde_json::json!({"fmp": "ML-HER"}))
        .unwrap();
    hub_store
        .edit(
            mine,
            &serde_json::json!({"notes": "Heremakono's, not Gogui's"}),
        )
        .unwrap();

    let s = sync(&gog);
    assert!(s.refused_here.is_empty(), "{s:?}");
    let got = gog.get(misfiled).unwrap();
    assert_eq!(got.submission.fmp, "ML-GOG");
    assert_eq!(got.submission.notes, "seen twice", "with its whole history");
    let waiting = fmp_sync::waiting(&gog).unwrap();
    assert_eq!(
        waiting.total, 0,
        "nothing waits for a missing change: {waiting:?}"
    );
    // The record moved out is no longer served: its later changes stay at the hub.
    let kept = gog.get(mine).unwrap();
    assert_eq!(kept.submission.fmp, "ML-GOG");
    assert_eq!(kept.submission.notes, "record 2");
    // Further edits of the moved-in record keep coming, once.
    hub_store
        .edit(
            misfiled,
            &serde_json::json!({"notes": "seen twice, checked"}),
        )
        .unwrap();
    let s = sync(&gog);
    assert_eq!(s.received, 1, "{s:?}");
    assert_eq!(
        gog.get(misfiled).unwrap().submission.notes,
        "seen twice, checked"
    );
}

#[test]
fn a_regional_hub_cannot_rewrite_the_registry_for_its_phones_but_hq_can() {
    let tmp = tempfile::tempdir().unwrap();
    let hq_dir = tmp.path().join("hq");
    let hq_store = Store::init(&hq_dir, "hq").unwrap();
    let hq = fmp_hub::serve(&hq_dir, "127.0.0.1:0").unwrap();
    let gao_dir = tmp.path().join("gao");
    let gao_store = Store::init(&gao_dir, "gao-hub").unwrap();
    client::join(
        &gao_store,
        &hq.url(),
        &code(&hq_store, &["ML-GOG", "ML-HER"], true),
    )
    .unwrap();
    assert_eq!(
        gao_store.pinned_authority().unwrap().unwrap().device_id,
        hq_store.identity().device_id
    );
    let gao = fmp_hub::serve(&gao_dir, "127.0.0.1:0").unwrap();
    let phone = joined(tmp.path(), "gog-phone", &gao, &gao_store, &["ML-GOG"]);
    assert_eq!(
        phone.pinned_authority().unwrap().unwrap().device_id,
        hq_store.identity().device_id,
        "the phone pins HQ, learned through its hub"
    );
    record(&phone, "ML-GOG", 1);
    sync(&phone);
    let before = phone.registry();

    // The supervisor lifts the laptop's local guard and closes Gogui until 2099.
    gao_store.set_enrolled_fmps(None).unwrap();
    let mut reg = (*gao_store.registry()).clone();
    for f in reg.fmps.iter_mut().filter(|f| f.code == "ML-GOG") {
        f.active_since = chrono::NaiveDate::from_ymd_opt(2099, 1, 1).unwrap();
    }
    assert!(gao_store.set_registry(&reg).unwrap());

    let s = sync(&phone);
    assert_eq!(s.refused_here.len(), 1, "{s:?}");
    let reason = &s.refused_here[0].reason;
    assert!(
        reason.contains(&format!(
            "device {} may not write registry documents (only HQ, device {}",
            gao_store.identity().device_id,
            hq_store.identity().device_id
        )),
        "{reason}"
    );
    assert_eq!(
        *phone.registry(),
        *before,
        "the phone's registry is unchanged"
    );
    // Gogui records are still recorded on the phone. The hub, which
    // validates what it receives against its own (rewritten) registry,
    // refuses them: the phone holds them with that reason, nothing lost.
    record(&phone, "ML-GOG", 2);
    let s = sync(&phone);
    assert!(
        s.refused
            .iter()
            .all(|r| r.reason.contains("active only since 2099")),
        "{s:?}"
    );

    // HQ's own change reaches the phone through the hub and is in force.
    let mut reg = (*hq_store.registry()).clone();
    let mut kay = reg.fmps[0].clone();
    kay.code = "ML-KAY".into();
    kay.name = "Kayes".into();
    reg.fmps.push(kay);
    assert!(hq_store.set_registry(&reg).unwrap());
    let s = sync(&gao_store);
    assert!(s.refused_here.is_empty(), "{s:?}");
    let s = sync(&phone);
    assert!(s.refused_here.is_empty(), "{s:?}");
    assert!(phone.registry().get("ML-KAY").is_some());
    assert!(
        phone
            .registry()
            .get("ML-GOG")
            .is_some_and(|f| f.active_since.to_string() != "2099-01-01")
    );
}

#[test]
fn a_store_pinned_to_one_hq_refuses_to_join_a_hub_of_another() {
    let tmp = tempfile::tempdir().unwrap();
    let hq1_dir = tmp.path().join("hq1");
    let hq1_store = Store::init(&hq1_dir, "hq1").unwrap();
    let hq1 = fmp_hub::serve(&hq1_dir, "127.0.0.1:0").unwrap();
    let hq2_dir = tmp.path().join("hq2");
    let hq2_store = Store::init(&hq2_dir, "hq2").unwrap();
    let hq2 = fmp_hub::serve(&hq2_dir, "127.0.0.1:0").unwrap();
    let phone = joined(tmp.path(), "phone", &hq1, &hq1_store, &["ML-GOG"]);
    let pinned = phone.pinned_authority().unwrap();
    let err = client::join(&phone, &hq2.url(), &code(&hq2_store, &["ML-GOG"], false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "pinned to HQ device {}",
            hq1_store.identity().device_id
        )),
        "{err}"
    );
    assert_eq!(phone.pinned_authority().unwrap(), pinned);
    let up = fmp_hub::db::upstream(&phone).unwrap().unwrap();
    assert_eq!(
        up.hub,
        hq1_store.identity().device_id,
        "still joined to HQ 1"
    );
    // Joining a second hub of the same HQ is fine.
    let again = client::join(&phone, &hq1.url(), &code(&hq1_store, &["ML-GOG"], false));
    assert!(again.is_ok(), "{again:?}");
}

#[test]
fn stores_joined_before_pins_existed_pin_hq_at_a_later_sync_never_a_regional_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let hq_dir = tmp.path().join("hq");
    let hq_store = Store::init(&hq_dir, "hq").unwrap();
    let hq = fmp_hub::serve(&hq_dir, "127.0.0.1:0").unwrap();
    let gao_dir = tmp.path().join("gao");
    let gao_store = Store::init(&gao_dir, "gao-hub").unwrap();
    client::join(&gao_store, &hq.url(), &code(&hq_store, &["ML-GOG"], true)).unwrap();
    // As if it had joined before pins existed.
    testing::forget_hq_authority(&gao_store).unwrap();
    assert_eq!(gao_store.pinned_authority().unwrap(), None);
    let gao = fmp_hub::serve(&gao_dir, "127.0.0.1:0").unwrap();
    // The regional hub knows no HQ yet: it names none (not itself).
    let phone = joined(tmp.path(), "gog-phone", &gao, &gao_store, &["ML-GOG"]);
    assert_eq!(phone.pinned_authority().unwrap(), None);
    sync(&phone);
    assert_eq!(phone.pinned_authority().unwrap(), None);
    // The hub syncs with HQ and pins it; then the phone pins the same.
    sync(&gao_store);
    let hq_id = hq_store.identity().device_id;
    assert_eq!(
        gao_store.pinned_authority().unwrap().unwrap().device_id,
        hq_id
    );
    sync(&phone);
    let pin = phone.pinned_authority().unwrap().unwrap();
    assert_eq!(pin.device_id, hq_id);
    assert_eq!(pin.public_key, hq_store.identity().public_key());
}
