//! Each refusal: a clear error, and the receiver's store unchanged.

mod common;

use common::*;
use fmp_core::store::testing;
use fmp_sync::bundle::Bundle;
use fmp_sync::wire::{HashRef, Request};
use fmp_sync::{Client, StaticTrust, SyncError, Trust, respond, sync_in_memory};

/// A phone's first request to the hub, with `n` submissions at `fmp`.
fn request(phone: &Replica, hub: &Replica, trust: &dyn Trust, fmp: &str, n: u32) -> Vec<u8> {
    for i in 0..n {
        phone.store.record(submission(fmp, i)).expect("record");
    }
    Client::new(&phone.store, trust, id(hub))
        .next_request()
        .expect("request")
        .expect("some")
}

/// Sends `bytes` to the hub; asserts a whole-message refusal that left it unchanged.
fn refused(hub: &Replica, trust: &dyn Trust, bytes: &[u8]) -> SyncError {
    let before = raw(&hub.store);
    let err = respond(&hub.store, trust, bytes).expect_err("refused");
    assert!(err.is_refusal(), "{err:?}");
    assert_eq!(raw(&hub.store), before, "the store changed after: {err}");
    err
}

fn setup() -> (Replica, Replica, StaticTrust) {
    let phone = replica("phone");
    let hub = replica("hub");
    // The hub already holds data, so "unchanged" means something.
    hub.store.record(submission("ML-GOG", 77)).expect("record");
    let trust = trust_all(&[&phone, &hub]);
    (phone, hub, trust)
}

#[test]
fn tampered_change() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-HER", 3);
    let mut req = Request::decode(&bytes).expect("decode");
    // Change one byte of an op column (the last bytes of the chunk).
    let c = &mut req.push.changes[1].bytes;
    let at = c.len() - 3;
    c[at] ^= 0x01;
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(
        matches!(
            err,
            SyncError::BadChange { .. } | SyncError::BadSignature { .. }
        ),
        "{err}"
    );
}

#[test]
fn change_swapped_for_another_by_the_same_author() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-HER", 2);
    let mut req = Request::decode(&bytes).expect("decode");
    // A valid change of the same author, not the one the bundle signed.
    let id2 = phone
        .store
        .record(submission("ML-HER", 50))
        .expect("record");
    let extra = testing::changes(&phone.store)
        .expect("changes")
        .into_iter()
        .find(|c| c.doc_id == id2.to_string())
        .expect("bytes")
        .bytes;
    req.push.changes[0].bytes = extra;
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(matches!(err, SyncError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("bad signature"));
}

#[test]
fn forged_author_signature_claimed_for_another_device() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-HER", 2);
    let mut req = Request::decode(&bytes).expect("decode");
    // The bundle now claims to be the hub's own, with the phone's signature.
    req.push.bundles[0].author = id(&hub);
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(matches!(err, SyncError::BadSignature { .. }), "{err}");
}

#[test]
fn forged_author_changes_signed_by_another_device() {
    let (phone, hub, trust) = setup();
    let mallory = replica("mallory");
    let trust = {
        let mut t = trust;
        t.insert(id(&mallory), info(&mallory, None));
        t
    };
    let bytes = request(&phone, &hub, &trust, "ML-HER", 2);
    let mut req = Request::decode(&bytes).expect("decode");
    // Mallory re-signs the phone's changes as her own bundle.
    let hashes: Vec<[u8; 32]> = req
        .push
        .changes
        .iter()
        .map(|c| {
            automerge::Change::try_from(c.bytes.as_slice())
                .expect("change")
                .hash()
                .0
        })
        .collect();
    let b = Bundle::sign(mallory.store.identity(), hashes);
    req.push.bundles = vec![fmp_sync::wire::WireBundle {
        author: b.author,
        hashes: (0..b.hashes.len() as u32).map(HashRef::Here).collect(),
        sig: b.sig,
    }];
    req.push.certs.clear();
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(matches!(err, SyncError::ForgedAuthor { .. }), "{err}");
}

