//! Stores restored from an older copy of themselves (a phone reinstalled
//! from a backup, a hub from yesterday's disk) notice it at their next sync,
//! take back what their peers hold of theirs, re-offer what the peers lack,
//! and write on under a fresh automerge actor. Real stores in temp dirs,
//! copied whole as a backup is.

mod common;

use fmp_core::store::ops::*;
use std::path::Path;

use common::*;
use fmp_core::doc::{Op, actor_for_epoch, actor_parts, new_submission_committed};
use fmp_core::model::ReviewStatus;
use fmp_core::store::{Filter, Store, restore};
use fmp_sync::bundle::Bundle;
use fmp_sync::wire::{Batch, DocRef, HashRef, Request, Response, WireBundle, WireChange};
use fmp_sync::{AuthorInfo, StaticTrust, SyncError, respond, sync_in_memory};
use uuid::Uuid;

const MAX: u32 = 65536;
/// The smallest message: a reconciliation then takes several.
const MIN_MAX: u32 = fmp_sync::wire::MIN_MAX_BYTES;

/// A store in its own directory, which can be closed, copied and replaced.
struct Disk {
    root: tempfile::TempDir,
    store: Option<Store>,
    restores: usize,
}

impl Disk {
    fn new(name: &str) -> Disk {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::init(&root.path().join("store"), name).expect("init");
        Disk {
            root,
            store: Some(store),
            restores: 0,
        }
    }

    fn dir(&self) -> std::path::PathBuf {
        self.root.path().join("store")
    }

