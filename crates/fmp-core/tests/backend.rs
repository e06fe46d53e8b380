//! The suite every store backend runs: the store's promises written against
//! its public API only (no SQL), instantiated once per backend by
//! `backend_suite!` with the backend's way to create and reopen a store.
//! SQLite (the embedded default) is instantiated here; a new backend adds
//! one `backend_suite!` line (see `crates/fmp-core/src/store/ops.rs`).

mod common;

pub use fmp_core::store::testing::Backend;

/// The cases, each a function of the backend.
mod cases {
    use std::sync::mpsc;
    use std::time::Duration;

    use chrono::Utc;
    use fmp_core::form::example_submission;
    use fmp_core::model::ReviewStatus;
    use fmp_core::store::ops::{AuthorityReads, LogReads};
    use fmp_core::store::{Filter, StoreError};

    use super::Backend;
    use crate::common::contents;

    /// A document of one change is kept once, as that change in the log
    /// (read back as its bytes); once edited, as the merged document;
    /// reopened, the same.
    pub fn a_one_change_document_is_its_change_until_edited(b: Backend) {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let store = (b.init)(&dir, "gogui-1").expect("init");
        let id = store.record(example_submission()).expect("record");
        let key = id.to_string();
        let read = |s: &fmp_core::store::Store| {
            s.snapshot(|r| {
                let doc = r.document(&key)?.expect("stored").1;
                Ok::<_, StoreError>((doc, r.doc_changes(&key)?))
            })
            .expect("read")
        };
        let row = |s: &fmp_core::store::Store| {
            fmp_core::store::testing::table_rows(s, "documents")
                .expect("rows")
                .into_iter()
                .find(|r| r.contains(&key))
                .expect("the document's row")
        };
        let (doc, changes) = read(&store);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            doc, changes[0].bytes,
            "one change: the document is its bytes"
        );
        assert!(row(&store).ends_with("Blob([])"), "kept once, in the log");
        store
            .edit(id, &serde_json::json!({"notes": "counted twice"}))
            .expect("edit");
        let (doc, changes) = read(&store);
        assert_eq!(changes.len(), 2);
        assert!(doc != changes[0].bytes && doc != changes[1].bytes, "merged");
        assert!(
            !row(&store).ends_with("Blob([])"),
            "the merged document stored"
        );
        let before = store.get(id).expect("get");
        drop(store);
        let store = (b.open)(&dir).expect("reopen");
        assert_eq!(store.get(id).expect("get"), before);
        assert_eq!(before.submission.notes, "counted twice");
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
            (store.identity().device_id, contents(&store))
        };
        let store = (b.open)(&dir).expect("open");
        assert_eq!(store.identity().device_id, device);
        assert_eq!(contents(&store), before);
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
        let before = contents(&store);
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
        assert_eq!(contents(&store), before);
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
    /// The cursor contract (`store/ops.rs`): while several writers (each its
    /// own handle on the store, as processes are) commit concurrently, a
    /// reader pulling "everything after my position" in a loop sees every
    /// change exactly once, in increasing positions, and none is skipped.
    pub fn an_incremental_reader_sees_every_change_once_under_concurrent_writers(b: Backend) {
        const WRITERS: usize = 4;
        const EACH: usize = 25;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let reader = (b.init)(&dir, "hq").expect("init");
        let nobody = uuid::Uuid::nil();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0i64;
        let pull = |cursor: &mut i64, seen: &mut std::collections::HashSet<[u8; 32]>| {
            let (rows, _) = reader
                .snapshot(|r| r.changes_after(*cursor, nobody, 1 << 20, None))
                .expect("changes after");
            for row in rows {
                assert!(
                    row.seq > *cursor,
                    "position {} at or below {cursor}",
                    row.seq
                );
                assert!(seen.insert(row.hash), "change at {} seen twice", row.seq);
                *cursor = row.seq;
            }
        };
        std::thread::scope(|sc| {
            for w in 0..WRITERS {
                let (dir, done) = (&dir, &done);
                sc.spawn(move || {
                    let store = (b.open)(dir).expect("a writer's own handle");
                    for i in 0..EACH {
                        let mut s = example_submission();
                        s.notes = format!("writer {w} record {i}");
                        store.record(s).expect("record");
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            while done.load(std::sync::atomic::Ordering::SeqCst) < WRITERS {
                pull(&mut cursor, &mut seen);
            }
        });
        pull(&mut cursor, &mut seen);
        assert_eq!(seen.len(), WRITERS * EACH, "every change seen once");
        let end = reader.snapshot(|r| r.log_end()).expect("log end");
        assert_eq!(cursor, end, "the reader ends at the log's end");
    }

    /// Own changes read as unsealed until sealed into bundles (a request
    /// built on a snapshot cannot carry them; the sync seals them first).
    pub fn own_changes_are_unsealed_until_sealed(b: Backend) {
        use fmp_core::store::ops::LogWrites;
        let tmp = tempfile::tempdir().expect("tmp");
        let s = (b.init)(&tmp.path().join("s"), "s").expect("init");
        assert!(!s.snapshot(|r| r.unsealed()).expect("read"), "empty store");
        s.record(example_submission()).expect("record");
        assert!(s.snapshot(|r| r.unsealed()).expect("read"));
        let me = s.identity().device_id;
        let mut n = 0u8;
        let sealed = s
            .transaction(|w| {
                w.seal(32, 1280, |hashes| {
                    n += 1;
                    fmp_core::store::log::StoredBundle {
                        id: [n; 32],
                        author: me,
                        hashes,
                        sig: vec![0; 64],
                    }
                })
            })
            .expect("seal");
        assert!(sealed > 0);
        assert!(!s.snapshot(|r| r.unsealed()).expect("read"), "all sealed");
    }

    /// One snapshot is one state: what another handle commits between two
    /// reads of the same snapshot is not seen by the second, and is seen by
    /// the next snapshot.
    pub fn a_snapshot_is_one_state(b: Backend) {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let reader = (b.init)(&dir, "hq").expect("init");
        reader.record(example_submission()).expect("record");
        let writer = (b.open)(&dir).expect("a second handle");
        let (first, second) = reader
            .snapshot(|r| -> Result<_, StoreError> {
                let first = r.log_end()?;
                writer
                    .record(example_submission())
                    .expect("record meanwhile");
                Ok((first, r.log_end()?))
            })
            .expect("snapshot");
        assert_eq!(first, second, "one snapshot");
        let next = reader.snapshot(|r| r.log_end()).expect("next snapshot");
        assert!(next > first, "the next snapshot sees the commit");
    }
    /// A document's stamp moves with every write of that document (a change
    /// logged, one held or released) and with no other; the reference's
    /// with the registry and forms only: what an apply planned on a
    /// snapshot checks before it commits.
    pub fn stamps_move_with_their_document_and_only_with_it(b: Backend) {
        use fmp_core::store::log::PendingChange;
        use fmp_core::store::ops::LogWrites;
        let tmp = tempfile::tempdir().expect("tmp");
        let store = (b.init)(&tmp.path().join("s"), "x").expect("init");
        let one = store
            .record(example_submission())
            .expect("record")
            .to_string();
        let two = store.record(example_submission()).expect("record");
        let stamps = |s: &fmp_core::store::Store| {
            s.snapshot(|r| {
                Ok::<_, StoreError>((
                    r.document_stamp(&one)?,
                    r.document_stamp(&two.to_string())?,
                    r.reference_stamp()?,
                ))
            })
            .expect("stamps")
        };
        let (a0, b0, ref0) = stamps(&store);
        assert!(a0.last_seq.is_some() && a0.pending.is_empty(), "{a0:?}");
        store
            .edit(two, &serde_json::json!({"notes": "edited"}))
            .expect("edit");
        let (a1, b1, ref1) = stamps(&store);
        assert_eq!(a1, a0, "another record's edit leaves it");
        assert!(b1.last_seq > b0.last_seq, "{b0:?} {b1:?}");
        assert_eq!(ref1, ref0);
        let held = PendingChange {
            hash: [7; 32],
            doc_id: one.clone(),
            kind: "submission".into(),
            author: store.identity().device_id,
            bundle: [8; 32],
            origin: None,
            bytes: vec![1, 2, 3],
        };
        store.transaction(|w| w.hold(&held)).expect("hold");
        let (a2, b2, _) = stamps(&store);
        assert_eq!(a2.pending, vec![[7; 32]]);
        assert_eq!(a2.last_seq, a0.last_seq);
        assert_eq!(b2, b1);
        store.transaction(|w| w.release(&[7; 32])).expect("release");
        assert_eq!(stamps(&store).0, a0);
        let mut registry = (*store.registry()).clone();
        registry.fmps[0].name.push_str(" (renamed)");
        assert!(store.set_registry(&registry).expect("registry"));
        let (a3, _, ref3) = stamps(&store);
        assert_eq!(a3, a0);
        assert!(ref3 > ref0, "{ref0:?} {ref3:?}");
    }
}

/// The settings, received documents and the rows the store's whole
/// operations read (`SettingsReads`/`SettingsWrites`, `RoleWrites`,
/// `LogWrites::save_document`/`insert_document`, `RecordReads`, `PeerReads`).
mod record_cases {
    #![allow(clippy::unwrap_used)]
    use fmp_core::form::example_submission;
    use fmp_core::model::{ReviewStatus, StoredSubmission};
    use fmp_core::role::Role;
    use fmp_core::store::log::{Hash, NewChange};
    use fmp_core::store::ops::*;
    use fmp_core::store::{Store, StoreError};
    use uuid::Uuid;

    use super::Backend;
    use crate::common::contents;

    /// A record made on another store, as it arrives: its document's bytes,
    /// its one change (hash, bytes, time) and its state.
    struct Received {
        id: Uuid,
        author: Uuid,
        data: Vec<u8>,
        hash: Hash,
        bytes: Vec<u8>,
        time: i64,
        state: StoredSubmission,
    }

    fn recorded_elsewhere(b: Backend, dir: &std::path::Path, name: &str) -> Received {
        let other = (b.init)(dir, name).unwrap();
        let id = other.record(example_submission()).unwrap();
        let (kind, data) = other
            .snapshot(|r| r.document(&id.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(kind, "submission");
        let mut changes = other.snapshot(|r| r.doc_changes(&id.to_string())).unwrap();
        assert_eq!(changes.len(), 1);
        let c = changes.remove(0);
        Received {
            id,
            author: other.identity().device_id,
            data,
            hash: c.hash,
            bytes: c.bytes,
            time: other.history(id).unwrap()[0].time.timestamp_millis(),
            state: other.get(id).unwrap(),
        }
    }

    impl Received {
        fn change(&self) -> NewChange<'_> {
            NewChange {
                hash: self.hash,
                author: self.author,
                time: self.time,
                op: "record",
                bytes: &self.bytes,
                origin: Some(self.author),
                bundle: None,
            }
        }
    }

    /// The enrolled FMPs, the role and keyed settings read back as last
    /// set (and cleared), across a reopen, and the whole operations obey them.
    pub fn settings_and_role_read_back_as_set_and_cleared(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let peer = Uuid::now_v7();
        {
            let s = (b.init)(&dir, "s").unwrap();
            assert_eq!(s.enrolled_fmps().unwrap(), None);
            assert_eq!(s.role().unwrap(), None);
            let gog = vec!["ML-GOG".to_string()];
            s.set_enrolled_fmps(Some(&gog)).unwrap();
            assert_eq!(s.enrolled_fmps().unwrap(), Some(gog.clone()));
            let err = s.record(example_submission()).unwrap_err();
            assert!(
                matches!(&err, StoreError::OutOfScope { fmp, allowed } if fmp == "ML-HER" && *allowed == gog),
                "{err}"
            );
            let err = s.set_registry(&s.registry()).unwrap_err();
            assert!(matches!(err, StoreError::Reference(_)), "{err}");
            s.set_enrolled_fmps(None).unwrap();
            assert_eq!(s.enrolled_fmps().unwrap(), None);
            let id = s.record(example_submission()).unwrap();
            let two = vec!["ML-HER".to_string(), "ML-GOG".to_string()];
            s.set_enrolled_fmps(Some(&two)).unwrap();

            s.set_role(Some(Role::Enumerator)).unwrap();
            assert_eq!(s.role().unwrap(), Some(Role::Enumerator));
            let err = s.review(id, ReviewStatus::Approved, "").unwrap_err();
            assert!(matches!(err, StoreError::NotAllowed(_)), "{err}");
            s.set_role(None).unwrap();
            assert_eq!(s.role().unwrap(), None);
            s.review(id, ReviewStatus::Approved, "").unwrap();
            s.set_role(Some(Role::Supervisor)).unwrap();

            assert_eq!(s.snapshot(|r| r.setting("k")).unwrap(), None);
            s.transaction(|w| w.put_setting("k", "1")).unwrap();
            s.transaction(|w| w.put_setting("k", "2")).unwrap();
            assert_eq!(
                s.snapshot(|r| r.setting("k")).unwrap().as_deref(),
                Some("2")
            );
            s.transaction(|w| w.put_setting("gone", "x")).unwrap();
            s.transaction(|w| w.delete_setting("gone")).unwrap();
            s.transaction(|w| w.delete_setting("gone")).unwrap();
            assert_eq!(s.snapshot(|r| r.setting("gone")).unwrap(), None);

            s.set_link_max_bytes(peer, 1500).unwrap();
            s.set_refused_by(peer, Some((5, "revoked"))).unwrap();
            assert_eq!(s.refused_by(peer).unwrap(), Some((5, "revoked".into())));
        }
        let s = (b.open)(&dir).unwrap();
        assert_eq!(
            s.enrolled_fmps().unwrap(),
            Some(vec!["ML-HER".to_string(), "ML-GOG".to_string()])
        );
        assert_eq!(s.role().unwrap(), Some(Role::Supervisor));
        assert_eq!(
            s.snapshot(|r| r.setting("k")).unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(s.link_max_bytes(peer).unwrap(), Some(1500));
        assert_eq!(s.refused_by(peer).unwrap(), Some((5, "revoked".into())));
        s.set_refused_by(peer, None).unwrap();
        assert_eq!(s.refused_by(peer).unwrap(), None);
        assert_eq!(s.link_max_bytes(peer).unwrap(), Some(1500), "another key");
    }

    /// A record received from a device enrolled here: its history names
    /// that device and this store for its own changes, it is not this
    /// store's to correct, and the counts of what peers were not sent
    /// tell the received change apart.
    pub fn a_received_record_names_its_author_and_counts_apart(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let got = recorded_elsewhere(b, &tmp.path().join("phone"), "phone-b");
        let s = (b.init)(&tmp.path().join("hub"), "hub").unwrap();
        let me = s.identity().device_id;
        assert_eq!(s.never_sent_to(None).unwrap(), 0);
        assert_eq!(s.snapshot(|r| r.history_rows(got.id)).unwrap(), vec![]);
        let err = s.history(got.id).unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        s.transaction(|w| w.enroll_device(got.author, "phone-b", &[7; 32], None, false))
            .unwrap();
        let id = got.id.to_string();
        let saved = |s: &Store| {
            s.transaction(|w| {
                w.save_document(
                    "submission",
                    &id,
                    &got.data,
                    &[got.change()],
                    Some((&got.state, false)),
                )
            })
            .unwrap()
        };
        assert_eq!(saved(&s), 1, "one new change");
        assert_eq!(saved(&s), 0, "received twice: skipped");
        assert_eq!(s.get(got.id).unwrap(), got.state);
        s.review(got.id, ReviewStatus::HasIssues, "count again")
            .unwrap();
        let h = s.history(got.id).unwrap();
        let who: Vec<_> = h
            .iter()
            .map(|e| (e.op.as_str(), e.author.clone(), e.author_name.as_deref()))
            .collect();
        assert_eq!(
            who,
            [
                ("record", got.author.to_string(), Some("phone-b")),
                ("review", me.to_string(), Some("hub")),
            ]
        );
        assert_eq!(h[1].fields, ["review"]);

        // Its review sends back only what this store recorded.
        assert_eq!(s.to_correct().unwrap(), vec![]);
        let own = s.record(example_submission()).unwrap();
        s.review(own, ReviewStatus::Rejected, "wrong place")
            .unwrap();
        let t = s.to_correct().unwrap();
        assert_eq!(
            t.iter()
                .map(|t| (
                    t.id.clone(),
                    t.status.as_str(),
                    t.comment.as_str(),
                    t.edited_since
                ))
                .collect::<Vec<_>>(),
            [(own.to_string(), "rejected", "wrong place", false)]
        );
        s.edit(own, &serde_json::json!({"notes": "fixed"})).unwrap();
        assert!(s.to_correct().unwrap()[0].edited_since);

        // Four changes made here (two reviews, a record, an edit), one received.
        assert_eq!(s.never_sent_to(None).unwrap(), 4);
        assert_eq!(s.never_sent_to(Some(got.author)).unwrap(), 4);
        assert_eq!(s.never_sent_to(Some(Uuid::now_v7())).unwrap(), 5);
        assert_eq!(s.peer_progress().unwrap(), vec![]);
        s.transaction(|w| w.advance_peer(got.author, Some(0), Some(0)))
            .unwrap();
        let p = s.peer_progress().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].peer.clone(), p[0].name.as_deref(), p[0].pending),
            (got.author.to_string(), Some("phone-b"), 4)
        );
        assert!(p[0].last_sync_ms.is_some());
    }

    /// A new document is inserted whole; one whose id is taken is refused
    /// as `Duplicate` naming the id, and the store is left as it was.
    pub fn insert_document_refuses_a_taken_id_and_changes_nothing(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let got = recorded_elsewhere(b, &tmp.path().join("phone"), "phone");
        let s = (b.init)(&tmp.path().join("hq"), "hq").unwrap();
        s.record(example_submission()).unwrap();
        let id = got.id.to_string();
        let insert = |s: &Store| {
            s.transaction(|w| {
                w.insert_document(
                    "submission",
                    &id,
                    &got.data,
                    &[got.change()],
                    Some((&got.state, false)),
                )
            })
        };
        assert_eq!(insert(&s).unwrap(), 1);
        assert_eq!(s.get(got.id).unwrap(), got.state);
        assert_eq!(s.history(got.id).unwrap().len(), 1);
        let before = contents(&s);
        let end = s.snapshot(|r| r.log_end()).unwrap();
        let err = insert(&s).unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate(d) if *d == id),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("a submission with id {id} is already stored; nothing was changed")
        );
        // Refused inside a write that goes on and commits: still nothing.
        s.transaction(|w| {
            let err = w
                .insert_document("submission", &id, b"other", &[], None)
                .unwrap_err();
            assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(contents(&s), before);
        assert_eq!(s.snapshot(|r| r.log_end()).unwrap(), end);
        assert_eq!(
            s.snapshot(|r| r.document(&id)).unwrap(),
            Some(("submission".to_string(), got.data.clone()))
        );
    }
}

/// The hub's store operations (devices, codes, quarantine, upstream).
mod hub_cases {
    #![allow(clippy::unwrap_used)]
    use fmp_core::store::hub::{CodeRow, Upstream};
    use fmp_core::store::ops::*;
    use uuid::Uuid;

    use super::Backend;

    /// The hub's tables through `HubReads`/`HubWrites`.
    pub fn a_device_enrolled_revoked_and_reinstated_reads_back_as_written(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let s = (b.init)(&tmp.path().join("hub"), "hub").unwrap();
        let d = Uuid::now_v7();
        let fmps = vec!["ML-GOG".to_string()];
        s.transaction(|w| w.enroll_device(d, "phone", &[7; 32], Some(&fmps), false))
            .unwrap();
        let row = s.snapshot(|r| r.enrolled_device(d)).unwrap().unwrap();
        assert_eq!(
            (row.device, row.fmps.as_deref(), row.revoked_at),
            (d, Some(&fmps[..]), None)
        );
        let v = s.snapshot(|r| r.trust_version()).unwrap();
        assert_eq!(s.snapshot(|r| r.trust_version()).unwrap(), v);
        assert_eq!(s.transaction(|w| w.revoke_device(d)).unwrap(), 1);
        assert_ne!(s.snapshot(|r| r.trust_version()).unwrap(), v, "revoked");
        let v = s.snapshot(|r| r.trust_version()).unwrap();
        assert_eq!(s.transaction(|w| w.revoke_device(d)).unwrap(), 0);
        let rows = s.snapshot(|r| r.trust_rows()).unwrap();
        assert!(rows[0].revoked_at.is_some());
        assert_eq!(s.transaction(|w| w.reinstate_device(d)).unwrap(), 1);
        assert_ne!(s.snapshot(|r| r.trust_version()).unwrap(), v, "reinstated");
        let listed = s.snapshot(|r| r.enrolled_devices()).unwrap();
        assert_eq!((listed.len(), listed[0].revoked_at), (1, None));
        assert_eq!(
            s.snapshot(|r| r.enrolled_device(Uuid::now_v7())).unwrap(),
            None
        );
    }

    /// The hub's tables through `HubReads`/`HubWrites`.
    pub fn a_code_is_found_by_its_hash_and_marked_used(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let s = (b.init)(&tmp.path().join("hub"), "hub").unwrap();
        s.add_enrollment_code(b"h", &["ML-GOG".into()], true, 42)
            .unwrap();
        let d = Uuid::now_v7();
        s.transaction(|w| w.use_enrollment_code(b"h", d)).unwrap();
        let c = s.snapshot(|r| r.enrollment_code(b"h")).unwrap().unwrap();
        assert_eq!(
            c,
            CodeRow {
                fmps: vec!["ML-GOG".into()],
                may_enroll: true,
                expires_at: 42,
                used_by: Some(d.to_string()),
            }
        );
        assert_eq!(s.snapshot(|r| r.enrollment_code(b"x")).unwrap(), None);
    }

    /// Unused codes are listed while valid; a cancelled or used one is not,
    /// and cannot be cancelled (again).
    pub fn unused_codes_are_listed_until_used_expired_or_cancelled(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let s = (b.init)(&tmp.path().join("hub"), "hub").unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let later = now + 3_600_000;
        s.add_enrollment_code(b"a", &["ML-GOG".into()], false, later)
            .unwrap();
        s.add_enrollment_code(b"b", &["ML-GOG".into(), "ML-HER".into()], true, later)
            .unwrap();
        s.add_enrollment_code(b"c", &["ML-GOG".into()], false, now - 1)
            .unwrap();
        s.add_enrollment_code(b"d", &["ML-GOG".into()], false, later)
            .unwrap();
        s.transaction(|w| w.use_enrollment_code(b"d", Uuid::now_v7()))
            .unwrap();
        let listed = s.snapshot(|r| r.unused_codes(now)).unwrap();
        let hashes: Vec<&[u8]> = listed.iter().map(|c| c.hash.as_slice()).collect();
        assert_eq!(
            hashes,
            [b"a".as_slice(), b"b".as_slice()],
            "not c (expired), not d (used)"
        );
        assert_eq!(listed[1].fmps, ["ML-GOG", "ML-HER"]);
        assert!(listed[1].may_enroll && !listed[0].may_enroll);
        assert_eq!(listed[0].expires_at, later);
        assert!(s.transaction(|w| w.cancel_enrollment_code(b"a")).unwrap());
        assert!(
            !s.transaction(|w| w.cancel_enrollment_code(b"a")).unwrap(),
            "gone"
        );
        assert!(
            !s.transaction(|w| w.cancel_enrollment_code(b"d")).unwrap(),
            "used: kept"
        );
        assert_eq!(s.snapshot(|r| r.enrollment_code(b"a")).unwrap(), None);
        assert!(s.snapshot(|r| r.enrollment_code(b"d")).unwrap().is_some());
        let left = s.snapshot(|r| r.unused_codes(now)).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].hash, b"b");
    }

    /// The hub's tables through `HubReads`/`HubWrites`.
    pub fn quarantined_changes_come_back_until_taken_out(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let s = (b.init)(&tmp.path().join("phone"), "phone").unwrap();
        let hub = Uuid::now_v7();
        s.transaction(|w| w.quarantine(hub, [([1; 32], "no"), ([2; 32], "why")]))
            .unwrap();
        let q = s.snapshot(|r| r.quarantined()).unwrap();
        assert_eq!(q.len(), 2);
        assert!(q.iter().any(|e| e.hash == [2; 32] && e.reason == "why"));
        s.transaction(|w| w.unquarantine(&[[1; 32]])).unwrap();
        let q = s.snapshot(|r| r.quarantined()).unwrap();
        assert_eq!(q.iter().map(|e| e.hash).collect::<Vec<_>>(), vec![[2; 32]]);
    }

    /// The hub's tables through `HubReads`/`HubWrites`.
    pub fn the_upstream_is_replaced_and_hq_is_self_until_one_is_joined(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let s = (b.init)(&tmp.path().join("s"), "s").unwrap();
        let me = s.identity().device_id;
        assert_eq!(
            s.snapshot(|r| r.hq_identity())
                .unwrap()
                .map(|a| a.device_id),
            Some(me)
        );
        let up = Upstream {
            hub: Uuid::now_v7(),
            url: "http://h".into(),
            name: "hub".into(),
            public_key: vec![1; 32],
            fmps: Some(vec!["ML-GOG".into()]),
            tls_cert: None,
        };
        s.transaction(|w| w.set_upstream(&up)).unwrap();
        let other = Upstream {
            url: "http://g".into(),
            ..up.clone()
        };
        s.transaction(|w| w.set_upstream(&other)).unwrap();
        assert_eq!(s.snapshot(|r| r.upstream()).unwrap(), Some(other));
        assert_eq!(s.snapshot(|r| r.hq_identity()).unwrap(), None);
    }

    /// Devices are named as this store knows them (itself, its hub, a
    /// device enrolled here; none else), and the addresses a hub served
    /// at read back as set, replaced by the next.
    pub fn device_names_and_served_addresses_read_back(b: Backend) {
        let tmp = tempfile::tempdir().unwrap();
        let s = (b.init)(&tmp.path().join("s"), "kayes-hub").unwrap();
        let me = s.identity().device_id.to_string();
        let (hub, phone) = (Uuid::now_v7(), Uuid::now_v7());
        s.transaction(|w| {
            w.set_upstream(&Upstream {
                hub,
                url: "https://hq:8443".into(),
                name: "hq".into(),
                public_key: vec![1; 32],
                fmps: None,
                tls_cert: None,
            })?;
            w.enroll_device(
                phone,
                "gogui-phone-1",
                &[2; 32],
                Some(&["ML-GOG".into()]),
                false,
            )
        })
        .unwrap();
        let name = |d: &str| s.snapshot(|r| r.device_name(d)).unwrap();
        assert_eq!(name(&me).as_deref(), Some("kayes-hub"));
        assert_eq!(name(&hub.to_string()).as_deref(), Some("hq"));
        assert_eq!(name(&phone.to_string()).as_deref(), Some("gogui-phone-1"));
        assert_eq!(name(&Uuid::now_v7().to_string()), None);
        assert!(
            s.snapshot(|r| r.served_at()).unwrap().is_empty(),
            "never served"
        );
        let urls = vec![
            "https://10.0.0.2:8080".to_string(),
            "https://192.168.1.7:8080".into(),
        ];
        s.transaction(|w| w.set_served_at(&urls)).unwrap();
        assert_eq!(s.snapshot(|r| r.served_at()).unwrap(), urls);
        s.transaction(|w| w.set_served_at(&["http://127.0.0.1:9".into()]))
            .unwrap();
        assert_eq!(
            s.snapshot(|r| r.served_at()).unwrap(),
            ["http://127.0.0.1:9"]
        );
    }
}

