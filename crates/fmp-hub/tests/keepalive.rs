//! A hub closes a keep-alive connection left idle past its header timeout.
//! A phone that waits between two requests of one sync (a busy hub's
//! Retry-After, a backoff, a slow app callback) must not pay a retry for
//! the connection its pool kept: connections idle for `POOL_IDLE` are not
//! reused, well before a hub's header timeout closes them.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fmp_hub::Limits;
use fmp_hub::client::{self, Event, SyncOptions};

#[test]
fn a_connection_the_hub_closed_while_idle_costs_no_retry() {
    let common::Joined { phone, hub, .. } = common::joined(Limits {
        // Above the client's pool idle time, below the app's wait.
        header_timeout: client::POOL_IDLE + Duration::from_secs(1),
        ..Limits::default()
    });
    for n in 0..40 {
        let mut s = fmp_core::example_submission();
        s.fmp = "ML-GOG".into();
        s.notes = format!(
            "record {n}: {:x}",
            (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        phone.record(s).unwrap();
    }
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = errors.clone();
    let waited = AtomicBool::new(false);
    let summary = client::sync(
        &phone,
        SyncOptions {
            url: Some(hub.url()),
            fixed_size: true,
            max_bytes: fmp_sync::wire::MIN_MAX_BYTES,
            progress: Some(Box::new(move |p| match &p.event {
                // The app dawdles between round trips, past the hub's
                // header timeout: the pooled connection is closed meanwhile.
                Event::RoundTrip if !waited.swap(true, Ordering::SeqCst) => {
                    std::thread::sleep(client::POOL_IDLE + Duration::from_secs(2))
                }
                Event::RoundTrip => {}
                Event::Retry { error, .. } => seen.lock().unwrap().push(error.clone()),
                Event::Quarantined(_) => {}
            })),
            ..SyncOptions::default()
        },
    )
    .unwrap();
    assert!(
        summary.round_trips >= 2,
        "a wait between round trips: {summary:?}"
    );
    assert_eq!(summary.sent, 40, "{summary:?}");
    assert_eq!(errors.lock().unwrap().as_slice(), &[] as &[String]);
}
