//! Two- and three-replica syncs: convergence, merges, cuts, relays, reconciliation.

mod common;

use common::*;
use fmp_core::model::ReviewStatus;
use fmp_sync::{Certificate, Client, StaticTrust, respond, sync_in_memory};

#[test]
fn two_stores_converge_and_a_noop_is_one_small_round_trip() {
    let a = replica("phone");
    let b = replica("hub");
    let trust = trust_all(&[&a, &b]);
    for n in 0..30 {
        a.store.record(submission("ML-HER", n)).expect("record a");
    }
    for n in 100..110 {
        b.store.record(submission("ML-GOG", n)).expect("record b");
    }
    let r = sync_in_memory(&a.store, &trust, &b.store, &trust, 2048).expect("sync");
    assert!(
        r.round_trips > 1,
        "a 2 KiB limit takes several messages: {r:?}"
    );
    assert_eq!(r.pushed, 30);
    assert_eq!(r.pulled, 10);
    assert_eq!(dump(&a.store), dump(&b.store));
    let noop = sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("noop");
    assert_eq!(noop.round_trips, 1);
    assert!(noop.bytes_sent + noop.bytes_received < 1024, "{noop:?}");
    assert_eq!((noop.pushed, noop.pulled), (0, 0));
}

#[test]
fn concurrent_edits_and_reviews_merge_with_a_visible_conflict() {
    let a = replica("phone");
    let b = replica("hub");
    let trust = trust_all(&[&a, &b]);
    let id = a.store.record(submission("ML-HER", 1)).expect("record");
    sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("sync");
    a.store
        .edit(
            id,
            &serde_json::json!({"notes": "bus from Bobo", "transport": "truck"}),
        )
        .expect("edit a");
    b.store
        .edit(id, &serde_json::json!({"notes": "corrected by supervisor", "departure": {"place": "Ouaga"}}))
        .expect("edit b");
    b.store
        .review(id, ReviewStatus::HasIssues, "check notes")
        .expect("review");
    sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("sync");
    assert_eq!(dump(&a.store), dump(&b.store));
    let s = a.store.get(id).expect("get");
    assert_eq!(s.submission.transport.as_str(), "truck");
    assert_eq!(s.submission.departure.place.as_deref(), Some("Ouaga"));
    assert!(
        s.conflicts.iter().any(|c| c.field == "notes"),
        "{:?}",
        s.conflicts
    );
    assert_eq!(s.review.map(|r| r.status), Some(ReviewStatus::HasIssues));
}

#[test]
fn a_cut_sync_resumes_without_resending() {
    let a = replica("phone");
    let b = replica("hub");
    let trust = trust_all(&[&a, &b]);
    for n in 0..150 {
        a.store.record(submission("ML-MNK", n)).expect("record");
    }
    // First attempt: two messages get through, the third response is lost.
    let mut c = Client::new(&a.store, &trust, id(&b)).with_max_bytes(2048);
    for _ in 0..2 {
        let req = c.next_request().expect("req").expect("some");
        let resp = respond(&b.store, &trust, &req).expect("respond");
        c.handle_response(&resp).expect("handle");
    }
    let req = c.next_request().expect("req").expect("some");
    let _lost = respond(&b.store, &trust, &req).expect("respond");
    assert_eq!(
        c.report().round_trips,
        2,
        "a request whose answer never came is not a round trip"
    );
    drop(c);
    let first = testing::count_rows(&b.store, "changes").expect("count");
    assert!(first > 0 && first < 150, "{first}");
    let r = sync_in_memory(&a.store, &trust, &b.store, &trust, 2048).expect("resume");
    assert!(
        r.pushed < 150,
        "acknowledged changes are not sent again: {r:?}"
    );
    assert_eq!(dump(&a.store), dump(&b.store));
}

#[test]
fn hq_verifies_a_phone_it_never_met_through_the_hub_certificate() {
    let phone = replica("gogui-phone");
    let hub = replica("sikasso-hub");
    let hq = replica("hq");
    // The hub enrolls the phone for ML-GOG; the phone keeps its certificate.
    let cert = Certificate::issue(
        hub.store.identity(),
        id(&phone),
        phone.store.identity().public_key(),
        Some(vec!["ML-GOG".into()]),
        fmp_sync::Role::Enumerator,
    );
    fmp_sync::trust::store_certificate(&phone.store, &cert).expect("keep cert");
    let hub_trust = StaticTrust::new(true)
        .with(id(&phone), info(&phone, Some(&["ML-GOG"])))
        .with(id(&hub), info(&hub, None))
        .with(id(&hq), info(&hq, None));
    // HQ knows the hub only.
    let hq_trust = StaticTrust::new(true)
        .with(id(&hub), info(&hub, None))
        .with(id(&hq), info(&hq, None));
    let phone_trust = StaticTrust::new(true)
        .with(id(&hub), info(&hub, None))
        .with(id(&phone), info(&phone, Some(&["ML-GOG"])));
    for n in 0..5 {
        phone.store.record(submission("ML-GOG", n)).expect("record");
    }
    sync_in_memory(&phone.store, &phone_trust, &hub.store, &hub_trust, 65536).expect("phone→hub");
    let r = sync_in_memory(&hub.store, &hub_trust, &hq.store, &hq_trust, 65536).expect("hub→hq");
    assert_eq!(r.pushed, 5);
    assert_eq!(dump(&hq.store), dump(&phone.store));
    // Without the certificate, HQ refuses the phone's bundles (alone,
    // change by change: the message itself is answered).
    let hq2 = replica("hq2");
    let bare = StaticTrust::new(true).with(id(&hq2), info(&hq2, None));
    let r = sync_in_memory(&hub.store, &hub_trust, &hq2.store, &bare, 65536).expect("answered");
    assert_eq!((r.pushed, r.refused_by_peer.len()), (0, 5), "{r:?}");
    assert!(
        r.refused_by_peer
            .iter()
            .all(|x| x.reason.contains("not known")),
        "{r:?}"
    );
    assert!(
        hq2.store
            .list(&Default::default())
            .expect("list")
            .is_empty()
    );
}

