//! Roles and validation over the real transport: a hub on loopback, phones
//! that join it with codes, and a modified app (its store's guards lifted,
//! or records written into it past validation) syncing with the honest
//! client. Refused changes are set aside on the phone with the hub's
//! reason (`fmp status`), and the rest goes through.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use fmp_core::doc::{self, Op};
use fmp_core::model::{ReviewStatus, StoredSubmission};
use fmp_core::store::{Filter, Store, StoreError, testing};
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::{enroll, status};
use fmp_sync::Role;
use uuid::Uuid;

struct Setup {
    _tmp: tempfile::TempDir,
    hub_dir: std::path::PathBuf,
    served: fmp_hub::HubHandle,
}

fn hub() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    Store::init(&hub_dir, "gao-hub").unwrap();
    let served = fmp_hub::serve(&hub_dir, "127.0.0.1:0").unwrap();
    Setup {
        _tmp: tmp,
        hub_dir,
        served,
    }
}

impl Setup {
    fn hub_store(&self) -> Store {
        Store::open(&self.hub_dir).unwrap()
    }

    /// A new store joined to the hub for ML-GOG (`--hub` if `hub`).
    fn join(&self, name: &str, as_hub: bool) -> (Store, client::Joined) {
        let code = enroll::create_code(
            &self.hub_store(),
            &["ML-GOG".into()],
            Duration::from_secs(600),
            as_hub,
        )
        .unwrap();
        let store = Store::init(&self.hub_dir.with_file_name(name), name).unwrap();
        let j = client::join(&store, &self.served.url(), &code).unwrap();
        (store, j)
    }
}

fn sync(store: &Store) -> client::Summary {
    client::sync(
        store,
        SyncOptions {
            retries: 0,
            ..SyncOptions::default()
        },
    )
    .unwrap()
}

fn gogui(n: u32) -> fmp_core::Submission {
    let mut s = fmp_core::example_submission();
    s.fmp = "ML-GOG".into();
    s.observed_at += chrono::Duration::minutes(i64::from(n) * 7);
    s.notes = format!("gogui #{n}");
    s
}

/// A record a modified app wrote past `Store::record`'s validation.
fn forge_record(store: &Store, mut sub: fmp_core::Submission) -> Uuid {
    let id = Uuid::now_v7();
    sub.id = Some(id);
    let me = store.identity().device_id;
    let now = chrono::Utc::now().timestamp_millis();
    let (mut d, change) =
        doc::new_submission_committed(doc::actor_for(me), id, &sub, Op::Record, now).unwrap();
    store
        .transaction(|w| -> Result<(), StoreError> {
            let state = StoredSubmission {
                submission: sub,
                review: None,
                deleted: false,
                conflicts: Vec::new(),
            };
            testing::forge_change(w, id, &d.save(), &change, Op::Record, now, &state).unwrap();
            Ok(())
        })
        .unwrap();
    id
}

