//! Every operation the store offers beside its whole operations on
//! [`Store`](super::Store) (`record`, `edit`, `review`, `list`, `history`,
//! enrollment, the registry and forms): the one list a backend implements.
//!
//! The operations come in traits by area, a `…Reads` trait implemented by
//! the backend's [`Reader`](super::Reader) (one consistent snapshot) and a
//! `…Writes` trait implemented by its [`Writer`](super::Writer) (one
//! immediate, durable transaction; a `Writer` derefs to a `Reader`, so
//! every read also runs inside a write). Callers get them from
//! [`Store::snapshot`](super::Store::snapshot) and
//! [`Store::transaction`](super::Store::transaction) and bring the traits
//! into scope with `use fmp_core::store::ops::*`. Domain types in and out;
//! no SQL and no database type crosses this seam. SQLite implements every
//! trait beside the types of its area (`log.rs`, `hub.rs`, …), PostgreSQL
//! in `pg/ops.rs`, and `access.rs` hands each call on a `Reader`/`Writer`
//! to the backend it carries (ADR 0006); the suite every backend runs is
//! `crates/fmp-core/tests/backend.rs` (ADR 0003).
//!
//! # The cursor contract
//!
//! Every change a store appends to its log gets a position (`seq`,
//! increasing). A peer that has read every change up to position `c` asks
//! for "everything after `c`" ([`LogReads::changes_after`]). A backend
//! guarantees:
//!
//! 1. **Prefix visibility.** The changes any snapshot sees are exactly those
//!    at positions up to some `p`, with no gap below `p`: a change committed
//!    after a reader passed position `c` always has a position above `c`.
//!    SQLite meets it by its single writer: positions are taken inside the
//!    one immediate transaction, and transactions commit in the order they
//!    took them. A backend whose writers commit concurrently (PostgreSQL)
//!    serializes appends or gives positions in commit order, and passes
//!    the suite's concurrent-writers case (every change seen exactly once
//!    by an incremental reader).
//! 2. **Positions are never reused** while the store lives (a store put back
//!    from an older copy is detected and handled by the restore rules,
//!    `restore.rs`, not by the backend).
//! 3. **The log is append-only**: a change's position, bytes and hash never
//!    change, and nothing is deleted (a deleted record is a tombstone change).

use uuid::Uuid;

use super::authority::{Authority, DocChange};
use super::corrections::ToCorrect;
use super::counts::MonthCounts;
use super::enrollment::DeviceMatch;
use super::hub::{
    CodeRow, EnrolledDevice, QuarantineEntry, TrustRow, TrustVersion, UnusedCode, Upstream,
};
use super::log::{
    DocStamp, Hash, LogRow, NewChange, PeerCursor, PendingChange, StoredBundle, Waiting,
};
use super::peers::PeerProgress;
use super::report::{Counted, ExportRow, ExportSelection, ReportAggregates};
use super::restore::RestoreState;
use super::{Filter, HistoryEntry, StoreError};
use crate::form::Forms;
use crate::model::StoredSubmission;
use crate::reference::Registry;
use crate::role::Role;

/// The change log as sync sees it: rows after a cursor, by hash, bundles, cursors, certificates, pending changes. (reads; `store/log.rs`).
pub trait LogReads {
    /// The last `seq` of the log (0 if empty).
    fn log_end(&self) -> Result<i64, StoreError>;

    /// Changes after `after`, not received from `not_from`, in log order,
    /// until their raw size reaches `raw_budget` (40 bytes counted per
    /// change beside its bytes). Returns the rows and whether the log was
    /// exhausted. With `scope` (a peer's FMPs), submissions of other FMPs
    /// are skipped, and a submission that came into those FMPs after the
    /// cursor (an edit moved it) comes with its changes before the cursor
    /// too, which the peer was not served then and needs to apply the
    /// later ones. `dep_known` is set where the peer holds the change's
    /// first dependency (at or before the cursor, made or sent by the
    /// peer, or earlier in the rows).
    fn changes_after(
        &self,
        after: i64,
        not_from: Uuid,
        raw_budget: usize,
        scope: Option<&[String]>,
    ) -> Result<(Vec<LogRow>, bool), StoreError>;

