//! A record at every size limit of validation (notes, place names,
//! nationalities; text that does not compress) fits the smallest sync
//! message, phone → hub → HQ, so no record can block a phone's sync.

mod common;

use common::*;
use fmp_core::Submission;
use fmp_core::validate::{MAX_NATIONALITIES, MAX_NOTES_BYTES, MAX_PLACE_BYTES};
use fmp_sync::wire::MIN_MAX_BYTES;
use fmp_sync::{Certificate, StaticTrust, sync_in_memory};

/// `n` bytes of UTF-8 that compress as badly as text can: 4-byte chars
/// from a pseudo-random spread of the supplementary planes.
fn noise(n: usize, seed: u64) -> String {
    let mut x = seed;
    let mut s = String::new();
    while s.len() + 4 <= n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cp = 0x10000 + ((x >> 33) as u32 % 0xF0000);
        if let Some(c) = char::from_u32(cp) {
            s.push(c);
        }
    }
    s
}

/// The largest record validation accepts.
fn worst() -> Submission {
    let mut s = fmp_core::example_submission();
    s.fmp = "ML-GOG".into();
    s.notes = noise(MAX_NOTES_BYTES, 1);
    s.departure.place = Some(noise(MAX_PLACE_BYTES, 2));
    s.next_destination.place = Some(noise(MAX_PLACE_BYTES, 3));
    s.final_destination.place = Some(noise(MAX_PLACE_BYTES, 4));
    let total: u32 = s.nationalities.values().sum();
    s.nationalities.clear();
    // The longest-looking codes last, every count but one zero.
    for (i, c) in fmp_core::reference::countries()
        .iter()
        .rev()
        .take(MAX_NATIONALITIES)
        .enumerate()
    {
        s.nationalities
            .insert(c.alpha3.to_string(), if i == 0 { total } else { 0 });
    }
    s.vulnerable.unaccompanied_children = Some(0);
    s
}

#[test]
fn a_record_at_every_limit_fits_the_smallest_message_across_two_hops() {
    let phone = replica("gogui-phone");
    let hub = replica("sikasso-hub");
    let hq = replica("hq");
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
    let hq_trust = StaticTrust::new(true)
        .with(id(&hub), info(&hub, None))
        .with(id(&hq), info(&hq, None));
    let phone_trust = StaticTrust::new(true)
        .with(id(&hub), info(&hub, None))
        .with(id(&phone), info(&phone, Some(&["ML-GOG"])));
    let sub = worst();
    assert_eq!(sub.notes.len(), MAX_NOTES_BYTES);
    phone
        .store
        .record(sub)
        .expect("the worst case is a valid record");
    let max = MIN_MAX_BYTES;
    let a = sync_in_memory(&phone.store, &phone_trust, &hub.store, &hub_trust, max)
        .expect("phone → hub at the smallest message");
    assert_eq!((a.pushed, a.round_trips), (1, 1), "{a:?}");
    let b = sync_in_memory(&hub.store, &hub_trust, &hq.store, &hq_trust, max)
        .expect("hub → HQ at the smallest message");
    assert_eq!((b.pushed, b.round_trips), (1, 1), "{b:?}");
    assert_eq!(dump(&hq.store), dump(&phone.store));
}