fn review_status(dir: &Path, id: Uuid) -> Option<String> {
    Store::open(dir)
        .unwrap()
        .list(&Filter {
            include_deleted: true,
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .find(|s| s.submission.id == Some(id))
        .unwrap()
        .review
        .map(|r| r.status.as_str().to_string())
}

#[test]
fn a_joined_phone_is_an_enumerator_and_its_own_approval_is_refused_at_the_hub() {
    let h = hub();
    let (phone, joined) = h.join("gogui-phone", false);
    assert_eq!(joined.role, Role::Enumerator);
    assert_eq!(phone.role().unwrap(), Some(Role::Enumerator));
    let (_sub_hub, joined) = h.join("lower-hub", true);
    assert_eq!(
        joined.role,
        Role::Supervisor,
        "a --hub code grants a supervisor"
    );

    let rec = phone.record(gogui(1)).unwrap();
    let err = phone
        .review(rec, ReviewStatus::Approved, "mine")
        .expect_err("the phone's own store refuses");
    assert!(err.to_string().contains("enumerator"), "{err}");
    // A modified app lifts the guard and approves its own record.
    phone.set_role(None).unwrap();
    phone.review(rec, ReviewStatus::Approved, "mine").unwrap();
    let later = phone.record(gogui(2)).unwrap();
    let s = sync(&phone);
    assert_eq!(s.refused.len(), 1, "{s:?}");
    assert!(s.refused[0].reason.contains("may review"), "{s:?}");
    let st = status::status(&phone).unwrap();
    assert_eq!(st.quarantined.len(), 1, "{st:?}");
    assert_eq!(st.quarantined[0].record, rec.to_string());
    assert!(st.quarantined[0].reason.contains("enumerator"), "{st:?}");
    // The hub has the record and the later one, not the approval.
    let hub = h.hub_store();
    assert!(hub.get(later).is_ok());
    assert_eq!(hub.get(rec).unwrap().review, None);
    assert_eq!(review_status(&h.hub_dir, rec), None);
    // The hub's own review is taken, and reaches the phone.
    hub.review(rec, ReviewStatus::HasIssues, "check the count")
        .unwrap();
    let s = sync(&phone);
    assert!(s.refused.is_empty(), "{s:?}");
}

#[test]
fn a_modified_app_pushing_invalid_submissions_gets_them_refused_alone_and_held_with_the_fields() {
    let h = hub();
    let (phone, _) = h.join("gogui-phone", false);
    let good = phone.record(gogui(1)).unwrap();
    let mut bad = gogui(2);
    bad.people.adult_male += 3;
    let sums = forge_record(&phone, bad);
    let mut bad = gogui(3);
    bad.final_destination.country = "ATLANTIS".into();
    let country = forge_record(&phone, bad);
    let good2 = phone.record(gogui(4)).unwrap();
    let s = sync(&phone);
    assert_eq!(s.refused.len(), 2, "{s:?}");
    let hub = h.hub_store();
    assert!(
        hub.get(good).is_ok() && hub.get(good2).is_ok(),
        "the rest applied"
    );
    assert!(hub.get(sums).is_err() && hub.get(country).is_err());
    let st = status::status(&phone).unwrap();
    assert_eq!(st.quarantined.len(), 2, "{st:?}");
    let reason = |id: Uuid| {
        st.quarantined
            .iter()
            .find(|q| q.record == id.to_string())
            .map(|q| q.reason.clone())
            .unwrap()
    };
    assert!(reason(sums).contains("nationalities:"), "{st:?}");
    assert!(
        reason(country).contains("final_destination.country"),
        "{st:?}"
    );
    // Held at the hub, counted by its status.
    let hub_st = status::status(&hub).unwrap();
    assert_eq!(hub_st.waiting.held_for_scope, 2, "{hub_st:?}");
    // What follows is not blocked, and the held records are not sent again.
    let good3 = phone.record(gogui(5)).unwrap();
    let s = sync(&phone);
    assert!(s.refused.is_empty(), "{s:?}");
    assert!(h.hub_store().get(good3).is_ok());
    // Corrected on the phone, the record goes through with its correction.
    phone
        .edit(sums, &serde_json::json!({"nationalities": {"BFA": 34}}))
        .unwrap();
    let st = status::status(&phone).unwrap();
    assert!(
        st.quarantined
            .iter()
            .any(|q| q.record == sums.to_string() && q.released),
        "{st:?}"
    );
    let s = sync(&phone);
    assert!(s.refused.is_empty(), "{s:?}");
    let got = h.hub_store().get(sums).unwrap();
    assert_eq!(got.submission.nationalities.get("BFA"), Some(&34));
    let st = status::status(&phone).unwrap();
    assert_eq!(
        st.quarantined.len(),
        1,
        "only the unknown country stays: {st:?}"
    );
    assert_eq!(st.quarantined[0].record, country.to_string());
    assert_eq!(status::status(&h.hub_store()).unwrap().waiting.total, 1);
}

#[test]
fn a_colleagues_phone_editing_a_record_it_did_not_make_is_refused_over_http() {
    let h = hub();
    let (ana, _) = h.join("gogui-phone-ana", false);
    let (bob, _) = h.join("gogui-phone-bob", false);
    let rec = ana.record(gogui(1)).unwrap();
    sync(&ana);
    sync(&bob);
    let err = bob
        .edit(rec, &serde_json::json!({"notes": "bob"}))
        .expect_err("his store refuses");
    assert!(matches!(err, StoreError::NotAllowed(_)), "{err}");
    bob.set_role(None).unwrap();
    bob.edit(rec, &serde_json::json!({"notes": "bob"})).unwrap();
    let s = sync(&bob);
    assert_eq!(s.refused.len(), 1, "{s:?}");
    assert!(
        s.refused[0]
            .reason
            .contains(&format!("recorded by device {}", ana.identity().device_id)),
        "{s:?}"
    );
    assert_eq!(h.hub_store().get(rec).unwrap().submission.notes, "gogui #1");
}