#[test]
fn open_trust_accepts_self_signed_devices_phone_to_phone() {
    let a = replica("phone-a");
    let b = replica("phone-b");
    let open = StaticTrust::new(false);
    a.store.record(submission("ML-HER", 3)).expect("record");
    b.store.record(submission("ML-HER", 4)).expect("record");
    sync_in_memory(&a.store, &open, &b.store, &open, 65536).expect("sync");
    assert_eq!(dump(&a.store), dump(&b.store));
}

#[test]
fn three_hops_and_back_without_echo() {
    let a = replica("phone");
    let b = replica("hub");
    let c = replica("hq");
    let trust = trust_all(&[&a, &b, &c]);
    for n in 0..10 {
        a.store.record(submission("ML-HER", n)).expect("record");
    }
    sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("a-b");
    sync_in_memory(&b.store, &trust, &c.store, &trust, 65536).expect("b-c");
    let back = sync_in_memory(&b.store, &trust, &c.store, &trust, 65536).expect("noop");
    assert_eq!((back.pushed, back.pulled, back.round_trips), (0, 0, 1));
    let r = sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("a-b again");
    assert_eq!(r.pulled, 0, "nothing echoed back");
    assert!(r.bytes_received < 200, "{r:?}");
    assert_eq!(dump(&a.store), dump(&c.store));
}

#[test]
fn reconciliation_without_a_cursor_sends_only_the_difference() {
    let a = replica("hub-a");
    let b = replica("hub-b");
    let trust = trust_all(&[&a, &b]);
    for n in 0..300 {
        a.store.record(submission("ML-HER", n)).expect("record");
    }
    sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("sync");
    for n in 300..310 {
        a.store.record(submission("ML-HER", n)).expect("record");
    }
    b.store.record(submission("ML-GOG", 999)).expect("record b");
    fmp_sync::forget_peer(&a.store, id(&b)).expect("forget");
    fmp_sync::forget_peer(&b.store, id(&a)).expect("forget");
    let r = Client::new(&a.store, &trust, id(&b))
        .reconcile()
        .expect("reconcile")
        .run(|req| respond(&b.store, &trust, &req))
        .expect("run");
    assert_eq!(r.pushed, 10, "{r:?}");
    assert_eq!(r.pulled, 1);
    assert_eq!(dump(&a.store), dump(&b.store));
    let noop = sync_in_memory(&a.store, &trust, &b.store, &trust, 65536).expect("noop");
    assert_eq!((noop.pushed, noop.pulled, noop.round_trips), (0, 0, 1));
}

#[test]
fn counters_in_a_document_add_up_across_replicas() {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc, ScalarValue};
    let mut a = AutoCommit::new();
    a.put(ROOT, "arrivals", ScalarValue::counter(0))
        .expect("put");
    let mut b = a.fork();
    a.increment(ROOT, "arrivals", 3).expect("inc");
    b.increment(ROOT, "arrivals", 4).expect("inc");
    a.merge(&mut b).expect("merge");
    b.merge(&mut a).expect("merge");
    for d in [&a, &b] {
        let v = d.get(ROOT, "arrivals").expect("get").expect("some").0;
        assert_eq!(v.as_i64(), Some(7));
    }
}