#[test]
fn unknown_author_where_known_ones_are_required() {
    // Its changes are refused alone, each with the reason; nothing of them
    // is stored (the message itself is not refused any more).
    let (phone, hub, _) = setup();
    let trust = StaticTrust::new(true).with(id(&hub), info(&hub, None));
    let bytes = request(&phone, &hub, &trust, "ML-HER", 2);
    let before = dump(&hub.store);
    let resp = fmp_sync::Response::decode(&respond(&hub.store, &trust, &bytes).expect("answered"))
        .expect("response");
    assert_eq!(resp.refused.len(), 2, "{:?}", resp.refused);
    for r in &resp.refused {
        assert!(fmp_sync::may_pass_later(&r.reason), "{}", r.reason);
        assert!(r.reason.contains(&id(&phone).to_string()), "{}", r.reason);
    }
    assert_eq!(resp.accepted, 0);
    assert_eq!(dump(&hub.store), before);
}

/// A relay holding the changes of two phones, one of them unknown to HQ:
/// the known phone's changes are applied at HQ, the unknown one's refused
/// alone with the reason; once HQ learns its key, they pass when offered again.
#[test]
fn an_unknown_authors_bundle_is_refused_alone_and_the_others_applied() {
    let known = replica("known-phone");
    let stranger = replica("stranger-phone");
    let relay = replica("relay");
    let hq = replica("hq");
    let relay_trust = trust_all(&[&known, &stranger, &relay, &hq]);
    for n in 0..3 {
        known.store.record(submission("ML-HER", n)).expect("record");
    }
    let held = stranger
        .store
        .record(submission("ML-GOG", 40))
        .expect("record");
    stranger
        .store
        .edit(held, &serde_json::json!({"notes": "edited"}))
        .expect("edit");
    for p in [&known, &stranger] {
        sync_in_memory(&p.store, &relay_trust, &relay.store, &relay_trust, 65536).expect("sync");
    }
    let hq_trust = StaticTrust::new(true)
        .with(id(&known), info(&known, None))
        .with(id(&relay), info(&relay, None));
    let r = sync_in_memory(&relay.store, &relay_trust, &hq.store, &hq_trust, 65536)
        .expect("the message is not refused whole");
    assert_eq!(r.refused_by_peer.len(), 2, "{r:?}");
    assert!(
        r.refused_by_peer
            .iter()
            .all(|x| fmp_sync::may_pass_later(&x.reason)
                && x.reason.contains(&id(&stranger).to_string())),
        "{r:?}"
    );
    assert_eq!(hq.store.list(&Default::default()).expect("list").len(), 3);
    assert!(hq.store.get(held).is_err());
    // The relay reviews the held record: its change, by an author HQ
    // knows, depends on the held ones; it is refused alone too and blocks
    // nothing (a new record of the known phone still passes).
    relay
        .store
        .review(held, fmp_core::model::ReviewStatus::Approved, "ok")
        .expect("review");
    known.store.record(submission("ML-HER", 7)).expect("record");
    sync_in_memory(
        &known.store,
        &relay_trust,
        &relay.store,
        &relay_trust,
        65536,
    )
    .expect("sync");
    let r2 = sync_in_memory(&relay.store, &relay_trust, &hq.store, &hq_trust, 65536)
        .expect("the message is not refused whole");
    assert_eq!(r2.refused_by_peer.len(), 1, "{r2:?}");
    assert!(
        fmp_sync::may_pass_later(&r2.refused_by_peer[0].reason),
        "{r2:?}"
    );
    assert_eq!(hq.store.list(&Default::default()).expect("list").len(), 4);
    // HQ learns the stranger's key: the held changes, offered again, pass.
    let hq_trust = hq_trust.with(id(&stranger), info(&stranger, None));
    let again: Vec<_> = r
        .refused_by_peer
        .iter()
        .chain(&r2.refused_by_peer)
        .map(|x| x.hash)
        .collect();
    let r = Client::new(&relay.store, &relay_trust, id(&hq))
        .with_resend(again)
        .run(|req| respond(&hq.store, &hq_trust, &req))
        .expect("sync");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    let arrived = hq.store.get(held).expect("arrived");
    assert_eq!(arrived.submission.notes, "edited");
    assert_eq!(
        arrived.review.map(|x| x.status),
        Some(fmp_core::model::ReviewStatus::Approved)
    );
    assert_eq!(hq.store.list(&Default::default()).expect("list").len(), 5);
}

