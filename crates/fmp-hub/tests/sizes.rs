//! Long records recorded in one batch go through the smallest message:
//! their bundles are sealed small enough that each change fits with its
//! bundle in 2048 bytes. And a size learnt on a small link never strands a
//! change that needs a bigger message (bundles sealed by an older build,
//! 32 hashes whatever their changes' size): a sync held to 2048 bytes says
//! so, and the next sync raises its message size to hold them.

#![allow(clippy::unwrap_used)]

mod common;

use fmp_core::store::Store;
use fmp_core::store::ops::LogWrites;
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::{HubError, Limits};

/// A hub, and a phone joined to it holding 40 long records recorded in
/// one batch (not yet sealed).
fn phone_with_a_batch() -> (
    tempfile::TempDir,
    Store,
    std::path::PathBuf,
    fmp_hub::HubHandle,
) {
    let common::Joined {
        tmp,
        hub_dir,
        phone,
        hub,
    } = common::joined(Limits::default());
    // Notes that do not compress: 300 hex digits of a simple generator.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let subs: Vec<_> = (0..40)
        .map(|n| {
            let mut s = fmp_core::example_submission();
            s.fmp = "ML-GOG".into();
            s.observed_at += chrono::Duration::minutes(n);
            s.notes = (0..300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from_digit((x % 16) as u32, 16).unwrap()
                })
                .collect();
            s
        })
        .collect();
    phone.record_many(subs, chrono::Utc::now()).unwrap();
    (tmp, phone, hub_dir, hub)
}

fn held_to_smallest() -> SyncOptions {
    SyncOptions {
        max_bytes: fmp_sync::wire::MIN_MAX_BYTES,
        retries: 0,
        ..SyncOptions::default()
    }
}

fn held_at_hub(hub_dir: &std::path::Path) -> usize {
    Store::open(hub_dir)
        .unwrap()
        .list(&fmp_core::store::Filter::default())
        .unwrap()
        .len()
}

#[test]
fn a_batch_of_long_records_goes_through_the_smallest_message() {
    let (_tmp, phone, hub_dir, _hub) = phone_with_a_batch();
    let summary = client::sync(&phone, held_to_smallest()).unwrap();
    assert_eq!(summary.sent, 40, "{summary:?}");
    assert_eq!(held_at_hub(&hub_dir), 40);
}

#[test]
fn a_small_learnt_size_is_raised_to_hold_a_change_and_its_bundle() {
    let (_tmp, phone, hub_dir, _hub) = phone_with_a_batch();
    // Sealed as an older build did: 32 hashes a bundle, whatever the size.
    phone
        .transaction(|w| {
            w.seal(32, usize::MAX, |h| {
                fmp_sync::bundle::Bundle::sign(phone.identity(), h).to_stored()
            })
        })
        .unwrap();
    match client::sync(&phone, held_to_smallest()) {
        Err(HubError::Sync(e)) => {
            assert!(matches!(*e, fmp_sync::SyncError::TooLarge { .. }), "{e}")
        }
        other => panic!("a sync held to 2048 bytes cannot carry them: {other:?}"),
    }
    let before = held_at_hub(&hub_dir);
    let summary = client::sync(&phone, SyncOptions::default()).unwrap();
    assert_eq!(summary.sent + before as u64, 40, "{summary:?}");
    assert_eq!(held_at_hub(&hub_dir), 40);
    assert!(
        summary.max_bytes > fmp_sync::wire::MIN_MAX_BYTES,
        "the size was raised: {summary:?}"
    );
}
