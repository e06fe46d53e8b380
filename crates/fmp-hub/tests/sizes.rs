//! A size learnt on a small link never strands a change that needs a
//! bigger message: 40 records recorded in one batch are sealed in bundles
//! whose hash lists, with one long record, take more than 2048 bytes. A
//! sync held to 2048 bytes says so; the next sync raises its message size
//! to hold them and delivers every record.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fmp_core::store::Store;
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::{HubError, Limits, ServeOptions, enroll, serve_with};

#[test]
fn a_small_learnt_size_is_raised_to_hold_a_change_and_its_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let hub = serve_with(ServeOptions {
        store: hub_dir.clone(),
        listen: "127.0.0.1:0".into(),
        tls: None,
        limits: Limits::default(),
    })
    .unwrap();
    let code = {
        let h = Store::open(&hub_dir).unwrap();
        enroll::create_code(&h, &["ML-GOG".into()], Duration::from_secs(60), false).unwrap()
    };
    client::join(&phone, &hub.url(), &code).unwrap();
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
    let small = client::sync(
        &phone,
        SyncOptions {
            max_bytes: fmp_sync::wire::MIN_MAX_BYTES,
            retries: 0,
            ..SyncOptions::default()
        },
    );
    match small {
        Err(HubError::Sync(e)) => {
            assert!(matches!(*e, fmp_sync::SyncError::TooLarge { .. }), "{e}")
        }
        other => panic!("a sync held to 2048 bytes cannot carry them: {other:?}"),
    }
    let hub_store = Store::open(&hub_dir).unwrap();
    let before = hub_store
        .list(&fmp_core::store::Filter::default())
        .unwrap()
        .len();
    let summary = client::sync(&phone, SyncOptions::default()).unwrap();
    assert_eq!(summary.sent + before as u64, 40, "{summary:?}");
    assert_eq!(
        hub_store
            .list(&fmp_core::store::Filter::default())
            .unwrap()
            .len(),
        40
    );
    assert!(
        summary.max_bytes > fmp_sync::wire::MIN_MAX_BYTES,
        "the size was raised: {summary:?}"
    );
}
