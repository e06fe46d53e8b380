//! `sync` falls back to set reconciliation by itself: a phone that lost
//! its progress record with its hub (a peer table lost, a copy put back
//! without it) but holds what the hub sent it costs the difference, not a
//! re-push of its whole log, over a real hub on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use fmp_core::store::Store;
use fmp_core::store::ops::RestoreReads;
use fmp_hub::Limits;
use fmp_hub::client::{self, SyncOptions};

fn record(store: &Store, n: u32) {
    let mut s = fmp_core::example_submission();
    s.fmp = "ML-GOG".into();
    s.observed_at += chrono::Duration::minutes(i64::from(n));
    s.notes = format!("group {n}");
    store.record(s).unwrap();
}

#[test]
fn a_phone_that_lost_its_cursor_reconciles_and_sends_only_the_difference() {
    let common::Joined {
        tmp: _tmp,
        phone,
        hub,
        hub_dir,
    } = common::joined(Limits::default());
    let hub_id = {
        let h = Store::open(&hub_dir).unwrap();
        for n in 0..200 {
            record(&h, n);
        }
        h.identity().device_id
    };
    for n in 1000..1010 {
        record(&phone, n);
    }
    let opts = || SyncOptions {
        url: Some(hub.url()),
        ..SyncOptions::default()
    };
    let first = client::sync(&phone, opts()).unwrap();
    assert_eq!((first.sent, first.received), (10, 200), "{first:?}");
    fmp_sync::forget_peer(&phone, hub_id).unwrap();
    let again = client::sync(&phone, opts()).unwrap();
    assert_eq!((again.sent, again.received), (0, 0), "{again:?}");
    let (bytes, first_bytes) = (
        again.bytes_sent + again.bytes_received,
        first.bytes_sent + first.bytes_received,
    );
    assert!(
        bytes * 5 < first_bytes,
        "reconciled: {bytes} bytes against {first_bytes} for the first sync"
    );
    let h = Store::open(&hub_dir).unwrap();
    assert!(
        h.snapshot(|r| r.restore_state())
            .unwrap()
            .detected_at
            .is_none(),
        "the hub did not take the phone's cursor claim for its own restore"
    );
    assert_eq!(phone.list(&Default::default()).unwrap().len(), 210);
    let noop = client::sync(&phone, opts()).unwrap();
    assert_eq!(noop.round_trips, 1, "back on the cursor: {noop:?}");
}
