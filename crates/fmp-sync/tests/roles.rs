//! Roles and validation at every hop, from the attacker's side: changes a
//! modified app makes past its store's checks (written straight into its
//! store, or by a store whose role guard is lifted), synced with the
//! honest transport; and a careless hub that forwards what it should not.

mod common;

use automerge::AutoCommit;
use common::*;
use fmp_core::doc::{self, Op};
use fmp_core::model::{Review, ReviewStatus, StoredSubmission, Submission};
use fmp_core::store::{Store, StoreError, testing};
use fmp_sync::trust::{LegacyCertificate, store_certificate, stored_certificate};
use fmp_sync::{AuthorInfo, Certificate, Role, StaticTrust, sync_in_memory};
use uuid::Uuid;

fn known(r: &Replica, fmps: Option<&[&str]>, role: Role, may_enroll: bool) -> AuthorInfo {
    AuthorInfo {
        may_enroll,
        ..info_as(r, fmps, role)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Stores a record made past `Store::record`'s validation (a modified
/// app): document, change (sealed at the next sync) and row.
fn forge_record(store: &Store, mut sub: Submission) -> Uuid {
    let id = Uuid::now_v7();
    sub.id = Some(id);
    let me = store.identity().device_id;
    let (mut d, change) =
        doc::new_submission_committed(doc::actor_for(me), id, &sub, Op::Record, now_ms())
            .expect("build");
    store
        .transaction(|w| -> Result<(), StoreError> {
            let state = StoredSubmission {
                submission: sub,
                review: None,
                deleted: false,
                conflicts: Vec::new(),
            };
            testing::forge_change(w, id, &d.save(), &change, Op::Record, now_ms(), &state)
                .expect("record");
            Ok(())
        })
        .expect("forge record");
    id
}

/// Makes a change of submission `id` by hand (`f` on its document) and
/// stores it as the store's own, past every check of `Store`.
fn forge_change(store: &Store, id: Uuid, op: Op, f: impl FnOnce(&mut AutoCommit)) {
    let me = store.identity().device_id;
    store
        .transaction(|w| -> Result<(), StoreError> {
            let mut d = testing::forged_document(w, id)
                .expect("document")
                .with_actor(doc::actor_for(me));
            f(&mut d);
            doc::commit(&mut d, op, now_ms()).expect("a change");
            let change = d.get_last_local_change().expect("change").clone();
            let state = doc::read_submission(&d).expect("read");
            testing::forge_change(w, id, &d.save(), &change, op, now_ms(), &state).expect("save");
            Ok(())
        })
        .expect("forge change");
}

fn approved(store: &Store) -> usize {
    store
        .list(&fmp_core::store::Filter {
            review: Some(Some(ReviewStatus::Approved)),
            ..Default::default()
        })
        .expect("list")
        .len()
}

#[test]
fn an_enumerator_approving_its_own_record_is_refused_at_the_hub_and_at_hq_behind_a_careless_hub() {
    let phone = replica("gogui-phone");
    let hub = replica("gao-hub");
    let careless = replica("careless-hub");
    let hq = replica("hq");
    // The careless hub enrolled the phone as an enumerator (its signed
    // certificate says so), but its own table wrongly lets it review.
    let cert = Certificate::issue(
        careless.store.identity(),
        id(&phone),
        phone.store.identity().public_key(),
        Some(vec!["ML-GOG".into()]),
        Role::Enumerator,
    );
    store_certificate(&phone.store, &cert).expect("keep cert");
    let rec = phone.store.record(submission("ML-GOG", 3)).expect("record");
    // The phone's store has no role (a modified app): its review goes through locally.
    phone
        .store
        .review(rec, ReviewStatus::Approved, "looks fine")
        .expect("lifted guard");

    // A hub that checks: the record is taken, the review refused.
    let hub_trust = StaticTrust::new(true)
        .with(
            id(&phone),
            known(&phone, Some(&["ML-GOG"]), Role::Enumerator, false),
        )
        .with(id(&hub), known(&hub, None, Role::Hq, true));
    let r = sync_in_memory(&phone.store, &hub_trust, &hub.store, &hub_trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(
        r.refused_by_peer[0].reason.contains("enumerator")
            && r.refused_by_peer[0].reason.contains("review"),
        "{:?}",
        r.refused_by_peer
    );
    let at_hub = hub.store.get(rec).expect("the record arrived");
    assert_eq!(at_hub.review, None);
    assert_eq!(approved(&hub.store), 0);

    // The careless hub takes it all and forwards it to HQ.
    let careless_trust = StaticTrust::new(true)
        .with(
            id(&phone),
            known(&phone, Some(&["ML-GOG"]), Role::Supervisor, false),
        )
        .with(id(&careless), known(&careless, None, Role::Hq, true));
    let r = sync_in_memory(
        &phone.store,
        &careless_trust,
        &careless.store,
        &careless_trust,
        65536,
    )
    .expect("sync");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert_eq!(approved(&careless.store), 1, "the careless hub believed it");
    // HQ knows the careless hub (a supervisor for ML-GOG) and the phone only
    // through the certificate that hub signed.
    let hq_trust = StaticTrust::new(true)
        .with(
            id(&careless),
            known(&careless, Some(&["ML-GOG"]), Role::Supervisor, true),
        )
        .with(id(&hq), known(&hq, None, Role::Hq, true));
    let r = sync_in_memory(&careless.store, &hq_trust, &hq.store, &hq_trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(
        r.refused_by_peer[0].reason.contains("enumerator"),
        "{:?}",
        r.refused_by_peer
    );
    let at_hq = hq.store.get(rec).expect("the record reached HQ");
    assert_eq!(at_hq.review, None, "HQ's report does not see the approval");
    assert_eq!(approved(&hq.store), 0);
    let status: Option<String> = hq
        .store
        .list(&fmp_core::store::Filter {
            include_deleted: true,
            ..Default::default()
        })
        .expect("list")
        .into_iter()
        .find(|s| s.submission.id == Some(rec))
        .expect("row")
        .review
        .map(|r| r.status.as_str().to_string());
    assert_eq!(status, None);

    // Once the store knows its role (from its join), it refuses by itself.
    phone
        .store
        .set_role(Some(Role::Enumerator))
        .expect("set role");
    let other = phone.store.record(submission("ML-GOG", 4)).expect("record");
    let err = phone
        .store
        .review(other, ReviewStatus::Approved, "")
        .expect_err("an enumerator may not review");
    assert!(matches!(err, StoreError::NotAllowed(_)), "{err}");
    assert!(err.to_string().contains("enumerator"), "{err}");
    assert_eq!(phone.store.get(other).expect("get").review, None);
}

#[test]
fn an_enumerator_may_change_its_own_records_but_not_a_colleagues_of_the_same_fmp() {
    let ana = replica("gogui-phone-ana");
    let bob = replica("gogui-phone-bob");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(id(&ana), info_as(&ana, Some(&["ML-GOG"]), Role::Enumerator))
        .with(id(&bob), info_as(&bob, Some(&["ML-GOG"]), Role::Enumerator))
        .with(id(&hub), known(&hub, None, Role::Hq, true));
    let sync =
        |r: &Replica| sync_in_memory(&r.store, &trust, &hub.store, &trust, 65536).expect("sync");
    let edited = ana.store.record(submission("ML-GOG", 1)).expect("record");
    let deleted = ana.store.record(submission("ML-GOG", 2)).expect("record");
    let rejected = ana.store.record(submission("ML-GOG", 3)).expect("record");
    sync(&ana);
    let r = sync(&bob);
    assert_eq!(r.pulled, 3, "{r:?}");
    let before: Vec<StoredSubmission> = [edited, deleted, rejected]
        .iter()
        .map(|i| hub.store.get(*i).expect("get"))
        .collect();

    // Bob's store has no role: a modified app changes Ana's records.
    bob.store
        .edit(edited, &serde_json::json!({"notes": "bob was here"}))
        .expect("lifted guard");
    bob.store.delete(deleted).expect("lifted guard");
    bob.store
        .review(rejected, ReviewStatus::Rejected, "")
        .expect("lifted guard");
    let own = bob.store.record(submission("ML-GOG", 9)).expect("record");
    let r = sync(&bob);
    assert_eq!(r.refused_by_peer.len(), 3, "{r:?}");
    for f in &r.refused_by_peer {
        assert!(f.reason.contains("enumerator"), "{f:?}");
    }
    assert!(
        r.refused_by_peer
            .iter()
            .filter(|f| f
                .reason
                .contains(&format!("recorded by device {}", id(&ana))))
            .count()
            >= 2,
        "{:?}",
        r.refused_by_peer
    );
    for (i, b) in [edited, deleted, rejected].iter().zip(&before) {
        assert_eq!(
            &hub.store.get(*i).expect("get"),
            b,
            "Ana's record is unchanged"
        );
    }
    assert!(hub.store.get(own).is_ok(), "Bob's own record went through");

    // His own records he may edit and delete.
    bob.store
        .edit(own, &serde_json::json!({"notes": "corrected"}))
        .expect("edit own");
    let own2 = bob.store.record(submission("ML-GOG", 10)).expect("record");
    bob.store.delete(own2).expect("delete own");
    let r = sync(&bob);
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert_eq!(
        hub.store.get(own).expect("get").submission.notes,
        "corrected"
    );
    assert!(hub.store.get(own2).expect("get").deleted);

    // With its role known, Bob's store refuses by itself.
    bob.store.set_role(Some(Role::Enumerator)).expect("role");
    let err = bob
        .store
        .edit(edited, &serde_json::json!({"notes": "again"}))
        .expect_err("not his");
    assert!(err.to_string().contains("recorded by device"), "{err}");
    assert!(bob.store.delete(deleted).is_err());
    bob.store
        .edit(own, &serde_json::json!({"notes": "mine"}))
        .expect("his own");
}

#[test]
fn a_review_naming_the_supervisor_but_signed_by_another_device_is_refused() {
    let phone = replica("gogui-phone");
    let supervisor = replica("gao-hub");
    let other = replica("kayes-hub");
    let hq = replica("hq");
    let trust = StaticTrust::new(true)
        .with(
            id(&phone),
            info_as(&phone, Some(&["ML-GOG"]), Role::Enumerator),
        )
        .with(
            id(&other),
            known(&other, Some(&["ML-GOG"]), Role::Supervisor, true),
        )
        .with(id(&hq), known(&hq, None, Role::Hq, true));
    let rec = phone.store.record(submission("ML-GOG", 1)).expect("record");
    let rec2 = phone.store.record(submission("ML-GOG", 2)).expect("record");
    sync_in_memory(&phone.store, &trust, &hq.store, &trust, 65536).expect("sync");
    sync_in_memory(&other.store, &trust, &hq.store, &trust, 65536).expect("sync");
    let review = |by: Uuid| Review {
        status: ReviewStatus::Approved,
        comment: "ok".into(),
        by: by.to_string(),
        at: chrono::Utc::now(),
    };
    // The phone writes a review in the supervisor's name.
    forge_change(&phone.store, rec, Op::Review, |d| {
        doc::set_review(d, &review(id(&supervisor))).expect("set")
    });
    // Another supervisor's hub does the same.
    forge_change(&other.store, rec2, Op::Review, |d| {
        doc::set_review(d, &review(id(&supervisor))).expect("set")
    });
    let r = sync_in_memory(&phone.store, &trust, &hq.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    let r = sync_in_memory(&other.store, &trust, &hq.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    let reason = &r.refused_by_peer[0].reason;
    assert!(
        reason.contains(&id(&supervisor).to_string())
            && reason.contains("reviewer")
            && reason.contains(&id(&other).to_string()),
        "{reason}"
    );
    assert_eq!(hq.store.get(rec).expect("get").review, None);
    assert_eq!(hq.store.get(rec2).expect("get").review, None);
    // Its own review, in its own name, is taken.
    let rec3 = phone.store.record(submission("ML-GOG", 3)).expect("record");
    sync_in_memory(&phone.store, &trust, &hq.store, &trust, 65536).expect("sync");
    sync_in_memory(&other.store, &trust, &hq.store, &trust, 65536).expect("sync");
    other
        .store
        .review(rec3, ReviewStatus::Approved, "fine")
        .expect("review");
    let r = sync_in_memory(&other.store, &trust, &hq.store, &trust, 65536).expect("sync");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    let got = hq.store.get(rec3).expect("get").review.expect("reviewed");
    assert_eq!(got.by, id(&other).to_string());
}

#[test]
fn an_invalid_submission_from_a_modified_app_is_refused_alone_and_the_rest_applied() {
    let phone = replica("gogui-phone");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(
            id(&phone),
            info_as(&phone, Some(&["ML-GOG"]), Role::Enumerator),
        )
        .with(id(&hub), known(&hub, None, Role::Hq, true));
    let good1 = phone.store.record(submission("ML-GOG", 1)).expect("record");
    let mut bad = submission("ML-GOG", 2);
    bad.people.adult_male += 5; // nationalities no longer sum to the people
    let sums = forge_record(&phone.store, bad);
    let mut bad = submission("ML-GOG", 3);
    bad.departure.country = "XYZ".into();
    bad.nationalities.insert("QQQ".into(), 0);
    let country = forge_record(&phone.store, bad);
    let good2 = phone.store.record(submission("ML-GOG", 4)).expect("record");
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 2, "{r:?}");
    let reason = |h: Uuid| {
        let hash = phone.store.history(h).expect("history")[0].hash.clone();
        r.refused_by_peer
            .iter()
            .find(|f| hex::encode(f.hash) == hash)
            .map(|f| f.reason.clone())
            .expect("refused")
    };
    let why = reason(sums);
    assert!(
        why.contains("nationalities") && why.contains("not valid"),
        "{why}"
    );
    let why = reason(country);
    assert!(
        why.contains("departure.country") && why.contains("nationalities.QQQ"),
        "{why}"
    );
    assert!(hub.store.get(sums).is_err() && hub.store.get(country).is_err());
    assert!(hub.store.get(good1).is_ok() && hub.store.get(good2).is_ok());
    assert_eq!(hub.store.list(&Default::default()).expect("list").len(), 2);
    // Held at the hub, visibly, and never blocking what follows.
    let w = fmp_sync::waiting(&hub.store).expect("waiting");
    assert_eq!(w.held_for_scope, 2, "{w:?}");
    let good3 = phone.store.record(submission("ML-GOG", 5)).expect("record");
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert!(hub.store.get(good3).is_ok());
}

#[test]
fn valid_concurrent_edits_merging_into_an_invalid_record_are_flagged_on_both_and_a_correction_clears_it()
 {
    let phone = replica("gogui-phone");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(
            id(&phone),
            info_as(&phone, Some(&["ML-GOG"]), Role::Enumerator),
        )
        .with(id(&hub), known(&hub, None, Role::Hq, true));
    let sync = || sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    // 5 adult men, 1 boy: BFA 4, MLI 2.
    let rec = phone.store.record(submission("ML-GOG", 0)).expect("record");
    sync();
    // Each adds the man they missed, one as BFA, the other as MLI.
    phone
        .store
        .edit(
            rec,
            &serde_json::json!({"people": {"adult_male": 6}, "nationalities": {"BFA": 5}}),
        )
        .expect("valid alone");
    hub.store
        .edit(
            rec,
            &serde_json::json!({"people": {"adult_male": 6}, "nationalities": {"MLI": 3}}),
        )
        .expect("valid alone");
    let r = sync();
    assert!(r.refused_by_peer.is_empty(), "both edits were valid: {r:?}");
    assert!(r.refused_here.is_empty(), "{r:?}");
    for s in [&phone.store, &hub.store] {
        let got = s.get(rec).expect("get");
        // Nothing lost: both edits are there.
        assert_eq!(got.submission.nationalities.get("BFA"), Some(&5));
        assert_eq!(got.submission.nationalities.get("MLI"), Some(&3));
        let err = s.check_received(&got).expect_err("the merge breaks a rule");
        assert!(err.fields().contains(&"nationalities"), "{err}");
        assert_eq!(s.flagged().expect("flagged"), 1);
    }
    assert_eq!(dump(&phone.store), dump(&hub.store));
    // The supervisor corrects it: the flag clears on both.
    hub.store
        .edit(rec, &serde_json::json!({"nationalities": {"MLI": 2}}))
        .expect("correction");
    let r = sync();
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    for s in [&phone.store, &hub.store] {
        let got = s.get(rec).expect("get");
        s.check_received(&got).expect("valid again");
        assert_eq!(s.flagged().expect("flagged"), 0);
    }
    assert_eq!(dump(&phone.store), dump(&hub.store));
}

#[test]
fn a_store_of_todays_format_with_certificates_without_roles_opens_and_syncs() {
    let phone = replica("gogui-phone");
    let hub = replica("gao-hub");
    let hq = replica("hq");
    // The certificate the hub issued before roles: signed over the old
    // payload, stored in the old postcard form.
    let mut old = Certificate {
        device: id(&phone),
        public_key: phone.store.identity().public_key().to_vec(),
        fmps: Some(vec!["ML-GOG".into()]),
        issuer: id(&hub),
        sig: Vec::new(),
        role: None,
    };
    old.sig = hub.store.identity().sign(&old.payload());
    let legacy = LegacyCertificate {
        device: old.device,
        public_key: old.public_key.clone(),
        fmps: old.fmps.clone(),
        issuer: old.issuer,
        sig: old.sig.clone(),
    };
    let blob = postcard::to_stdvec(&legacy).expect("encode");
    testing::put_raw_certificate(&phone.store, id(&phone), &blob).expect("insert");
    let rec = phone.store.record(submission("ML-GOG", 1)).expect("record");
    phone
        .store
        .review(rec, ReviewStatus::Approved, "")
        .expect("no role kept in this old store");
    let phone_id = id(&phone);
    let Replica { dir, store } = phone;
    drop(store);
    let store = Store::open(dir.path()).expect("an old store opens");
    let cert = stored_certificate(&store, phone_id)
        .expect("read")
        .expect("the old certificate loads");
    assert_eq!(cert, old);
    assert_eq!(cert.role(), Role::Enumerator, "issued with FMPs: a phone");
    // HQ knows the hub only; the phone's old certificate still vouches for
    // its records, and its review is refused as an enumerator's.
    let hq_trust = StaticTrust::new(true)
        .with(
            id(&hub),
            known(&hub, Some(&["ML-GOG"]), Role::Supervisor, true),
        )
        .with(id(&hq), known(&hq, None, Role::Hq, true));
    let r = sync_in_memory(&store, &hq_trust, &hq.store, &hq_trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(r.refused_by_peer[0].reason.contains("enumerator"), "{r:?}");
    assert_eq!(hq.store.get(rec).expect("the record arrived").review, None);
    let at_hq = stored_certificate(&hq.store, phone_id)
        .expect("read")
        .expect("learned");
    assert_eq!(at_hq.role, None, "forwarded as it was signed");
}

#[test]
fn a_certificate_cannot_grant_more_than_its_issuers_role() {
    let phone = replica("phone");
    let hub = replica("hub");
    let hq = replica("hq");
    // The hub (a supervisor at HQ) certifies the phone as HQ.
    let cert = Certificate::issue(
        hub.store.identity(),
        id(&phone),
        phone.store.identity().public_key(),
        Some(vec!["ML-GOG".into()]),
        Role::Hq,
    );
    let hq_trust = StaticTrust::new(true)
        .with(
            id(&hub),
            known(&hub, Some(&["ML-GOG"]), Role::Supervisor, true),
        )
        .with(id(&hq), known(&hq, None, Role::Hq, true));
    let err = cert.verify(&hq_trust).expect_err("beyond its issuer");
    assert!(err.contains("role"), "{err}");
    // Tampering with the role breaks the signature.
    let mut forged = Certificate::issue(
        hub.store.identity(),
        id(&phone),
        phone.store.identity().public_key(),
        Some(vec!["ML-GOG".into()]),
        Role::Enumerator,
    );
    forged.role = Some(Role::Supervisor);
    let err = forged.verify(&hq_trust).expect_err("tampered");
    assert!(err.contains("bad signature"), "{err}");
    forged.role = None;
    assert!(forged.verify(&hq_trust).is_err(), "nor does dropping it");
}

/// Two supervisors of one FMP and two HQ replicas that hear them in
/// opposite orders: the trust of `known` for each, the phone an enumerator.
fn two_supervisors() -> (Replica, Replica, Replica, Replica, Replica, StaticTrust) {
    let phone = replica("gogui-phone");
    let kayes = replica("kayes-hub");
    let bamako = replica("bamako-hub");
    let hq_a = replica("hq-a");
    let hq_b = replica("hq-b");
    let mut trust = StaticTrust::new(true).with(
        id(&phone),
        info_as(&phone, Some(&["ML-GOG"]), Role::Enumerator),
    );
    for s in [&kayes, &bamako] {
        trust = trust.with(id(s), known(s, Some(&["ML-GOG"]), Role::Supervisor, true));
    }
    for h in [&hq_a, &hq_b] {
        trust = trust.with(id(h), known(h, None, Role::Hq, true));
    }
    (phone, kayes, bamako, hq_a, hq_b, trust)
}

/// A Gogui record, approved by Kayes, heard of by Bamako and both HQs.
fn approved_by_kayes() -> (Replica, Replica, Replica, Replica, StaticTrust, Uuid) {
    let (phone, kayes, bamako, hq_a, hq_b, trust) = two_supervisors();
    let rec = phone.store.record(submission("ML-GOG", 1)).expect("record");
    sync_in_memory(&phone.store, &trust, &hq_a.store, &trust, 65536).expect("sync");
    sync_in_memory(&kayes.store, &trust, &hq_a.store, &trust, 65536).expect("sync");
    kayes
        .store
        .review(rec, ReviewStatus::Approved, "ok")
        .expect("review");
    for s in [&kayes, &bamako, &hq_b] {
        sync_in_memory(&s.store, &trust, &hq_a.store, &trust, 65536).expect("sync");
    }
    (kayes, bamako, hq_a, hq_b, trust, rec)
}

#[test]
fn concurrent_reviews_by_two_supervisors_merge_to_one_whole_review_in_either_order() {
    let (kayes, bamako, hq_a, hq_b, trust, rec) = approved_by_kayes();
    // Then, offline from each other, Kayes rejects (same comment) and
    // Bamako approves: each writes only what differs from the last review
    // if reviews share one map, and the merge then shows Kayes' status
    // under Bamako's name.
    kayes
        .store
        .review(rec, ReviewStatus::Rejected, "ok")
        .expect("review");
    bamako
        .store
        .review(rec, ReviewStatus::Approved, "ok")
        .expect("review");
    for (first, second, hq) in [(&kayes, &bamako, &hq_a), (&bamako, &kayes, &hq_b)] {
        for s in [first, second] {
            let r = sync_in_memory(&s.store, &trust, &hq.store, &trust, 65536).expect("sync");
            assert!(r.refused_by_peer.is_empty(), "{r:?}");
        }
    }
    let a = hq_a.store.get(rec).expect("get").review.expect("reviewed");
    let b = hq_b.store.get(rec).expect("get").review.expect("reviewed");
    assert_eq!(
        (a.status, &a.by),
        (b.status, &b.by),
        "both HQs show one review"
    );
    let whole = [
        (ReviewStatus::Rejected, id(&kayes).to_string()),
        (ReviewStatus::Approved, id(&bamako).to_string()),
    ];
    assert!(
        whole.contains(&(a.status, a.by.clone())),
        "the status shown is its reviewer's own: {a:?}"
    );
    assert_eq!(dump(&hq_a.store), dump(&hq_b.store));
}

#[test]
fn a_change_writing_into_another_reviewer_s_review_without_its_name_is_refused_in_either_order() {
    let (kayes, bamako, hq_a, hq_b, trust, rec) = approved_by_kayes();
    // Bamako's modified app flips the status of Kayes' review, leaving
    // Kayes' name on it; Kayes meanwhile edits its own review honestly.
    forge_change(&bamako.store, rec, Op::Review, |d| {
        use automerge::{ObjType, ROOT, ReadDoc, Value, transaction::Transactable};
        let Some((Value::Object(ObjType::Map), map)) = d.get(ROOT, "review").expect("get") else {
            panic!("a review map");
        };
        d.put(&map, "status", "rejected").expect("put");
    });
    kayes
        .store
        .review(rec, ReviewStatus::HasIssues, "ok")
        .expect("review");
    for (first, second, hq) in [(&kayes, &bamako, &hq_a), (&bamako, &kayes, &hq_b)] {
        let mut refused = Vec::new();
        for s in [first, second] {
            let r = sync_in_memory(&s.store, &trust, &hq.store, &trust, 65536).expect("sync");
            refused.extend(r.refused_by_peer);
        }
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].reason.contains("without naming its signer")
                && refused[0].reason.contains(&id(&bamako).to_string()),
            "{}",
            refused[0].reason
        );
        let got = hq.store.get(rec).expect("get").review.expect("reviewed");
        assert_eq!(
            (got.status, got.by),
            (ReviewStatus::HasIssues, id(&kayes).to_string())
        );
    }
    assert_eq!(dump(&hq_a.store), dump(&hq_b.store));
}

#[test]
fn a_review_written_into_the_last_review_s_map_is_judged_as_its_author_left_it_not_by_arrival_order()
 {
    // Stores of the previous format wrote a review into the map of the one
    // before, only the fields that differ: Kayes changes the status of its
    // own review, Bamako concurrently puts its name on the same map.
    let (kayes, bamako, hq_a, hq_b, trust, rec) = approved_by_kayes();
    let into_last = |store: &Store, fields: Vec<(&'static str, String)>| {
        forge_change(store, rec, Op::Review, |d| {
            use automerge::{ObjType, ROOT, ReadDoc, Value, transaction::Transactable};
            let Some((Value::Object(ObjType::Map), map)) = d.get(ROOT, "review").expect("get")
            else {
                panic!("a review map");
            };
            for (k, v) in fields {
                d.put(&map, k, v).expect("put");
            }
        })
    };
    into_last(&kayes.store, vec![("status", "rejected".into())]);
    into_last(
        &bamako.store,
        vec![
            ("by", id(&bamako).to_string()),
            ("at", "2020-06-30T12:00:00Z".into()),
        ],
    );
    for (first, second, hq) in [(&kayes, &bamako, &hq_a), (&bamako, &kayes, &hq_b)] {
        for s in [first, second] {
            let r = sync_in_memory(&s.store, &trust, &hq.store, &trust, 65536).expect("sync");
            assert!(r.refused_by_peer.is_empty(), "{r:?}");
        }
    }
    assert_eq!(
        dump(&hq_a.store),
        dump(&hq_b.store),
        "one state in both orders"
    );
}