    fn s(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    /// A copy of the closed store's directory (what a backup holds).
    fn backup(&mut self) -> tempfile::TempDir {
        self.store = None;
        let copy = tempfile::tempdir().expect("tempdir");
        copy_files(&self.dir(), copy.path());
        self.store = Some(Store::open(&self.dir()).expect("reopen"));
        copy
    }

    /// Puts the backup in the store directory's place and opens it (the
    /// replaced directory is moved aside, as a restore tool keeps it).
    fn restore(&mut self, backup: &Path) {
        self.store = None;
        self.restores += 1;
        let aside = self.root.path().join(format!("replaced-{}", self.restores));
        std::fs::rename(self.dir(), aside).expect("move aside");
        std::fs::create_dir(self.dir()).expect("mkdir");
        copy_files(backup, &self.dir());
        self.store = Some(Store::open(&self.dir()).expect("open the restored copy"));
    }

    /// Writes the backup over the store's files in place (same files on
    /// disk, as some restore tools do): the store cannot tell at open.
    fn restore_in_place(&mut self, backup: &Path) {
        self.store = None;
        for e in std::fs::read_dir(self.dir()).expect("read dir") {
            let e = e.expect("entry");
            if !backup.join(e.file_name()).exists() {
                std::fs::remove_file(e.path()).expect("remove");
            }
        }
        copy_files(backup, &self.dir());
        self.store = Some(Store::open(&self.dir()).expect("open the restored copy"));
    }
}

fn copy_files(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn trust(stores: &[&Store]) -> StaticTrust {
    let mut t = StaticTrust::new(true);
    for s in stores {
        t.insert(
            s.identity().device_id,
            AuthorInfo {
                public_key: s.identity().public_key().to_vec(),
                fmps: None,
                may_enroll: true,
                role: fmp_sync::Role::Hq,
            },
        );
    }
    t
}

fn count(s: &Store) -> usize {
    s.list(&Filter::default()).expect("list").len()
}

fn state(s: &Store) -> restore::RestoreState {
    s.snapshot(|r| r.restore_state()).expect("restore state")
}

/// The actor of the last change `author` made, as `store` logged it.
fn last_actor_of(store: &Store, author: Uuid) -> Vec<u8> {
    let bytes: Vec<u8> = testing::changes(store)
        .expect("changes")
        .into_iter()
        .rfind(|c| c.author == author.to_string())
        .expect("a change")
        .bytes;
    automerge::Change::try_from(bytes.as_slice())
        .expect("change")
        .actor_id()
        .to_bytes()
        .to_vec()
}

#[test]
fn a_restored_phone_takes_back_its_own_changes_and_writes_under_a_fresh_actor() {
    restored_phone(false);
}

#[test]
fn a_phone_restored_in_place_learns_it_from_its_hub_and_heals_the_same() {
    restored_phone(true);
}

fn restored_phone(in_place: bool) {
    let mut phone = Disk::new("gogui-phone-1");
    let hub = replica("gao-hub");
    let t = trust(&[phone.s(), &hub.store]);
    let me = phone.s().identity().device_id;
    let ids: Vec<Uuid> = (0..15)
        .map(|n| phone.s().record(submission("ML-GOG", n)).expect("record"))
        .collect();
    sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("first sync");
    let backup = phone.backup();
    for n in 15..20 {
        phone.s().record(submission("ML-GOG", n)).expect("record");
    }
    phone
        .s()
        .edit(ids[0], &serde_json::json!({"notes": "bus from Kayes"}))
        .expect("edit");
    sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("second sync");
    assert_eq!(count(&hub.store), 20);

    if in_place {
        phone.restore_in_place(backup.path());
        // The same files on disk: only its hub can tell it.
        let st = state(phone.s());
        assert!(st.detected_at.is_none(), "{st:?}");
        assert_eq!(st.epoch, 0);
    } else {
        phone.restore(backup.path());
        // Opened from a copy put in its directory's place: it knows, before any sync.
        let st = state(phone.s());
        assert!(st.detected_at.is_some() && st.healed_at.is_none(), "{st:?}");
        assert_eq!(st.epoch, 1);
    }
    assert_eq!(count(phone.s()), 15, "the backup holds 15");
    let r = sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("sync after restore");
    assert_eq!(count(phone.s()), 20, "{r:?}");
    assert_eq!(
        phone.s().get(ids[0]).expect("get").submission.notes,
        "bus from Kayes"
    );
    let st = state(phone.s());
    assert!(st.detected_at.is_some(), "{st:?}");
    assert!(st.healed_at.is_some(), "{st:?}");
    assert_eq!(st.taken_back, 6, "5 records and an edit taken back: {st:?}");
    assert_eq!(st.epoch, 1);

    // The original edited record 0 after the backup (its actor's sequence
    // number 2 in that document); the restored phone edits it again.
    phone
        .s()
        .edit(
            ids[0],
            &serde_json::json!({"notes": "bus from Kayes, 12 aboard"}),
        )
        .expect("edit after restore");
    assert_eq!(
        last_actor_of(phone.s(), me),
        actor_for_epoch(me, 1).to_bytes()
    );
    let r = sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("sync the edit");
    assert!(r.refused_by_peer.is_empty(), "{r:?}");
    assert_eq!(r.pushed, 1, "{r:?}");
    assert_eq!(
        hub.store.get(ids[0]).expect("get").submission.notes,
        "bus from Kayes, 12 aboard"
    );
    assert_eq!(dump(phone.s()), dump(&hub.store));
    assert_eq!(
        last_actor_of(&hub.store, me),
        actor_for_epoch(me, 1).to_bytes()
    );

    // Later syncs are ordinary: nothing is taken back again, no new epoch.
    let noop = sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("noop");
    assert_eq!((noop.pushed, noop.pulled, noop.round_trips), (0, 0, 1));
    assert_eq!(state(phone.s()).epoch, 1);
}

#[test]
fn a_restored_hub_gets_back_what_its_phones_pushed_since_and_they_pull_what_is_new() {
    let p1 = replica("gogui-phone-1");
    let p2 = replica("gogui-phone-2");
    let mut hub = Disk::new("gao-hub");
    let t = trust(&[&p1.store, &p2.store, hub.s()]);
    let hub_id = hub.s().identity().device_id;
    for n in 0..5 {
        p1.store.record(submission("ML-GOG", n)).expect("record");
        p2.store
            .record(submission("ML-GOG", 100 + n))
            .expect("record");
    }
    let round = |hub: &Store| {
        for p in [&p1.store, &p2.store, &p1.store] {
            let r = sync_in_memory(p, &t, hub, &t, MAX).expect("sync");
            assert!(
                r.refused_by_peer.is_empty() && r.refused_here.is_empty(),
                "{r:?}"
            );
        }
    };
    round(hub.s());
    let backup = hub.backup();
    for n in 5..10 {
        p1.store.record(submission("ML-GOG", n)).expect("record");
        p2.store
            .record(submission("ML-GOG", 100 + n))
            .expect("record");
    }
    let reviewed = p1.store.list(&Filter::default()).expect("list")[0]
        .submission
        .id
        .expect("id");
    round(hub.s());
    // The hub reviews after the backup: the phones hold that review.
    hub.s()
        .review(reviewed, ReviewStatus::HasIssues, "count again")
        .expect("review");
    round(hub.s());
    assert_eq!(count(hub.s()), 20);

    hub.restore(backup.path());
    assert_eq!(count(hub.s()), 10, "the backup holds 10");
    round(hub.s());
    assert_eq!(
        count(hub.s()),
        20,
        "the phones pushed again what the hub lacked"
    );
    assert_eq!(
        hub.s()
            .get(reviewed)
            .expect("get")
            .review
            .map(|r| r.comment),
        Some("count again".to_string()),
        "the hub's own review came back from a phone"
    );
    let st = state(hub.s());
    assert!(st.detected_at.is_some(), "{st:?}");
    assert!(st.epoch >= 1, "{st:?}");

    // The restored hub reviews the same record again: a fresh actor, so
    // the phones accept it (no sequence number used twice).
    hub.s()
        .review(reviewed, ReviewStatus::Approved, "counted again")
        .expect("review again");
    assert_eq!(
        actor_parts(&last_actor_of(hub.s(), hub_id)),
        (Some(hub_id), Some(st.epoch))
    );
    round(hub.s());
    for p in [&p1.store, &p2.store] {
        assert_eq!(count(p), 20);
        assert_eq!(
            p.get(reviewed).expect("get").review.map(|r| r.comment),
            Some("counted again".to_string())
        );
        assert_eq!(dump(p), dump(hub.s()));
    }
    // Every record once (content addressing), every change once.
    let hashes: Vec<[u8; 32]> = testing::changes(hub.s())
        .expect("count")
        .into_iter()
        .map(|c| c.hash)
        .collect();
    let distinct: std::collections::HashSet<&[u8; 32]> = hashes.iter().collect();
    let dup = hashes.len() - distinct.len();
    assert_eq!(dup, 0);
    let noop = sync_in_memory(&p1.store, &t, hub.s(), &t, MAX).expect("noop");
    assert_eq!((noop.pushed, noop.pulled, noop.round_trips), (0, 0, 1));
}

/// A hand-made push of one record whose change has `actor`, in a bundle
/// signed by `signer`.
fn crafted_push(signer: &Store, to: Uuid, actor: automerge::ActorId) -> Vec<u8> {
    let id = Uuid::now_v7();
    let mut sub = submission("ML-GOG", 3);
    sub.id = Some(id);
    let (_, change) =
        new_submission_committed(actor, id, &sub, Op::Record, 1_592_000_000_000).expect("change");
    let b = Bundle::sign(signer.identity(), vec![change.hash().0]);
    Request {
        from: signer.identity().device_id,
        to,
        push: Batch {
            certs: Vec::new(),
            bundles: vec![WireBundle {
                author: b.author,
                hashes: vec![HashRef::Here(0)],
                sig: b.sig,
            }],
            changes: vec![WireChange {
                doc: DocRef::InChange,
                bytes: change.raw_bytes().to_vec(),
            }],
        },
        push_upto: 1,
        pull_after: None,
        max_bytes: MAX,
        want: Vec::new(),
        reconcile: None,
        push_after: 0,
        log_end: 1,
        restored: false,
    }
    .encode()
    .expect("encode")
}

#[test]
fn the_actor_check_accepts_the_authors_epoch_actor_and_refuses_another_devices() {
    let phone = replica("phone");
    let mallory = replica("mallory");
    let hub = replica("hub");
    let t = trust(&[&phone.store, &mallory.store, &hub.store]);
    let me = id(&phone);
    let to = id(&hub);
    let before = raw(&hub.store);
    // Another device's id, bare or at an epoch, in a bundle the phone signs.
    for actor in [
        actor_for_epoch(id(&mallory), 0),
        actor_for_epoch(id(&mallory), 1),
    ] {
        let err =
            respond(&hub.store, &t, &crafted_push(&phone.store, to, actor)).expect_err("refused");
        assert!(matches!(err, SyncError::ForgedAuthor { .. }), "{err}");
    }
    // The phone's id followed by an epoch 0 (not how epoch 0 is written),
    // or by anything but four bytes: not an actor of the phone.
    let mut bytes = me.as_bytes().to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let mut longer = me.as_bytes().to_vec();
    longer.extend_from_slice(&[0, 0, 0, 1, 7]);
    for actor in [bytes, longer] {
        let actor = automerge::ActorId::from(actor.as_slice());
        let err =
            respond(&hub.store, &t, &crafted_push(&phone.store, to, actor)).expect_err("refused");
        assert!(matches!(err, SyncError::ForgedAuthor { .. }), "{err}");
    }
    assert_eq!(raw(&hub.store), before, "nothing of the refusals stored");
    // The phone's own actor at epoch 3: accepted and stored.
    let out = respond(
        &hub.store,
        &t,
        &crafted_push(&phone.store, to, actor_for_epoch(me, 3)),
    )
    .expect("accepted");
    let resp = Response::decode(&out).expect("response");
    assert!(resp.refused.is_empty(), "{resp:?}");
    assert_eq!(resp.accepted, 1);
    assert_eq!(count(&hub.store), 1);
    assert_eq!(
        actor_parts(&last_actor_of(&hub.store, me)),
        (Some(me), Some(3))
    );
}

#[test]
fn a_restored_hq_takes_back_its_own_changes_from_a_hub_that_knows_no_certificate_of_it() {
    let mut hq = Disk::new("hq");
    let hub = replica("gao-hub");
    // Each knows only the other (HQ holds no certificate of itself).
    let for_hq = trust(&[&hub.store]);
    let for_hub = trust(&[hq.s()]);
    for n in 0..3 {
        hq.s().record(submission("ML-GOG", n)).expect("record");
        hub.store
            .record(submission("ML-GOG", 50 + n))
            .expect("record");
    }
    let sync = |hq: &Store| {
        let r = fmp_sync::Client::new(&hub.store, &for_hub, hq.identity().device_id)
            .with_max_bytes(MAX)
            .run(|req| respond(hq, &for_hq, &req))
            .expect("sync");
        assert!(
            r.refused_by_peer.is_empty() && r.refused_here.is_empty(),
            "{r:?}"
        );
    };
    sync(hq.s());
    let backup = hq.backup();
    for n in 3..6 {
        hq.s().record(submission("ML-GOG", n)).expect("record");
        hub.store
            .record(submission("ML-GOG", 50 + n))
            .expect("record");
    }
    sync(hq.s());
    assert_eq!(count(hq.s()), 12);

    hq.restore(backup.path());
    assert_eq!(count(hq.s()), 6);
    sync(hq.s());
    assert_eq!(count(hq.s()), 12, "HQ's own 3 and the hub's 3 came back");
    assert_eq!(dump(hq.s()), dump(&hub.store));
    assert!(state(hq.s()).detected_at.is_some());
}

#[test]
fn a_phone_restored_and_edited_before_its_first_sync_reuses_no_sequence_number() {
    let mut phone = Disk::new("gogui-phone-1");
    let hub = replica("gao-hub");
    let t = trust(&[phone.s(), &hub.store]);
    let me = phone.s().identity().device_id;
    let id = phone.s().record(submission("ML-GOG", 1)).expect("record");
    sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("first sync");
    let backup = phone.backup();
    phone
        .s()
        .edit(id, &serde_json::json!({"notes": "edited by the original"}))
        .expect("edit");
    sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("second sync");

    // Put back from the copy: the store sees another database file and
    // takes a fresh actor before its first write, though no sync told it.
    phone.restore(backup.path());
    assert_eq!(state(phone.s()).epoch, 1);
    phone
        .s()
        .edit(
            id,
            &serde_json::json!({"notes": "edited again after the restore"}),
        )
        .expect("edit before syncing");
    assert_eq!(
        last_actor_of(phone.s(), me),
        actor_for_epoch(me, 1).to_bytes()
    );
    let r = sync_in_memory(phone.s(), &t, &hub.store, &t, MAX).expect("sync");
    assert!(
        r.refused_by_peer.is_empty() && r.refused_here.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.pulled, 1, "the original's edit taken back: {r:?}");
    assert_eq!(dump(phone.s()), dump(&hub.store));
    let st = state(phone.s());
    assert!(st.detected_at.is_some() && st.healed_at.is_some(), "{st:?}");
    assert_eq!(
        st.epoch, 1,
        "still fresh: nothing was written under it before"
    );
}

/// Found by the simulation (seed 107): a hub restored from a copy taken
/// before a phone's first sync has no cursor row for it; the phone's push
/// from past 0 was believed, and what it had sent was never sent again.
#[test]
fn a_hub_restored_from_a_copy_older_than_a_phone_s_first_sync_gets_its_records_back() {
    let phone = replica("gogui-phone-1");
    let mut hub = Disk::new("gao-hub");
    let t = trust(&[&phone.store, hub.s()]);
    let backup = hub.backup();
    for n in 0..4 {
        phone.store.record(submission("ML-GOG", n)).expect("record");
    }
    let r = sync_in_memory(&phone.store, &t, hub.s(), &t, MAX).expect("sync");
    assert_eq!(r.pushed, 4);
    // In place: the store cannot tell at open (a moved directory it can).
    hub.restore_in_place(backup.path());
    assert_eq!(count(hub.s()), 0, "the copy predates the phone's records");
    phone.store.record(submission("ML-GOG", 4)).expect("record");
    for _ in 0..2 {
        sync_in_memory(&phone.store, &t, hub.s(), &t, MAX).expect("sync");
    }
    assert_eq!(count(hub.s()), 5, "every record back at the hub");
    assert_eq!(dump(hub.s()), dump(&phone.store));
}

/// Found by the simulation (seed 120): after a hub's restore, another
/// phone's sync made the hub's log grow past a third phone's pull cursor
/// from before the restore; that phone pulled on from its old cursor and
/// never got what the hub had put at the positions it skipped.
#[test]
fn a_pull_cursor_from_before_a_hub_s_restore_is_not_taken_once_the_log_grew_past_it() {
    let p1 = replica("gogui-phone-1");
    let p2 = replica("gogui-phone-2");
    let mut hub = Disk::new("gao-hub");
    let t = trust(&[&p1.store, &p2.store, hub.s()]);
    let backup = hub.backup();
    for n in 0..4 {
        p1.store.record(submission("ML-GOG", n)).expect("record");
    }
    sync_in_memory(&p1.store, &t, hub.s(), &t, MAX).expect("sync");
    let r = sync_in_memory(&p2.store, &t, hub.s(), &t, MAX).expect("sync");
    assert_eq!(r.pulled, 4);
    hub.restore_in_place(backup.path());
    // Phone 1 heals the hub and writes more: the hub's log passes 4.
    let first = p1.store.list(&Filter::default()).expect("list")[0]
        .submission
        .id
        .expect("id");
    p1.store
        .edit(first, &serde_json::json!({"notes": "counted again"}))
        .expect("edit");
    for n in 4..6 {
        p1.store.record(submission("ML-GOG", n)).expect("record");
    }
    for _ in 0..2 {
        sync_in_memory(&p1.store, &t, hub.s(), &t, MAX).expect("sync");
    }
    for _ in 0..2 {
        sync_in_memory(&p2.store, &t, hub.s(), &t, MAX).expect("sync");
    }
    assert_eq!(count(&p2.store), 6);
    assert_eq!(dump(&p2.store), dump(hub.s()));
    assert_eq!(dump(&p1.store), dump(hub.s()));
}

/// A copy that holds what a hub sent it but no cursor (a lost peer table,
/// a copy restored without it): it reconciles by itself, sends only the
/// difference, and goes on by cursor without pushing its log again (the
/// hub holds nothing *from* it, which alone would read as the hub's gap).
#[test]
fn a_copy_without_a_cursor_reconciles_by_itself_and_sends_only_the_difference() {
    let hub = replica("gao-hub");
    let copy = replica("restored-copy");
    let t = trust(&[&hub.store, &copy.store]);
    for n in 0..300 {
        hub.store.record(submission("ML-GOG", n)).expect("record");
    }
    let full = sync_in_memory(&copy.store, &t, &hub.store, &t, MAX).expect("first sync");
    assert_eq!(full.pulled, 300);
    fmp_sync::forget_peer(&copy.store, hub.store.identity().device_id).expect("forget");
    fmp_sync::forget_peer(&hub.store, copy.store.identity().device_id).expect("forget");
    for n in 300..305 {
        hub.store.record(submission("ML-GOG", n)).expect("record");
    }
    let client = fmp_sync::Client::new(&copy.store, &t, hub.store.identity().device_id)
        .reconcile_if_lost()
        .expect("decide");
    assert!(client.reconciling(), "no cursor, data in common: reconcile");
    let r = client
        .run(|req| respond(&hub.store, &t, &req))
        .expect("reconciled sync");
    assert_eq!((r.pushed, r.pulled), (0, 5), "{r:?}");
    let (bytes, full_bytes) = (
        r.bytes_sent + r.bytes_received,
        full.bytes_sent + full.bytes_received,
    );
    assert!(
        bytes * 5 < full_bytes,
        "the difference, not the log: {bytes} bytes against {full_bytes} for the first sync"
    );
    assert_eq!(dump(&copy.store), dump(&hub.store));
    assert!(
        state(&hub.store).detected_at.is_none(),
        "the hub did not take the reconciled claim for its own restore"
    );
    let noop = sync_in_memory(&copy.store, &t, &hub.store, &t, MAX).expect("noop");
    assert_eq!((noop.pushed, noop.pulled, noop.round_trips), (0, 0, 1));
}

/// Reconciliation is for stores that may share data: a new device, or one
/// that only wrote its own changes, or one with a cursor, syncs by cursor.
#[test]
fn a_store_with_a_cursor_or_nothing_received_syncs_by_cursor() {
    let hub = replica("gao-hub");
    let phone = replica("gogui-phone-1");
    let t = trust(&[&hub.store, &phone.store]);
    let hub_id = hub.store.identity().device_id;
    let decide = |s: &Store| {
        fmp_sync::Client::new(s, &t, hub_id)
            .reconcile_if_lost()
            .expect("decide")
            .reconciling()
    };
    assert!(!decide(&phone.store), "a new device");
    phone.store.record(submission("ML-GOG", 1)).expect("record");
    assert!(!decide(&phone.store), "only its own changes");
    hub.store.record(submission("ML-GOG", 2)).expect("record");
    sync_in_memory(&phone.store, &t, &hub.store, &t, MAX).expect("sync");
    assert!(!decide(&phone.store), "a cursor with this hub");
    fmp_sync::forget_peer(&phone.store, hub_id).expect("forget");
    assert!(decide(&phone.store), "received from it, cursor lost");
}

/// A hostile or confused client cannot use a reconciliation to make a hub
/// believe more than once that it holds a log it does not: the first
/// cursor claim after a reconciliation is believed, a later claim from a
/// peer the hub holds nothing from (and no row) is a gap again.
#[test]
fn a_reconciled_claim_is_believed_once() {
    use fmp_sync::reconcile;
    let hub = replica("gao-hub");
    let phone = replica("gogui-phone-1");
    let t = trust(&[&hub.store, &phone.store]);
    let (me, to) = (
        phone.store.identity().device_id,
        hub.store.identity().device_id,
    );
    let request = |reconcile: Option<Vec<fmp_sync::reconcile::Range>>, pull: Option<i64>| {
        Request {
            from: me,
            to,
            push: Batch::default(),
            push_upto: 40,
            pull_after: pull,
            max_bytes: MAX,
            want: Vec::new(),
            reconcile,
            push_after: 40,
            log_end: 40,
            restored: false,
        }
        .encode()
        .expect("encode")
    };
    let ask = |bytes: Vec<u8>| {
        Response::decode(&respond(&hub.store, &t, &bytes).expect("respond")).expect("decode")
    };
    ask(request(Some(reconcile::initial(&[])), None));
    let believed = ask(request(None, Some(0)));
    assert_eq!(believed.pulled_yours, 40, "reconciled: the claim is taken");
    assert!(state(&hub.store).detected_at.is_none());
    fmp_sync::forget_peer(&hub.store, me).expect("forget");
    let again = ask(request(None, Some(0)));
    assert_eq!(
        again.pulled_yours, 0,
        "no reconciliation since, no row, nothing from it: a gap, the push starts over"
    );
}

/// A reconciliation cut at every point (the answer to its k-th message
/// lost, for every k), each attempt started afresh from what the stores
/// hold: the copy ends with everything, the hub is never taken for
/// restored, and the attempts together cost far less than a full pull.
#[test]
fn a_reconciliation_cut_at_any_message_resumes_and_converges() {
    let hub = replica("gao-hub");
    let copy = replica("restored-copy");
    let t = trust(&[&hub.store, &copy.store]);
    let hub_id = hub.store.identity().device_id;
    for n in 0..1000 {
        hub.store.record(submission("ML-GOG", n)).expect("record");
    }
    let full = sync_in_memory(&copy.store, &t, &hub.store, &t, MAX).expect("first sync");
    let full_bytes = full.bytes_sent + full.bytes_received;
    for cut_at in 1..=6 {
        fmp_sync::forget_peer(&copy.store, hub_id).expect("forget");
        fmp_sync::forget_peer(&hub.store, copy.store.identity().device_id).expect("forget");
        for n in 0..3 {
            hub.store
                .record(submission("ML-GOG", 1000 + cut_at * 10 + n))
                .expect("record");
        }
        let mut spent = 0u64;
        let mut c = fmp_sync::Client::new(&copy.store, &t, hub_id)
            .reconcile_if_lost()
            .expect("decide")
            .with_max_bytes(MIN_MAX);
        for k in 1..=cut_at {
            let Some(req) = c.next_request().expect("request") else {
                break;
            };
            let resp = respond(&hub.store, &t, &req).expect("respond");
            spent += (req.len() + resp.len()) as u64;
            if k == cut_at {
                break; // the answer is lost: the client is dropped
            }
            c.handle_response(&resp).expect("handle");
        }
        drop(c);
        let r = fmp_sync::Client::new(&copy.store, &t, hub_id)
            .reconcile_if_lost()
            .expect("decide")
            .with_max_bytes(MIN_MAX)
            .run(|req| respond(&hub.store, &t, &req))
            .expect("resumed");
        spent += r.bytes_sent + r.bytes_received;
        assert_eq!(
            dump(&copy.store),
            dump(&hub.store),
            "cut at message {cut_at}"
        );
        assert!(
            state(&hub.store).detected_at.is_none(),
            "cut at message {cut_at}: the hub took it for its own restore"
        );
        assert!(
            spent * 4 < full_bytes,
            "cut at message {cut_at}: {spent} bytes against {full_bytes} for a full pull"
        );
        let noop = sync_in_memory(&copy.store, &t, &hub.store, &t, MAX).expect("noop");
        assert_eq!((noop.pushed, noop.pulled, noop.round_trips), (0, 0, 1));
    }
}
