//! The suite every store backend runs: the store's promises written against
//! its public API only (no SQL), instantiated once per backend by
//! `backend_suite!` with the backend's way to create and reopen a store.
//! SQLite (the embedded default) is instantiated here; a new backend adds
//! one `backend_suite!` line (see `crates/fmp-core/src/store/ops.rs`).

use std::path::Path;

use fmp_core::store::{Store, StoreError};

/// How a suite creates a fresh store and opens it again.
#[derive(Clone, Copy)]
pub struct Backend {
    /// Creates a fresh store in a directory.
    pub init: fn(&Path, &str) -> Result<Store, StoreError>,
    /// Opens the store of a directory again.
    pub open: fn(&Path) -> Result<Store, StoreError>,
}

/// The cases, each a function of the backend.
mod cases {
    use std::sync::mpsc;
    use std::time::Duration;

    use chrono::Utc;
    use fmp_core::form::example_submission;
    use fmp_core::model::ReviewStatus;
    use fmp_core::store::{Filter, Store, StoreError};

    use super::Backend;

    fn everything(store: &Store) -> String {
        let list = store
            .list(&Filter {
                include_deleted: true,
                ..Filter::default()
            })
            .expect("list");
        let mut s = serde_json::to_string(&list).expect("json");
        for item in &list {
            let id = item.submission.id.expect("id");
            s.push_str(&serde_json::to_string(&store.get(id).expect("get")).expect("json"));
            s.push_str(&serde_json::to_string(&store.history(id).expect("history")).expect("json"));
        }
        s
    }

    /// A store reopened keeps its identity, records, edits and reviews.
    pub fn reopened_store_keeps_everything(b: Backend) {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let (device, before) = {
            let store = (b.init)(&dir, "menaka-1").expect("init");
            let id = store.record(example_submission()).expect("record");
            store
                .edit(id, &serde_json::json!({"notes": "two children"}))
                .expect("edit");
            store
                .review(id, ReviewStatus::HasIssues, "check the count")
                .expect("review");
            let other = store.record(example_submission()).expect("record");
            store.delete(other).expect("delete");
            (store.identity().device_id, everything(&store))
        };
        let store = (b.open)(&dir).expect("open");
        assert_eq!(store.identity().device_id, device);
        assert_eq!(everything(&store), before);
        let h = store
            .list(&Filter::default())
            .expect("list")
            .into_iter()
            .map(|s| {
                store
                    .history(s.submission.id.expect("id"))
                    .expect("history")
            })
            .next()
            .expect("one live record");
        let ops: Vec<&str> = h.iter().map(|e| e.op.as_str()).collect();
        assert_eq!(ops, ["record", "edit", "review"]);
        assert!(h.windows(2).all(|w| w[0].seq < w[1].seq), "{h:?}");
    }

    /// Bad input is refused with its reason, and nothing stored changes.
    pub fn refusals_change_nothing(b: Backend) {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = (b.init)(&tmp.path().join("s"), "x").expect("init");
        let id = store.record(example_submission()).expect("record");
        let before = everything(&store);
        let err = store
            .edit(id, &serde_json::json!({"people": {"adult_male": 1}}))
            .expect_err("invalid edit");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let mut dup = example_submission();
        dup.id = Some(id);
        let err = store.record(dup).expect_err("duplicate");
        assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
        let mut bad = example_submission();
        bad.people.adult_male = 0;
        let err = store
            .record_many(vec![example_submission(), bad], Utc::now())
            .expect_err("batch");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let err = store.get(uuid::Uuid::now_v7()).expect_err("unknown id");
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        assert_eq!(everything(&store), before);
    }

    /// A read does not wait for a write in progress: `list`, `get` and
    /// `history` answer while another thread holds the write transaction
    /// open, and see the state before it.
    pub fn reads_do_not_wait_for_the_writer(b: Backend) {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = (b.init)(&tmp.path().join("s"), "x").expect("init");
        let id = store.record(example_submission()).expect("record");
        let (held_tx, held_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        std::thread::scope(|sc| {
            let store = &store;
            let writer = sc.spawn(move || {
                store.transaction(|_w| -> Result<(), StoreError> {
                    held_tx.send(()).expect("held");
                    // Holds the writer until the reader is done (or 60 s).
                    let _ = release_rx.recv_timeout(Duration::from_secs(60));
                    Ok(())
                })
            });
            held_rx.recv().expect("the writer holds the transaction");
            let (got, read) = mpsc::channel();
            sc.spawn(move || {
                let listed = store.list(&Filter::default()).map(|l| l.len());
                let history = store.history(id).map(|h| h.len());
                got.send((listed, history)).expect("send");
            });
            let answer = read.recv_timeout(Duration::from_secs(30));
            release_tx.send(()).expect("release");
            writer.join().expect("writer").expect("write");
            let (listed, history) = answer.expect("the read answered while the write was held");
            assert_eq!(listed.expect("list"), 1);
            assert_eq!(history.expect("history"), 1);
        });
    }
}

/// Instantiates every case of the suite for one backend, as a module of tests.
#[macro_export]
macro_rules! backend_suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::cases;

            #[test]
            fn reopened_store_keeps_everything() {
                cases::reopened_store_keeps_everything($backend);
            }

            #[test]
            fn refusals_change_nothing() {
                cases::refusals_change_nothing($backend);
            }

            #[test]
            fn reads_do_not_wait_for_the_writer() {
                cases::reads_do_not_wait_for_the_writer($backend);
            }
        }
    };
}

backend_suite!(
    sqlite,
    super::Backend {
        init: fmp_core::store::Store::init,
        open: fmp_core::store::Store::open,
    }
);