#[test]
fn a_limit_below_one_change_sends_one_change_a_message_both_ways_and_can_change_between_requests() {
    let a = replica("phone");
    let b = replica("hub");
    let trust = trust_all(&[&a, &b]);
    for n in 0..6 {
        a.store.record(submission("ML-MNK", n)).expect("record");
        b.store
            .record(submission("ML-MNK", 100 + n))
            .expect("record");
    }
    let floor = fmp_sync::wire::FLOOR_MAX_BYTES;
    let mut c = Client::new(&a.store, &trust, id(&b)).with_max_bytes(1);
    assert_eq!(c.max_bytes(), floor, "no limit below the floor");
    let mut trips = 0;
    while let Some(req) = c.next_request().expect("req") {
        let resp = respond(&b.store, &trust, &req).expect("respond");
        // Each way: within the floor, or one change alone (within MIN_MAX_BYTES).
        let q = fmp_sync::Request::decode(&req).expect("decode");
        let r = fmp_sync::Response::decode(&resp).expect("decode");
        eprintln!(
            "request {} B, {} change(s); answer {} B, {} change(s)",
            req.len(),
            q.push.changes.len(),
            resp.len(),
            r.pull.changes.len()
        );
        if trips < 4 {
            assert!(req.len() <= floor as usize || q.push.changes.len() == 1);
            assert!(resp.len() <= floor as usize || r.pull.changes.len() == 1);
        }
        assert!(req.len() <= 64 * 1024 && resp.len() <= 64 * 1024);
        c.handle_response(&resp).expect("handle");
        trips += 1;
        // Grown back between requests: the rest goes in larger messages.
        if trips == 4 {
            c.set_max_bytes(64 * 1024);
        }
        assert!(trips < 20, "no progress");
    }
    assert!(trips >= 5, "{trips}");
    assert_eq!(dump(&a.store), dump(&b.store));
}

/// Four replicas edit the same records at once and push them to one hub
/// from four threads, round after round: whatever the interleaving of the
/// hub's plans (on snapshots) and commits, it ends holding what a replica
/// that took every push one after the other holds.
#[test]
fn concurrent_pushes_editing_the_same_records_end_as_a_serial_apply() {
    let hub = replica("hub");
    let serial = replica("serial");
    let phones: Vec<Replica> = (0..4).map(|i| replica(&format!("phone{i}"))).collect();
    let mut all: Vec<&Replica> = phones.iter().collect();
    all.extend([&hub, &serial]);
    let trust = trust_all(&all);
    let ids: Vec<_> = (0..6)
        .map(|n| {
            phones[0]
                .store
                .record(submission("ML-GOG", n))
                .expect("record")
        })
        .collect();
    for p in &phones[1..] {
        sync_in_memory(&phones[0].store, &trust, &p.store, &trust, 65536).expect("share");
    }
    for round in 0..4 {
        for (i, p) in phones.iter().enumerate() {
            for id in &ids {
                p.store
                    .edit(
                        *id,
                        &serde_json::json!({"notes": format!("round {round} by {i}")}),
                    )
                    .expect("edit");
            }
        }
        std::thread::scope(|s| {
            for p in &phones {
                let (hub, trust) = (&hub.store, &trust);
                s.spawn(move || {
                    sync_in_memory(&p.store, trust, hub, trust, 4096).expect("push");
                });
            }
        });
    }
    for p in &phones {
        sync_in_memory(&p.store, &trust, &serial.store, &trust, 65536).expect("serial");
    }
    for p in &phones {
        sync_in_memory(&p.store, &trust, &hub.store, &trust, 65536).expect("settle");
    }
    assert_eq!(dump(&hub.store), dump(&serial.store));
}

/// Two supervisors review one record concurrently, one approving and one
/// rejecting: every replica shows the same review and lists the other as
/// a conflict (the record is flagged), until a later review settles it.
#[test]
fn concurrent_reviews_keep_the_losing_one_visible_until_a_review_settles_it() {
    let hub = replica("hub");
    let sup1 = replica("sup1");
    let sup2 = replica("sup2");
    let trust = trust_all(&[&hub, &sup1, &sup2]);
    let id = hub.store.record(submission("ML-HER", 3)).expect("record");
    for s in [&sup1, &sup2] {
        sync_in_memory(&s.store, &trust, &hub.store, &trust, 65536).expect("share");
    }
    sup1.store
        .review(id, ReviewStatus::Approved, "ok")
        .expect("approve");
    sup2.store
        .review(id, ReviewStatus::Rejected, "duplicate group")
        .expect("reject");
    for s in [&sup1, &sup2, &sup1] {
        sync_in_memory(&s.store, &trust, &hub.store, &trust, 65536).expect("sync");
    }
    for r in [&hub, &sup1, &sup2] {
        let s = r.store.get(id).expect("get");
        let c = s
            .conflicts
            .iter()
            .find(|c| c.field == "review")
            .unwrap_or_else(|| {
                panic!(
                    "{}: the other review is listed: {s:?}",
                    r.store.identity().name
                )
            });
        assert_eq!(c.others.len(), 1, "{c:?}");
        assert_eq!(r.store.flagged().expect("flagged"), 1);
    }
    assert_eq!(dump(&hub.store), dump(&sup1.store));
    hub.store
        .review(id, ReviewStatus::Approved, "checked both")
        .expect("settle");
    for s in [&sup1, &sup2] {
        sync_in_memory(&s.store, &trust, &hub.store, &trust, 65536).expect("sync");
        let got = s.store.get(id).expect("get");
        assert!(got.conflicts.is_empty(), "{:?}", got.conflicts);
        assert_eq!(got.review.expect("review").comment, "checked both");
    }
}