/// A revoked device stays refused even when a certificate from a trusted
/// issuer comes with its bundles.
#[test]
fn a_refused_device_is_not_brought_back_by_a_certificate() {
    let (phone, hub, trust) = setup();
    let mut t = trust.clone();
    t.refuse(id(&phone), "revoked here");
    let bytes = request(&phone, &hub, &trust, "ML-HER", 1);
    let resp = fmp_sync::Response::decode(&respond(&hub.store, &t, &bytes).expect("answered"))
        .expect("response");
    assert_eq!(resp.refused.len(), 1);
    assert!(
        resp.refused[0].reason.contains("revoked here"),
        "{:?}",
        resp.refused
    );
}

#[test]
fn unsigned_change() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-HER", 2);
    let mut req = Request::decode(&bytes).expect("decode");
    req.push.bundles.clear();
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(err.to_string().contains("no signed bundle"), "{err}");
}

#[test]
fn garbage_bytes() {
    let (_, hub, trust) = setup();
    let mut junk = vec![fmp_sync::PROTOCOL_VERSION, b'Q'];
    junk.extend((0..500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    let err = refused(&hub, &trust, &junk);
    assert!(matches!(err, SyncError::Corrupt(_)), "{err}");
    let text = b"GET / HTTP/1.1\r\n\r\n";
    let err = refused(&hub, &trust, text);
    assert!(matches!(err, SyncError::UnknownVersion { .. }), "{err}");
    // A valid zstd frame of junk postcard.
    let mut msg = vec![fmp_sync::PROTOCOL_VERSION, b'Q'];
    msg.extend(zstd::bulk::compress(&[0xff; 64], 3).expect("zstd"));
    let err = refused(&hub, &trust, &msg);
    assert!(matches!(err, SyncError::Garbage { .. }), "{err}");
    assert!(matches!(refused(&hub, &trust, &[]), SyncError::Corrupt(_)));
}

#[test]
fn truncated_message() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-HER", 20);
    for cut in [1, 2, 10, bytes.len() / 2, bytes.len() - 1] {
        let err = refused(&hub, &trust, &bytes[..cut]);
        assert!(err.to_string().contains("truncated"), "cut at {cut}: {err}");
    }
}

#[test]
fn unknown_protocol_version() {
    let (phone, hub, trust) = setup();
    let mut bytes = request(&phone, &hub, &trust, "ML-HER", 1);
    bytes[0] = 2;
    let err = refused(&hub, &trust, &bytes);
    assert!(
        matches!(
            err,
            SyncError::UnknownVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn a_write_outside_the_authors_fmps_is_refused_alone_and_the_rest_applied() {
    let phone = replica("heremakono-phone");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(id(&phone), info(&phone, Some(&["ML-HER"])))
        .with(id(&hub), info(&hub, None));
    for n in 0..3 {
        phone.store.record(submission("ML-HER", n)).expect("record");
    }
    let outside = phone.store.record(submission("ML-GOG", 9)).expect("record");
    phone
        .store
        .record(submission("ML-HER", 10))
        .expect("record");
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(
        r.refused_by_peer[0].reason.contains("ML-GOG"),
        "{:?}",
        r.refused_by_peer
    );
    assert_eq!(r.pushed, 4);
    assert!(
        hub.store.get(outside).is_err(),
        "the refused record is not stored"
    );
    assert_eq!(hub.store.list(&Default::default()).expect("list").len(), 4);
    // Later uploads are not blocked by the refused one.
    phone
        .store
        .record(submission("ML-HER", 11))
        .expect("record");
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert_eq!((r.pushed, r.refused_by_peer.len()), (1, 0), "{r:?}");
    // Moving an ML-HER submission to ML-GOG is refused too.
    let moved = hub.store.list(&Default::default()).expect("list")[0]
        .submission
        .id
        .expect("id");
    phone
        .store
        .edit(moved, &serde_json::json!({"fmp": "ML-GOG"}))
        .expect("edit");
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert_eq!(hub.store.get(moved).expect("get").submission.fmp, "ML-HER");
}

#[test]
fn a_refused_record_edited_into_scope_applies_with_its_edit_and_no_one_hijacks_another_s() {
    let phone = replica("heremakono-phone");
    let other = replica("gogui-phone");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(id(&phone), info(&phone, Some(&["ML-HER"])))
        .with(id(&other), info(&other, Some(&["ML-GOG"])))
        .with(id(&hub), info(&hub, None));
    let sync =
        |a: &Replica| sync_in_memory(&a.store, &trust, &hub.store, &trust, 65536).expect("sync");
    let outside = phone.store.record(submission("ML-GOG", 1)).expect("record");
    let r = sync(&phone);
    assert_eq!((r.pushed, r.refused_by_peer.len()), (0, 1), "{r:?}");
    assert!(hub.store.get(outside).is_err());
    let w = fmp_sync::waiting(&hub.store).expect("waiting");
    assert_eq!((w.total, w.held_for_scope), (1, 1), "{w:?}");
    // Another edit still out of scope: held too, refused again.
    phone
        .store
        .edit(outside, &serde_json::json!({"notes": "still Gogui"}))
        .expect("edit");
    let r = sync(&phone);
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(hub.store.get(outside).is_err());
    // Edited into the phone's FMP: the whole chain applies.
    phone
        .store
        .edit(outside, &serde_json::json!({"fmp": "ML-HER"}))
        .expect("edit");
    let r = sync(&phone);
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    let got = hub.store.get(outside).expect("get");
    assert_eq!(
        (got.submission.fmp.as_str(), got.submission.notes.as_str()),
        ("ML-HER", "still Gogui")
    );
    assert_eq!(fmp_sync::waiting(&hub.store).expect("waiting").total, 0);

    // Another device's record held here: the phone may not take it over,
    // neither by moving it to its FMP nor by editing it in place.
    let theirs = other.store.record(submission("ML-GOG", 2)).expect("record");
    sync(&other);
    sync(&phone); // the phone receives it (an unrestricted pull)
    assert!(phone.store.get(theirs).is_ok());
    phone
        .store
        .edit(theirs, &serde_json::json!({"fmp": "ML-HER"}))
        .expect("edit");
    let r = sync(&phone);
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(r.refused_by_peer[0].reason.contains("ML-GOG"), "{r:?}");
    phone
        .store
        .edit(theirs, &serde_json::json!({"notes": "mine now"}))
        .expect("edit");
    let r = sync(&phone);
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert_eq!(hub.store.get(theirs).expect("get").submission.fmp, "ML-GOG");
    // The owner's own edits still apply around the held ones.
    other
        .store
        .edit(theirs, &serde_json::json!({"transport": "truck"}))
        .expect("edit");
    let r = sync(&other);
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    let got = hub.store.get(theirs).expect("get");
    assert_eq!(got.submission.fmp, "ML-GOG");
    assert_ne!(got.submission.notes, "mine now");
    let w = fmp_sync::waiting(&hub.store).expect("waiting");
    assert_eq!(
        (w.total, w.held_for_scope, w.behind_waiting),
        (2, 1, 1),
        "{w:?}"
    );
}

#[test]
fn a_released_change_the_receiver_lost_is_sent_again() {
    let phone = replica("heremakono-phone");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(id(&phone), info(&phone, Some(&["ML-HER"])))
        .with(id(&hub), info(&hub, None));
    let outside = phone.store.record(submission("ML-GOG", 1)).expect("record");
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    let held = r.refused_by_peer[0].hash;
    // The hub lost what it held (an older hub that dropped refused changes).
    testing::forget_pending(&hub.store).expect("delete");
    phone
        .store
        .edit(outside, &serde_json::json!({"fmp": "ML-HER"}))
        .expect("edit");
    let r = Client::new(&phone.store, &trust, id(&hub))
        .with_resend(vec![held])
        .run(|req| respond(&hub.store, &trust, &req))
        .expect("sync");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert_eq!(r.pushed, 2, "{r:?}");
    assert_eq!(
        hub.store.get(outside).expect("get").submission.fmp,
        "ML-HER"
    );
}

fn with_kayes() -> fmp_core::Registry {
    let mut reg = fmp_core::Registry::mali_default();
    let mut kay = reg.fmps[0].clone();
    kay.code = "ML-KAY".into();
    kay.name = "Kayes".into();
    reg.fmps.push(kay);
    reg
}

#[test]
fn registry_changes_only_from_unrestricted_authors() {
    let hq = replica("hq");
    let hub = replica("hub");
    let phone = replica("phone");
    let other = replica("other-phone");
    let trust = StaticTrust::new(true)
        .with(id(&hq), info(&hq, None))
        .with(id(&hub), info(&hub, None))
        .with(id(&phone), info(&phone, Some(&["ML-HER"])))
        .with(id(&other), info(&other, Some(&["ML-GOG"])))
        .with_authority(id(&hq), hq.store.identity().public_key());
    // A phone's registry change (its store is not enrolled, so it could
    // write one locally) is refused by the hub, and by another phone.
    assert!(phone.store.set_registry(&with_kayes()).expect("set"));
    for receiver in [&hub, &other] {
        let r = sync_in_memory(&phone.store, &trust, &receiver.store, &trust, 65536).expect("sync");
        assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
        assert!(
            r.refused_by_peer[0]
                .reason
                .contains("may not write registry"),
            "{r:?}"
        );
        assert!(receiver.store.registry().get("ML-KAY").is_none());
    }
    // HQ's reaches the hub, then the phone, and is in force at once.
    assert!(hq.store.set_registry(&with_kayes()).expect("set"));
    let r = sync_in_memory(&hq.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert!(hub.store.registry().get("ML-KAY").is_some());
    let r = sync_in_memory(&other.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert!(r.refused_here.is_empty(), "{r:?}");
    assert!(other.store.registry().get("ML-KAY").is_some());
    other
        .store
        .record(submission("ML-KAY", 1))
        .expect("Kayes is known now");
    // Reopened, the store reads it from its documents.
    let reopened = fmp_core::store::Store::open(other.dir.path()).expect("open");
    assert_eq!(reopened.registry().fmps.len(), 10);
}

#[test]
fn registry_changes_only_from_hqs_key_not_from_an_unrestricted_hub() {
    let hq = replica("hq");
    let hub = replica("hub");
    let phone = replica("phone");
    // The hub is known with no FMP restriction and may enroll: a position
    // in the chain, not HQ's key.
    let trust = StaticTrust::new(true)
        .with(id(&hq), info(&hq, None))
        .with(id(&hub), info(&hub, None))
        .with(id(&phone), info(&phone, Some(&["ML-GOG"])))
        .with_authority(id(&hq), hq.store.identity().public_key());
    assert!(hub.store.set_registry(&with_kayes()).expect("set"));
    let r = sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_here.len(), 1, "{r:?}");
    assert!(
        r.refused_here[0].reason.contains(&format!(
            "may not write registry documents (only HQ, device {}",
            id(&hq)
        )),
        "{r:?}"
    );
    assert!(phone.store.registry().get("ML-KAY").is_none());
    // A trust naming HQ with another key refuses HQ's own change too.
    let forged = StaticTrust::new(true)
        .with(id(&hq), info(&hq, None))
        .with_authority(id(&hq), hub.store.identity().public_key());
    assert!(hq.store.set_registry(&with_kayes()).expect("set"));
    let other = replica("other");
    let r = sync_in_memory(&other.store, &forged, &hq.store, &trust, 65536).expect("sync");
    assert_eq!(r.refused_here.len(), 1, "{r:?}");
    assert!(other.store.registry().get("ML-KAY").is_none());
    // With HQ's real key it applies.
    let r = sync_in_memory(&phone.store, &trust, &hq.store, &trust, 65536).expect("sync");
    assert!(r.refused_here.is_empty(), "{r:?}");
    assert!(phone.store.registry().get("ML-KAY").is_some());
}

#[test]
fn a_record_moved_by_its_supervisor_arrives_whole_but_a_phone_cannot_move_its_own() {
    let phone = replica("heremakono-phone");
    let hub = replica("hub");
    let trust = StaticTrust::new(true)
        .with(id(&phone), info(&phone, Some(&["ML-HER"])))
        .with(id(&hub), info(&hub, None));
    // The phone (its local guard lifted) records at Heremakono and moves the
    // record to Gogui itself: a fresh receiver gets both in one message and
    // holds the record back, judged on the change that moved it.
    let own = phone.store.record(submission("ML-HER", 1)).expect("record");
    phone
        .store
        .edit(own, &serde_json::json!({"fmp": "ML-GOG"}))
        .expect("edit");
    let fresh = replica("fresh-hub");
    let r = sync_in_memory(&phone.store, &trust, &fresh.store, &trust, 65536).expect("sync");
    assert!(!r.refused_by_peer.is_empty(), "{r:?}");
    assert!(
        r.refused_by_peer
            .iter()
            .all(|x| x.reason.contains("may not write submissions of ML-GOG")),
        "{r:?}"
    );
    assert!(fresh.store.get(own).is_err(), "not stored");
    // A record the supervisor moved (the phone's record, its edit, the
    // supervisor's move) reaches a replica that never saw it, whole.
    let moved = phone.store.record(submission("ML-HER", 2)).expect("record");
    phone
        .store
        .edit(moved, &serde_json::json!({"notes": "two buses"}))
        .expect("edit");
    sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("sync");
    hub.store
        .edit(moved, &serde_json::json!({"fmp": "ML-GOG"}))
        .expect("edit");
    let other = replica("hq");
    let r = sync_in_memory(&other.store, &trust, &hub.store, &trust, 65536).expect("sync");
    assert!(r.refused_here.is_empty(), "{r:?}");
    let got = other.store.get(moved).expect("arrived");
    assert_eq!(got.submission.fmp, "ML-GOG");
    assert_eq!(got.submission.notes, "two buses");
}

/// The encoder names a change listed by two bundles by hash in the second
/// (a restored phone seals old changes again); a crafted message in which
/// two bundles both claim one change is still refused whole.
#[test]
fn a_change_claimed_by_two_bundles_is_refused_whole() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-HER", 2);
    let mut req = Request::decode(&bytes).expect("decode");
    assert_eq!(req.push.bundles.len(), 1, "one bundle of the phone");
    let mut second = req.push.bundles[0].clone();
    second.hashes.truncate(1);
    assert!(matches!(second.hashes[0], HashRef::Here(_)));
    req.push.bundles.push(second);
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(err.to_string().contains("claimed twice"), "{err}");
}

/// What a responder writes beside the sync (`respond_decoded`'s `also`: a
/// hub's nonce and last sync) is in the sync's own transaction: when it
/// fails (a replayed request whose nonce another process took first),
/// nothing of the request is stored, and the same request served again
/// later applies whole.
#[test]
fn a_failing_write_beside_the_sync_stores_nothing_of_the_request() {
    let (phone, hub, trust) = setup();
    let bytes = request(&phone, &hub, &trust, "ML-GOG", 3);
    let before = raw(&hub.store);
    let req = Request::decode(&bytes).expect("decode");
    let also = |_: &fmp_core::store::Writer<'_>| -> Result<(), fmp_core::store::StoreError> {
        Err(fmp_core::store::StoreError::NotAllowed(
            "already served".into(),
        ))
    };
    let opts = fmp_sync::RespondOptions::default();
    let err = fmp_sync::respond_decoded(&hub.store, &trust, req.clone(), &opts, &also)
        .expect_err("the write beside failed");
    assert!(err.to_string().contains("already served"), "{err}");
    assert_eq!(raw(&hub.store), before, "nothing of the request was stored");
    let (_, outcome) =
        fmp_sync::respond_decoded(&hub.store, &trust, req, &opts, &|_| Ok(())).expect("served");
    assert_eq!(outcome.stored, 3, "{outcome:?}");
}

/// Changes the hub already holds are skipped before they are parsed; a
/// message of them is still judged whole: sent again under a forged
/// signature, with one new change beside them, it is refused as a whole
/// (the new change is not stored because the rest was known).
#[test]
fn known_changes_under_a_forged_signature_refuse_the_message() {
    let (phone, hub, trust) = setup();
    for i in 0..3 {
        phone.store.record(submission("ML-HER", i)).expect("record");
    }
    sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("first sync");
    phone.store.record(submission("ML-HER", 3)).expect("record");
    // Lost cursor on both sides: the phone pushes its whole log again.
    fmp_sync::forget_peer(&phone.store, id(&hub)).expect("forget");
    fmp_sync::forget_peer(&hub.store, id(&phone)).expect("forget");
    let bytes = Client::new(&phone.store, &trust, id(&hub))
        .next_request()
        .expect("request")
        .expect("some");
    let mut req = Request::decode(&bytes).expect("decode");
    assert_eq!(req.push.changes.len(), 4, "three known, one new");
    for b in &mut req.push.bundles {
        b.sig[0] ^= 0x01;
    }
    let err = refused(&hub, &trust, &req.encode().expect("encode"));
    assert!(matches!(err, SyncError::BadSignature { .. }), "{err}");
}

/// A change sent again is counted as already there, not stored twice, and
/// a message of only known changes changes none of the hub's data (its
/// cursor for the phone moves, as with any request).
#[test]
fn known_changes_sent_again_are_counted_and_store_nothing() {
    let (phone, hub, trust) = setup();
    for i in 0..5 {
        phone.store.record(submission("ML-HER", i)).expect("record");
    }
    sync_in_memory(&phone.store, &trust, &hub.store, &trust, 65536).expect("first sync");
    fmp_sync::forget_peer(&phone.store, id(&hub)).expect("forget");
    fmp_sync::forget_peer(&hub.store, id(&phone)).expect("forget");
    let (before, logged) = (
        dump(&hub.store),
        testing::changes(&hub.store).expect("log").len(),
    );
    let bytes = Client::new(&phone.store, &trust, id(&hub))
        .next_request()
        .expect("request")
        .expect("some");
    let (_, outcome) = fmp_sync::respond_counted(
        &hub.store,
        &trust,
        &bytes,
        &fmp_sync::RespondOptions::default(),
    )
    .expect("respond");
    assert_eq!(
        (outcome.pushed, outcome.stored, outcome.duplicates),
        (5, 0, 5),
        "{outcome:?}"
    );
    assert!(dump(&hub.store) == before, "the hub's data changed");
    assert_eq!(testing::changes(&hub.store).expect("log").len(), logged);
}