/// Instantiates every case of the suite for one backend, as a module of tests.
#[macro_export]
macro_rules! backend_suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::{cases, hub_cases, record_cases};

            #[test]
            fn a_one_change_document_is_its_change_until_edited() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::a_one_change_document_is_its_change_until_edited($backend);
            }
            #[test]
            fn reopened_store_keeps_everything() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::reopened_store_keeps_everything($backend);
            }

            #[test]
            fn refusals_change_nothing() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::refusals_change_nothing($backend);
            }

            #[test]
            fn reads_do_not_wait_for_the_writer() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::reads_do_not_wait_for_the_writer($backend);
            }

            #[test]
            fn an_incremental_reader_sees_every_change_once_under_concurrent_writers() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::an_incremental_reader_sees_every_change_once_under_concurrent_writers(
                    $backend,
                );
            }

            #[test]
            fn stamps_move_with_their_document_and_only_with_it() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::stamps_move_with_their_document_and_only_with_it($backend);
            }

            #[test]
            fn own_changes_are_unsealed_until_sealed() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::own_changes_are_unsealed_until_sealed($backend);
            }

            #[test]
            fn a_snapshot_is_one_state() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                cases::a_snapshot_is_one_state($backend);
            }

            #[test]
            fn settings_and_role_read_back_as_set_and_cleared() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                record_cases::settings_and_role_read_back_as_set_and_cleared($backend);
            }

            #[test]
            fn a_received_record_names_its_author_and_counts_apart() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                record_cases::a_received_record_names_its_author_and_counts_apart($backend);
            }

            #[test]
            fn insert_document_refuses_a_taken_id_and_changes_nothing() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                record_cases::insert_document_refuses_a_taken_id_and_changes_nothing($backend);
            }

            #[test]
            fn a_device_enrolled_revoked_and_reinstated_reads_back_as_written() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                hub_cases::a_device_enrolled_revoked_and_reinstated_reads_back_as_written($backend);
            }

            #[test]
            fn a_code_is_found_by_its_hash_and_marked_used() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                hub_cases::a_code_is_found_by_its_hash_and_marked_used($backend);
            }

            #[test]
            fn unused_codes_are_listed_until_used_expired_or_cancelled() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                hub_cases::unused_codes_are_listed_until_used_expired_or_cancelled($backend);
            }

            #[test]
            fn quarantined_changes_come_back_until_taken_out() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                hub_cases::quarantined_changes_come_back_until_taken_out($backend);
            }

            #[test]
            fn the_upstream_is_replaced_and_hq_is_self_until_one_is_joined() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                hub_cases::the_upstream_is_replaced_and_hq_is_self_until_one_is_joined($backend);
            }

            #[test]
            fn device_names_and_served_addresses_read_back() {
                if ($backend.skip)(module_path!()) {
                    return;
                }
                hub_cases::device_names_and_served_addresses_read_back($backend);
            }
        }
    };
}

backend_suite!(sqlite, fmp_core::store::testing::SQLITE);
backend_suite!(postgres, fmp_core::store::testing::POSTGRES);
