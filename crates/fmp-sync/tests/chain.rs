//! Certificates verified through a chain of issuers (a phone of a hub
//! below a regional hub, a phone of a sibling region's hub), and the
//! chains a hostile device crafts to get past it: an enumerator's phone
//! issuing certificates, a hub granting FMPs beyond its own, a revoked
//! issuer, a chain deeper than the bound.

mod common;

use common::*;
use fmp_sync::trust::store_certificate;
use fmp_sync::{Certificate, Role, StaticTrust, sync_in_memory};

fn gog() -> Option<Vec<String>> {
    Some(vec!["ML-GOG".to_string()])
}

/// `issuer` certifies `r` for `fmps` with `role`; `r` keeps it.
fn certify(issuer: &Replica, r: &Replica, fmps: Option<Vec<String>>, role: Role) -> Certificate {
    let c = Certificate::issue(
        issuer.store.identity(),
        id(r),
        r.store.identity().public_key(),
        fmps,
        role,
    );
    store_certificate(&r.store, &c).expect("keep cert");
    c
}

/// HQ's trust: the regional hub `kayes` (Gogui, may enroll) only.
fn hq_trust(kayes: &Replica, hq: &Replica) -> StaticTrust {
    StaticTrust::new(true)
        .with(
            id(kayes),
            fmp_sync::AuthorInfo {
                may_enroll: true,
                ..info_as(kayes, Some(&["ML-GOG"]), Role::Supervisor)
            },
        )
        .with(id(hq), info(hq, None))
}

/// Pushes `from`'s store to HQ, judged by `trust` (the sender trusts all).
fn to_hq(from: &Replica, hq: &Replica, trust: &StaticTrust) -> fmp_sync::Report {
    let mut open = StaticTrust::new(false);
    for r in [from, hq] {
        open.insert(id(r), info(r, None));
    }
    sync_in_memory(&from.store, &open, &hq.store, trust, 65536).expect("sync")
}

#[test]
fn a_phone_two_hubs_below_hq_is_verified_through_the_hub_chain() {
    let (kayes, nioro, phone, hq) = (
        replica("kayes"),
        replica("nioro"),
        replica("phone"),
        replica("hq"),
    );
    // Kayes enrolled Nioro as a hub for Gogui, Nioro enrolled the phone;
    // HQ knows only Kayes. The phone's store carries both certificates (as
    // a hub forwarding it would).
    let n = certify(&kayes, &nioro, gog(), Role::Supervisor);
    certify(&nioro, &phone, gog(), Role::Enumerator);
    store_certificate(&phone.store, &n).expect("keep the issuer's cert");
    for k in 0..3 {
        phone.store.record(submission("ML-GOG", k)).expect("record");
    }
    let r = to_hq(&phone, &hq, &hq_trust(&kayes, &hq));
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert_eq!(r.pushed, 3);
}

#[test]
fn certificates_issued_by_an_enumerator_s_phone_are_refused() {
    let (kayes, phone, fake, hq) = (
        replica("kayes"),
        replica("phone"),
        replica("fake"),
        replica("hq"),
    );
    // A modified app on Kayes' phone certifies a device of its own as a
    // supervisor for Gogui, and sends that device's records with the chain.
    let p = certify(&kayes, &phone, gog(), Role::Enumerator);
    certify(&phone, &fake, gog(), Role::Supervisor);
    store_certificate(&fake.store, &p).expect("keep the issuer's cert");
    fake.store.record(submission("ML-GOG", 1)).expect("record");
    let r = to_hq(&fake, &hq, &hq_trust(&kayes, &hq));
    assert_eq!(r.pushed, 0, "{r:?}");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    let why = &r.refused_by_peer[0].reason;
    assert!(why.contains(&id(&fake).to_string()), "{why}");
    assert!(hq.store.list(&Default::default()).expect("list").is_empty());
}

#[test]
fn a_hub_granting_fmps_beyond_its_own_makes_a_chain_that_is_refused() {
    let (kayes, nioro, phone, hq) = (
        replica("kayes"),
        replica("nioro"),
        replica("phone"),
        replica("hq"),
    );
    // Kayes holds Gogui; it certifies Nioro for Heremakono too.
    let n = certify(
        &kayes,
        &nioro,
        Some(vec!["ML-GOG".into(), "ML-HER".into()]),
        Role::Supervisor,
    );
    certify(
        &nioro,
        &phone,
        Some(vec!["ML-HER".into()]),
        Role::Enumerator,
    );
    store_certificate(&phone.store, &n).expect("keep the issuer's cert");
    phone.store.record(submission("ML-HER", 1)).expect("record");
    let r = to_hq(&phone, &hq, &hq_trust(&kayes, &hq));
    assert_eq!(r.pushed, 0, "{r:?}");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
    assert!(hq.store.list(&Default::default()).expect("list").is_empty());
}

#[test]
fn a_revoked_hub_is_no_issuer_whatever_certificate_comes_for_it() {
    let (kayes, nioro, phone, hq) = (
        replica("kayes"),
        replica("nioro"),
        replica("phone"),
        replica("hq"),
    );
    let n = certify(&kayes, &nioro, gog(), Role::Supervisor);
    certify(&nioro, &phone, gog(), Role::Enumerator);
    store_certificate(&phone.store, &n).expect("keep the issuer's cert");
    phone.store.record(submission("ML-GOG", 1)).expect("record");
    let mut trust = hq_trust(&kayes, &hq);
    trust.refuse(id(&nioro), "it was revoked on this hub");
    let r = to_hq(&phone, &hq, &trust);
    assert_eq!(r.pushed, 0, "{r:?}");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
}

#[test]
fn a_chain_deeper_than_the_bound_is_refused_and_one_within_it_taken() {
    // kayes → h1 → h2 → h3 → phone: three issuers above the one HQ knows
    // are verified; a fourth is not.
    let kayes = replica("kayes");
    let hq = replica("hq");
    let hubs: Vec<Replica> = (0..4).map(|i| replica(&format!("h{i}"))).collect();
    let mut chain = Vec::new();
    let mut issuer = &kayes;
    for h in &hubs {
        chain.push(certify(issuer, h, gog(), Role::Supervisor));
        issuer = h;
    }
    let send = |depth: usize| {
        let phone = replica("phone");
        certify(&hubs[depth - 1], &phone, gog(), Role::Enumerator);
        for c in &chain[..depth] {
            store_certificate(&phone.store, c).expect("keep cert");
        }
        phone.store.record(submission("ML-GOG", 1)).expect("record");
        to_hq(&phone, &hq, &hq_trust(&kayes, &hq))
    };
    let r = send(3);
    assert_eq!(r.pushed, 1, "{r:?}");
    let r = send(4);
    assert_eq!(r.pushed, 0, "{r:?}");
    assert_eq!(r.refused_by_peer.len(), 1, "{r:?}");
}