    /// The changes with these hashes that this store has, in log order;
    /// with `scope`, only those a peer of these FMPs may read (the others
    /// are answered as if this store did not have them).
    fn changes_by_hash(
        &self,
        hashes: &[Hash],
        scope: Option<&[String]>,
    ) -> Result<Vec<LogRow>, StoreError>;

    /// This store's change keys `(time, hash)` in that order, or with
    /// `scope` those a peer of these FMPs may read (as
    /// [`LogReads::changes_by_hash`] serves them): the set reconciliation's.
    fn change_keys(&self, scope: Option<&[String]>) -> Result<Vec<(i64, Hash)>, StoreError>;

    /// A stored bundle by id.
    fn bundle(&self, id: &Hash) -> Result<Option<StoredBundle>, StoreError>;

    /// True if this store holds changes of its own not sealed in a bundle
    /// yet (a request read on a snapshot cannot carry them).
    fn unsealed(&self) -> Result<bool, StoreError>;

    /// The certificate stored for a device (as its issuer encoded it), if any.
    fn certificate(&self, device: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    /// The progress recorded with `peer`, `None` if there is none.
    fn peer_cursor(&self, peer: Uuid) -> Result<Option<PeerCursor>, StoreError>;

    /// The document (kind, id) a stored or pending change belongs to.
    fn change_document(&self, hash: &Hash) -> Result<Option<(String, String)>, StoreError>;

    /// True if the change with this hash is in the log.
    fn logged(&self, hash: &Hash) -> Result<bool, StoreError>;

    /// A document's kind and saved automerge bytes, if it is stored.
    fn document(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError>;

    /// Where document `id` stands in this snapshot (see [`DocStamp`]).
    fn document_stamp(&self, id: &str) -> Result<DocStamp, StoreError>;

    /// The position of the last change to the registry or a form (`None`:
    /// none logged): equal in two snapshots, they hold the same reference.
    fn reference_stamp(&self) -> Result<Option<i64>, StoreError>;

    /// The changes of document `doc_id` waiting in `pending` (a row whose
    /// author or bundle does not read is skipped).
    fn pending_for(&self, doc_id: &str) -> Result<Vec<PendingChange>, StoreError>;

    /// Counts what waits in `pending`, and why.
    fn waiting(&self) -> Result<Waiting, StoreError>;
}

/// The change log as sync sees it: rows after a cursor, by hash, bundles, cursors, certificates, pending changes. (writes; `store/log.rs`).
pub trait LogWrites {
    /// Stores a device's certificate (as its issuer encoded it), replacing
    /// the one stored for it; which one to keep is the caller's rule.
    fn put_certificate(&self, device: Uuid, cert: &[u8]) -> Result<(), StoreError>;

    /// Stores a bundle (a no-op if one with its id is there).
    fn store_bundle(&self, b: &StoredBundle) -> Result<(), StoreError>;

    /// Seals this device's changes not covered by a bundle yet into bundles
    /// of at most `max` hashes, one FMP's submissions per bundle (and the
    /// reference documents apart), so that a bundle served to a peer of one
    /// FMP names no change of another. A bundle also closes before its
    /// hashes (32 bytes each) and its largest change (raw bytes) would pass
    /// `budget`, so that any of its changes goes in one message with it
    /// (a change alone past the budget gets a bundle of its own). `sign`
    /// makes each bundle of a list of hashes in log order; it is stored and
    /// its changes marked with its id. Returns how many bundles were made.
    fn seal(
        &self,
        max: usize,
        budget: usize,
        sign: impl FnMut(Vec<Hash>) -> StoredBundle,
    ) -> Result<usize, StoreError>;

    /// Records progress with `peer` (now): `pulled` replaces the stored
    /// one, `acked` only raises it; `None` keeps what is stored (0 for a
    /// new row).
    fn advance_peer(
        &self,
        peer: Uuid,
        pulled: Option<i64>,
        acked: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Forgets the progress with `peer`.
    fn forget_peer(&self, peer: Uuid) -> Result<(), StoreError>;

    /// Holds a received change back in `pending` (a no-op if it is there).
    fn hold(&self, p: &PendingChange) -> Result<(), StoreError>;

    /// Takes a change out of `pending` (it applied, or is refused for good).
    fn release(&self, hash: &Hash) -> Result<(), StoreError>;

    /// Saves a document, new or stored, with its changes: its new automerge
    /// bytes, the changes appended to the log (with their origin and
    /// bundle; a received one already logged is skipped, one made here
    /// already logged is an error), and for a submission its materialized
    /// row from `state` (`invalid`: the state fails validation, flagged for
    /// review), in this transaction. Returns how many changes were new.
    fn save_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError>;

    /// Saves a new document as [`LogWrites::save_document`] does; a document
    /// with its id already stored is refused as [`StoreError::Duplicate`]
    /// (`id`), with nothing written (a record's id taken).
    fn insert_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError>;
}

/// The submissions as the store's own reads show them: listed rows,
/// a submission's history, the records a review sent back. (reads; `store/query.rs`).
pub trait RecordReads {
    /// The materialized rows `filter` selects, ordered by observation time
    /// then id, each with whether it has conflicting values (its
    /// `conflicts` list is left empty: the document holds them).
    fn list_rows(&self, filter: &Filter) -> Result<Vec<(StoredSubmission, bool)>, StoreError>;

    /// The changes logged for document `id`, in log order, each with its
    /// bytes; `author_name` is this store's own name for its own changes,
    /// else the hub it joined or a device enrolled here, where known;
    /// `fields` is left empty (the document tells them). Empty: no such document.
    fn history_rows(&self, id: Uuid) -> Result<Vec<(HistoryEntry, Vec<u8>)>, StoreError>;

    /// Every live submission whose review is `has_issues` or `rejected`,
    /// oldest observation first, whoever recorded it.
    fn to_correct_rows(&self) -> Result<Vec<ToCorrect>, StoreError>;
}

/// Progress with each sync peer, as `fmp status` shows it. (reads; `store/peers.rs`).
pub trait PeerReads {
    /// Every peer this store synced with, the most recent first, with its
    /// name where known and how many changes it may receive and has not
    /// acknowledged.
    fn peer_progress(&self) -> Result<Vec<PeerProgress>, StoreError>;

    /// How many changes of the log were not received from `peer` (`None`:
    /// how many were made here).
    fn never_sent_to(&self, peer: Option<Uuid>) -> Result<i64, StoreError>;
}

/// The store's settings: the FMPs it is enrolled for, and keyed values
/// other areas keep (a link's learnt size, a peer's refusal, HQ's pin). (reads; `store/settings.rs`).
pub trait SettingsReads {
    /// The FMPs this store is enrolled for; `None`: not restricted.
    fn enrolled_fmps(&self) -> Result<Option<Vec<String>>, StoreError>;

    /// The value kept under `key` (`None`: none). Keys are their callers'
    /// own (`link_max_bytes:PEER`, `refused_by:PEER`, `hq_authority`).
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
}

/// The store's settings: the FMPs it is enrolled for, and keyed values
/// other areas keep (a link's learnt size, a peer's refusal, HQ's pin). (writes; `store/settings.rs`).
pub trait SettingsWrites {
    /// Restricts this store to these FMPs (`None`: lifts the restriction).
    fn set_enrolled_fmps(&self, fmps: Option<&[String]>) -> Result<(), StoreError>;

    /// Keeps `value` under `key`, replacing what was kept there.
    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Forgets the value kept under `key` (a no-op if there is none).
    fn delete_setting(&self, key: &str) -> Result<(), StoreError>;
}

/// Restore facts: actor epoch, restored marks, re-offers. (reads; `store/restore.rs`).
pub trait RestoreReads {
    /// The actor epoch this store writes under (0 if never restored).
    fn actor_epoch(&self) -> Result<u32, StoreError>;

    /// What this store knows of its restore, for `fmp status`.
    fn restore_state(&self) -> Result<RestoreState, StoreError>;

    /// True if this store knows it was restored and has not yet completed
    /// a sync, as a client, since: its requests ask for its own changes back.
    fn wants_own_back(&self) -> Result<bool, StoreError>;

    /// True if a restore was detected and no sync completed since.
    fn needs_heal(&self) -> Result<bool, StoreError>;

    /// True if this store was restored after a peer's cursor row was last
    /// written (`synced_at`, ms; `None`: no row): the peer has not synced
    /// with it since, and its pull cursor may point past positions given
    /// to other changes since.
    fn before_restore(&self, synced_at: Option<i64>) -> Result<bool, StoreError>;

    /// True if this store's log holds a change received from `peer`: a peer
    /// with no cursor row that pushes from past 0 either lost its cursor or
    /// met a copy of this store taken before its first sync.
    fn holds_from(&self, peer: Uuid) -> Result<bool, StoreError>;

    /// True if this store's log holds a change it received from any peer:
    /// with no cursor for a peer, the two may share data (a lost peer
    /// table, a restored copy), and a sync reconciles rather than re-push.
    fn holds_received(&self) -> Result<bool, StoreError>;

    /// Up to where this store's log is offered again whole to `peer` (0: not).
    fn reoffer_until(&self, peer: Uuid) -> Result<i64, StoreError>;
}

/// Restore facts: actor epoch, restored marks, re-offers. (writes; `store/restore.rs`).
pub trait RestoreWrites {
    /// Records that this store was restored from an older copy (a peer
    /// holds its log up to `mark`, or its cursors run past this store's
    /// log): a new detection moves the store to a fresh actor epoch. True
    /// if it was new.
    fn mark_restored(&self, mark: Option<i64>) -> Result<bool, StoreError>;

    /// A sync this store ran as a client completed while it wanted its own
    /// changes back: it has them; the restore is healed.
    fn mark_taken_back(&self) -> Result<(), StoreError>;

    /// Records that a sync completed after a detected restore (a no-op if
    /// none is healing); moves to a fresh epoch again if a change taken
    /// back carries the current one.
    fn mark_healed(&self) -> Result<(), StoreError>;

    /// Offers this store's log to `peer` again whole up to `upto`.
    fn set_reoffer(&self, peer: Uuid, upto: i64) -> Result<(), StoreError>;

    /// Sets the progress recorded with `peer` to exactly these values,
    /// lower ones included, keeping its last sync time: after a restore,
    /// the cursors that ran past the restored log are moved back.
    fn reset_peer_cursor(&self, peer: Uuid, pulled: i64, acked: i64) -> Result<(), StoreError>;
}

/// The store's role and the checks of received states. (reads; `store/roles.rs`).
pub trait RoleReads {
    /// The role this store was enrolled with; `None`: not set.
    fn role(&self) -> Result<Option<Role>, StoreError>;

    /// The device whose change first brought submission `id` into this
    /// store (its record): the owner an enumerator's rights are judged by.
    fn record_author(&self, id: Uuid) -> Result<Option<Uuid>, StoreError>;

    /// The registry and forms in force in this snapshot (its synced
    /// documents, else the built-in ones): what received submissions are
    /// validated against, read inside the write that applies them.
    fn reference(&self) -> Result<(Registry, Forms), StoreError>;

    /// Number of submissions (not deleted) flagged for review.
    fn flagged(&self) -> Result<i64, StoreError>;
}

/// The store's role. (writes; `store/roles.rs`).
pub trait RoleWrites {
    /// Sets the role this store was enrolled with (`None`: clears it).
    fn set_role(&self, role: Option<Role>) -> Result<(), StoreError>;
}

/// HQ's identity pinned at join; a document's changes. (reads; `store/authority.rs`).
pub trait AuthorityReads {
    /// HQ's identity pinned at join (`None`: no pin).
    fn pinned_authority(&self) -> Result<Option<Authority>, StoreError>;

    /// Every change of document `doc_id` in this store's log, in log order.
    fn doc_changes(&self, doc_id: &str) -> Result<Vec<DocChange>, StoreError>;
}

/// The hub's enrolled devices, codes, upstream, trust rows and quarantine. (reads; `store/hub.rs`).
pub trait HubReads {
    /// An enrollment code, by the SHA-256 of its canonical form.
    fn enrollment_code(&self, hash: &[u8]) -> Result<Option<CodeRow>, StoreError>;

    /// The name this store knows a device by (itself, the hub it joined, a
    /// device enrolled here), if it knows one; `device` as stored (UUID text).
    fn device_name(&self, device: &str) -> Result<Option<String>, StoreError>;

    /// The codes not used yet that are still valid at `now_ms` (ms since
    /// the epoch), oldest first.
    fn unused_codes(&self, now_ms: i64) -> Result<Vec<UnusedCode>, StoreError>;

    /// A device enrolled here (revoked or not), if it is.
    fn enrolled_device(&self, device: Uuid) -> Result<Option<TrustRow>, StoreError>;

    /// The version of the trust rows (see [`TrustVersion`]): a hub that
    /// keeps its trust in memory reads the rows again only when it changed.
    fn trust_version(&self) -> Result<TrustVersion, StoreError>;

    /// Every device enrolled here whose id parses, revoked ones included.
    fn trust_rows(&self) -> Result<Vec<TrustRow>, StoreError>;

    /// Every device enrolled here, oldest first.
    fn enrolled_devices(&self) -> Result<Vec<EnrolledDevice>, StoreError>;

    /// The hub this store joined, if any.
    fn upstream(&self) -> Result<Option<Upstream>, StoreError>;

    /// HQ as this store knows it: the identity pinned at join, else `None`
    /// if it joined a hub (it pinned none yet), else itself (it joined no
    /// hub: it is HQ).
    fn hq_identity(&self) -> Result<Option<Authority>, StoreError>;

    /// The changes set aside, in the order they were, with what decides
    /// whether they go again (the record's FMP now, edits since).
    fn quarantined(&self) -> Result<Vec<QuarantineEntry>, StoreError>;
}

/// The hub's enrolled devices, codes, upstream, trust rows and quarantine. (writes; `store/hub.rs`).
pub trait HubWrites {
    /// Stores the hash of a new enrollment code granting `fmps` (and, with
    /// `may_enroll`, the right to enroll others), valid until `expires_at`
    /// (ms since the epoch); a code with this hash already stored is an error.
    fn add_enrollment_code(
        &self,
        hash: &[u8],
        fmps: &[String],
        may_enroll: bool,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Deletes an unused enrollment code (by its hash): a join with it is
    /// then refused as an unknown code. False if no unused code has it.
    fn cancel_enrollment_code(&self, hash: &[u8]) -> Result<bool, StoreError>;

    /// Marks an enrollment code (by its hash) used by `device`.
    fn use_enrollment_code(&self, hash: &[u8], device: Uuid) -> Result<(), StoreError>;

    /// Enrolls a device, or re-enrolls one with the same key that is not
    /// revoked (new FMPs, name); a device id stays bound to its first key and
    /// a revoked device stays revoked (see [`EnrollmentWrites::reinstate_device`]).
    fn enroll_device(
        &self,
        device: Uuid,
        name: &str,
        public_key: &[u8],
        fmps: Option<&[String]>,
        may_enroll: bool,
    ) -> Result<(), StoreError>;

    /// Revokes a device (now); the number revoked (0 if it is unknown or
    /// revoked already).
    fn revoke_device(&self, device: Uuid) -> Result<usize, StoreError>;

    /// Notes a device's successful sync (now).
    fn note_sync(&self, device: Uuid) -> Result<(), StoreError>;

    /// Records the hub joined (replacing any previous one).
    fn set_upstream(&self, up: &Upstream) -> Result<(), StoreError>;

    /// Sets changes aside that `peer` refused, each with its reason
    /// (replacing an earlier refusal of the same change).
    fn quarantine<'s>(
        &self,
        peer: Uuid,
        refused: impl IntoIterator<Item = ([u8; 32], &'s str)>,
    ) -> Result<(), StoreError>;

    /// Takes changes out of quarantine (the hub accepted them).
    fn unquarantine(&self, hashes: &[[u8; 32]]) -> Result<(), StoreError>;
}

/// A hub's enrollment facts (upstream grant, device names). (reads; `store/enrollment.rs`).
pub trait EnrollmentReads {
    /// Whether the hub this store joined granted it enrollment; `None` if
    /// this store never recorded it (no upstream, or joined before it was kept).
    fn upstream_may_enroll(&self) -> Result<Option<bool>, StoreError>;

    /// The devices enrolled here whose id or name is `who`, oldest first.
    fn devices_matching(&self, who: &str) -> Result<Vec<DeviceMatch>, StoreError>;

    /// The addresses `fmp serve` last told phones to use (empty if it never
    /// served), for `enroll-code` to print beside a code.
    fn served_at(&self) -> Result<Vec<String>, StoreError>;

    /// The active (not revoked) devices other than `except` whose name
    /// compares equal to `name` (see [`crate::names::name_key`]).
    fn active_named(&self, name: &str, except: Uuid) -> Result<Vec<DeviceMatch>, StoreError>;
}

/// A hub's enrollment facts (upstream grant, device names). (writes; `store/enrollment.rs`).
pub trait EnrollmentWrites {
    /// Records whether the hub this store joined granted it enrollment.
    fn set_upstream_may_enroll(&self, may_enroll: bool) -> Result<(), StoreError>;

    /// Records the addresses `fmp serve` tells phones to use (replacing
    /// the ones before).
    fn set_served_at(&self, urls: &[String]) -> Result<(), StoreError>;

    /// Lifts the revocation of a device (its key and FMPs stay as they
    /// were); the number reinstated (0 if it is unknown or not revoked).
    fn reinstate_device(&self, device: Uuid) -> Result<usize, StoreError>;
}

/// The hub's replay cache. (reads; `store/nonces.rs`).
pub trait NonceReads {
    /// True if `device` already used `nonce` in a request remembered here.
    fn nonce_seen(&self, device: Uuid, nonce: &str) -> Result<bool, StoreError>;
}

/// The hub's replay cache. (writes; `store/nonces.rs`).
pub trait NonceWrites {
    /// Remembers a request's (device, nonce, signed time in seconds since
    /// the epoch) and forgets the nonces signed before `forget_before`;
    /// false if that nonce was remembered already (a replay).
    fn remember_nonce(
        &self,
        device: Uuid,
        nonce: &str,
        time: i64,
        forget_before: i64,
    ) -> Result<bool, StoreError>;
}

/// The report's aggregates and the exports' rows. (reads; `store/report.rs`).
pub trait ReportReads {
    /// The monthly report's aggregates over `month` and `previous`
    /// (`YYYY-MM`), of the submissions `counted` selects, at every FMP.
    fn report_aggregates(
        &self,
        month: &str,
        previous: &str,
        counted: Counted,
    ) -> Result<ReportAggregates, StoreError>;

    /// Live (not deleted) submissions per month (`YYYY-MM`), oldest first.
    fn records_by_month(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Hands each submission `sel` selects to `f`, ordered by observation
    /// time then id, one row at a time (streamed from one query: memory
    /// does not grow with the number of rows); returns how many.
    fn for_each_export_row<E>(
        &self,
        sel: &ExportSelection,
        f: impl FnMut(&ExportRow) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>;
}

/// A month's records by review status. (reads; `store/counts.rs`).
pub trait CountReads {
    /// The counts of `month` (`YYYY-MM`) at the FMPs `keep` accepts.
    fn month_counts(
        &self,
        month: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<MonthCounts, StoreError>;
}
