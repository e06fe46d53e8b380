//! The change log as sync sees it: the log's end, rows after a cursor or by
//! hash within a peer's scope, signed bundles (stored, loaded, sealed),
//! per-peer cursors, reconciliation keys, device certificates, pending
//! (held) changes and what waits among them, and the write of a received
//! document. Also the store's one promise, written once for changes made
//! here and received alike: `save_document` writes the document, appends
//! its changes to `changes` and rewrites the materialized row.
//!
//! Certificates and bundles are stored as their signers made them: their
//! encoding and signatures are fmp-sync's; this module keeps the bytes.

use crate::store::ops::*;
use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{StoreError, access::SqlReader, access::SqlWriter, materialize};
use crate::doc::Op;
use crate::model::StoredSubmission;

/// A change's hash (SHA-256 of its automerge chunk), or a bundle's id.
pub type Hash = [u8; 32];

/// One change of the log, as a peer is served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Its position in this store's log.
    pub seq: i64,
    /// Its hash.
    pub hash: Hash,
    /// Its document's kind (`submission`, `registry`, `form`…).
    pub doc_kind: String,
    /// Its document's id.
    pub doc_id: String,
    /// The automerge change.
    pub bytes: Vec<u8>,
    /// The bundle that signs it (`None`: not sealed yet).
    pub bundle: Option<Hash>,
    /// A submission's record (its first change).
    pub first: bool,
    /// The receiver holds (or gets earlier in the same rows) this change's
    /// first dependency, so the document need not be named.
    pub dep_known: bool,
}

impl LogRow {
    /// The submission it changes, if its document is a submission whose id
    /// reads as a UUID (as written: the same text back).
    pub fn submission_id(&self) -> Option<Uuid> {
        submission_id(&self.doc_kind, &self.doc_id)
    }
}

fn submission_id(kind: &str, id: &str) -> Option<Uuid> {
    match (kind, Uuid::parse_str(id)) {
        ("submission", Ok(u)) if u.to_string() == id => Some(u),
        _ => None,
    }
}

/// A signed bundle as stored: one author's list of change hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    /// Its id (the hash of what it signs).
    pub id: Hash,
    /// The signing device.
    pub author: Uuid,
    /// The change hashes, in signed order.
    pub hashes: Vec<Hash>,
    /// The signature.
    pub sig: Vec<u8>,
}

/// The progress recorded with one peer (`peers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCursor {
    /// How far into the peer's log this store has consumed.
    pub pulled: i64,
    /// How far into this store's log the peer has acknowledged.
    pub acked: i64,
    /// When the row was last written (ms; 0: never recorded).
    pub synced_at: i64,
}

/// A received change held back (`pending`): its dependencies are missing,
/// or it was refused for scope or validity and may apply later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// Its hash.
    pub hash: Hash,
    /// Its document's id.
    pub doc_id: String,
    /// Its document's kind.
    pub kind: String,
    /// Its author (the bundle's signer).
    pub author: Uuid,
    /// The bundle that signs it.
    pub bundle: Hash,
    /// The peer it came from.
    pub origin: Option<Uuid>,
    /// The automerge change.
    pub bytes: Vec<u8>,
}

/// What a change's hash costs in a bundle's list, in bytes.
const HASH_BYTES: usize = 32;

/// A change to append to the log.
#[derive(Debug, Clone, Copy)]
pub struct NewChange<'a> {
    /// Its hash.
    pub hash: Hash,
    /// The device that made it.
    pub author: Uuid,
    /// When, by its author's clock (ms).
    pub time: i64,
    /// What it did (`record`, `edit`…; the change's message).
    pub op: &'a str,
    /// The automerge change.
    pub bytes: &'a [u8],
    /// The peer it was received from (`None`: made here).
    pub origin: Option<Uuid>,
    /// The bundle that signs it (`None`: made here, sealed at sync time).
    pub bundle: Option<Hash>,
}

/// Where a document stands in a snapshot: its last change in the log and
/// what of it waits in `pending`. Two snapshots with equal stamps hold the
/// same document, the same record author and the same held changes for it,
/// so what was decided on one may be written on the other (an apply plans
/// on a reader and commits in a short write).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocStamp {
    /// The `seq` of its last change in the log (`None`: none logged).
    pub last_seq: Option<i64>,
    /// The hashes of its changes in `pending`, sorted.
    pub pending: Vec<Hash>,
}

/// What waits in a store's `pending` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Waiting {
    /// Changes in `pending`.
    pub total: i64,
    /// Of those, changes whose dependencies are all applied here: held
    /// back because their author may not write the record as it would be
    /// (refused for scope and reported to the sender; an edit bringing the
    /// record into the author's FMPs releases them), or because they leave
    /// a submission that breaks a rule (an edit correcting it releases them).
    pub held_for_scope: i64,
    /// Of those, changes that depend on another waiting change (a held one
    /// or one still missing its dependencies).
    pub behind_waiting: i64,
    /// Of those, changes with a dependency this store never received.
    pub missing_dependency: i64,
}

const SELECT: &str = "SELECT c.seq, c.hash, c.doc_id, d.kind, c.bytes, c.bundle, c.op
     FROM changes c JOIN documents d ON d.id = c.doc_id";

fn log_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
    let kind: String = r.get(3)?;
    let op: String = r.get(6)?;
    Ok(LogRow {
        seq: r.get(0)?,
        hash: r.get(1)?,
        doc_id: r.get(2)?,
        first: kind == "submission" && op == Op::Record.as_str(),
        doc_kind: kind,
        bytes: r.get(4)?,
        bundle: r.get(5)?,
        dep_known: false,
    })
}

/// SQL condition: change `c` of document `d` may be read by a peer whose
/// FMPs are the JSON list in parameter `?n` (NULL: everything): documents
/// that are not submissions, and submissions of those FMPs as materialized
/// here now.
fn in_scope(n: usize) -> String {
    format!(
        "(?{n} IS NULL OR d.kind <> 'submission' OR EXISTS (SELECT 1 FROM submissions s
           WHERE s.id = c.doc_id AND s.fmp IN (SELECT value FROM json_each(?{n}))))"
    )
}

/// A scope as the JSON parameter of [`in_scope`].
fn scope_param(fmps: Option<&[String]>) -> Option<String> {
    fmps.map(|f| serde_json::Value::from(f.to_vec()).to_string())
}

/// The first dependency of an automerge change, if it has one.
fn first_dep(bytes: &[u8]) -> Option<Hash> {
    automerge::Change::try_from(bytes)
        .ok()
        .and_then(|c| c.deps().first().map(|d| d.0))
}

/// A text column read as a UUID (an error of the row if it is not one).
fn uuid_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let s: String = r.get(i)?;
    Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl LogReads for SqlReader<'_> {
    fn log_end(&self) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM changes")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(self.sql())
    }

    fn changes_after(
        &self,
        after: i64,
        not_from: Uuid,
        raw_budget: usize,
        scope: Option<&[String]>,
    ) -> Result<(Vec<LogRow>, bool), StoreError> {
        let sql = self.sql();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{SELECT} WHERE c.seq > ?1 AND (c.origin IS NULL OR c.origin <> ?2)
                   AND {}
                 ORDER BY c.seq",
                in_scope(3)
            ))
            .map_err(&sql)?;
        let peer = not_from.to_string();
        let mut rows = stmt
            .query(params![after, peer, scope_param(scope)])
            .map_err(&sql)?;
        let mut batch = Batch::new(after, &peer, scope, raw_budget);
        let mut dep_stmt = self
            .conn
            .prepare_cached("SELECT seq, origin, author FROM changes WHERE hash = ?1")
            .map_err(&sql)?;
        while let Some(r) = rows.next().map_err(&sql)? {
            if batch.full() {
                return Ok((batch.rows, false));
            }
            let r = log_row(r).map_err(&sql)?;
            batch.push(self, r, |dep| {
                dep_stmt
                    .query_row([dep], |x| {
                        let seq: i64 = x.get(0)?;
                        let origin: Option<String> = x.get(1)?;
                        let author: String = x.get(2)?;
                        Ok(seq <= after
                            || origin.as_deref() == Some(peer.as_str())
                            || author == peer)
                    })
                    .optional()
                    .map_err(&sql)
                    .map(|k| k.unwrap_or(false))
            })?;
        }
        Ok((batch.rows, true))
    }

    fn changes_by_hash(
        &self,
        hashes: &[Hash],
        scope: Option<&[String]>,
    ) -> Result<Vec<LogRow>, StoreError> {
        let sql = self.sql();
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT} WHERE c.hash = ?1 AND {}", in_scope(2)))
            .map_err(&sql)?;
        let scope = scope_param(scope);
        let mut out = Vec::new();
        for h in hashes {
            if let Some(r) = stmt
                .query_row(params![h, scope], log_row)
                .optional()
                .map_err(&sql)?
            {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    fn unsealed(&self) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM changes WHERE bundle IS NULL AND author = ?1)",
            )
            .and_then(|mut s| {
                s.query_row([self.store.identity.device_id.to_string()], |r| r.get(0))
            })
            .map_err(self.sql())
    }

    fn change_keys(&self, scope: Option<&[String]>) -> Result<Vec<(i64, Hash)>, StoreError> {
        let sql = self.sql();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT c.time, c.hash FROM changes c JOIN documents d ON d.id = c.doc_id
                 WHERE {} ORDER BY c.time, c.hash",
                in_scope(1)
            ))
            .map_err(&sql)?;
        let rows = stmt
            .query_map([scope_param(scope)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(&sql)?;
        let mut out = Vec::new();
        for r in rows {
            let (t, h) = r.map_err(&sql)?;
            // A hash of another length is no change a peer could name.
            if let Ok(h) = Hash::try_from(h.as_slice()) {
                out.push((t, h));
            }
        }
        Ok(out)
    }

    fn bundle(&self, id: &Hash) -> Result<Option<StoredBundle>, StoreError> {
        let row: Option<(Uuid, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT author, hashes, sig FROM bundles WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |r| Ok((uuid_at(r, 0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(self.sql())?;
        let Some((author, hashes, sig)) = row else {
            return Ok(None);
        };
        let hashes = hashes
            .chunks_exact(32)
            .filter_map(|h| Hash::try_from(h).ok())
            .collect();
        Ok(Some(StoredBundle {
            id: *id,
            author,
            hashes,
            sig,
        }))
    }

    fn certificate(&self, device: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT cert FROM devices WHERE device = ?1")
            .and_then(|mut s| s.query_row([device.to_string()], |r| r.get(0)).optional())
            .map_err(self.sql())
    }

    fn peer_cursor(&self, peer: Uuid) -> Result<Option<PeerCursor>, StoreError> {
        self.conn
            .prepare_cached("SELECT pulled, acked, synced_at FROM peers WHERE peer = ?1")
            .and_then(|mut s| {
                s.query_row([peer.to_string()], |r| {
                    Ok(PeerCursor {
                        pulled: r.get(0)?,
                        acked: r.get(1)?,
                        synced_at: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    })
                })
                .optional()
            })
            .map_err(self.sql())
    }

    fn change_document(&self, hash: &Hash) -> Result<Option<(String, String)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT d.kind, c.doc_id FROM changes c JOIN documents d ON d.id = c.doc_id WHERE c.hash = ?1
                 UNION ALL SELECT kind, doc_id FROM pending WHERE hash = ?1 LIMIT 1",
            )
            .and_then(|mut s| s.query_row([hash], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(self.sql())
    }

    fn logged(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM changes WHERE hash = ?1)")
            .and_then(|mut s| s.query_row([hash], |r| r.get(0)))
            .map_err(self.sql())
    }

    fn document(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.conn
            .prepare_cached(concat!(
                "SELECT d.kind, ",
                doc_data!(),
                " FROM documents d WHERE d.id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(self.sql())
    }

    fn document_stamp(&self, id: &str) -> Result<DocStamp, StoreError> {
        let last_seq = self
            .conn
            .prepare_cached("SELECT max(seq) FROM changes WHERE doc_id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .map_err(self.sql())?;
        let pending: Vec<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM pending WHERE doc_id = ?1 ORDER BY hash")
            .and_then(|mut s| {
                s.query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(self.sql())?;
        Ok(DocStamp {
            last_seq,
            pending: pending
                .iter()
                .filter_map(|h| Hash::try_from(h.as_slice()).ok())
                .collect(),
        })
    }

    fn reference_stamp(&self) -> Result<Option<i64>, StoreError> {
        // Both halves walk the `changes_doc` index: the registry's one
        // document, then the range of form ids (`form:…`).
        self.conn
            .prepare_cached(
                "SELECT max(s) FROM (
                    SELECT max(seq) AS s FROM changes WHERE doc_id = ?1
                    UNION ALL
                    SELECT max(seq) FROM changes WHERE doc_id >= 'form:' AND doc_id < 'form;')",
            )
            .and_then(|mut s| s.query_row([crate::refdoc::REGISTRY_ID], |r| r.get(0)))
            .map_err(self.sql())
    }

    fn pending_for(&self, doc_id: &str) -> Result<Vec<PendingChange>, StoreError> {
        type Raw = (Vec<u8>, String, Vec<u8>, Option<String>, String, Vec<u8>);
        let rows: Vec<Raw> = self
            .conn
            .prepare_cached(
                "SELECT hash, author, bundle, origin, kind, bytes FROM pending WHERE doc_id = ?1",
            )
            .and_then(|mut s| {
                s.query_map([doc_id], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .map_err(self.sql())?;
        Ok(rows
            .into_iter()
            .filter_map(|(hash, author, bundle, origin, kind, bytes)| {
                Some(PendingChange {
                    hash: Hash::try_from(hash.as_slice()).ok()?,
                    doc_id: doc_id.to_string(),
                    kind,
                    author: Uuid::parse_str(&author).ok()?,
                    bundle: Hash::try_from(bundle.as_slice()).ok()?,
                    origin: origin.and_then(|o| Uuid::parse_str(&o).ok()),
                    bytes,
                })
            })
            .collect())
    }

    fn waiting(&self) -> Result<Waiting, StoreError> {
        let sql = self.sql();
        let rows: Vec<Vec<u8>> = self
            .conn
            .prepare("SELECT bytes FROM pending")
            .and_then(|mut s| {
                s.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(&sql)?;
        let mut in_changes = self
            .conn
            .prepare_cached("SELECT 1 FROM changes WHERE hash = ?1")
            .map_err(&sql)?;
        let mut in_pending = self
            .conn
            .prepare_cached("SELECT 1 FROM pending WHERE hash = ?1")
            .map_err(&sql)?;
        waiting_of(
            rows,
            |d| in_changes.exists([d]).map_err(&sql),
            |d| in_pending.exists([d]).map_err(&sql),
        )
    }
}

/// `waiting`'s tally on either backend: each held change (its bytes)
/// counted by why it waits: a dependency neither `logged` nor `pending`
/// (or bytes that do not read), one still pending, else its scope.
pub(crate) fn waiting_of(
    rows: impl IntoIterator<Item = Vec<u8>>,
    mut logged: impl FnMut(Hash) -> Result<bool, StoreError>,
    mut pending: impl FnMut(Hash) -> Result<bool, StoreError>,
) -> Result<Waiting, StoreError> {
    let mut out = Waiting::default();
    for bytes in rows {
        out.total += 1;
        let Ok(change) = automerge::Change::try_from(bytes.as_slice()) else {
            out.missing_dependency += 1;
            continue;
        };
        let (mut missing, mut behind) = (false, false);
        for d in change.deps() {
            if logged(d.0)? {
                continue;
            }
            if pending(d.0)? {
                behind = true;
            } else {
                missing = true;
            }
        }
        if missing {
            out.missing_dependency += 1;
        } else if behind {
            out.behind_waiting += 1;
        } else {
            out.held_for_scope += 1;
        }
    }
    Ok(out)
}
/// `changes_after`'s answer as it grows, on either backend: each row in
/// log order after the changes of its submission a scoped peer may have
/// missed ([`moved_in_history`]), marked `dep_known` when its first
/// dependency is in the answer or, by the backend's `held`, already with
/// the peer; until about `raw_budget` bytes.
pub(crate) struct Batch<'a> {
    after: i64,
    peer: &'a str,
    scope: Option<&'a [String]>,
    raw_budget: usize,
    histories: HashSet<String>,
    seen: HashSet<Hash>,
    size: usize,
    /// The rows so far, in the order to send.
    pub rows: Vec<LogRow>,
}

impl<'a> Batch<'a> {
    /// An empty answer for `peer` after `after`, within `scope`.
    pub(crate) fn new(
        after: i64,
        peer: &'a str,
        scope: Option<&'a [String]>,
        raw_budget: usize,
    ) -> Self {
        Batch {
            after,
            peer,
            scope,
            raw_budget,
            histories: HashSet::new(),
            seen: HashSet::new(),
            size: 0,
            rows: Vec::new(),
        }
    }

    /// Whether the byte budget is spent (no more rows are to be added).
    pub(crate) fn full(&self) -> bool {
        self.size >= self.raw_budget
    }

    /// Adds `r` (with, first, what its submission's history adds);
    /// `held(dep)`: whether the peer already has change `dep`.
    pub(crate) fn push(
        &mut self,
        reads: &(impl LogReads + AuthorityReads),
        mut r: LogRow,
        held: impl FnOnce(Hash) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let submission = r.submission_id().is_some();
        if let Some(scope) = self.scope
            && submission
            && !r.first
            && self.histories.insert(r.doc_id.clone())
        {
            for h in moved_in_history(reads, &r.doc_id, self.after, self.peer, scope, &self.seen)? {
                self.add(h);
            }
        }
        if submission
            && !r.first
            && let Some(dep) = first_dep(&r.bytes)
        {
            r.dep_known = self.seen.contains(&dep) || held(dep)?;
        }
        self.add(r);
        Ok(())
    }

    fn add(&mut self, r: LogRow) {
        self.seen.insert(r.hash);
        self.size += r.bytes.len() + 40;
        self.rows.push(r);
    }
}

/// The changes of submission `doc_id` up to `after` that `peer` neither
/// made nor sent here, if the submission ever had an FMP outside `scope`
/// and was moved after `after` (then the peer may not have been served
/// them); in log order, each marked `dep_known` when it follows one in
/// `seen` or in the list. The same on either backend, over its reads.
pub(crate) fn moved_in_history(
    r: &(impl LogReads + AuthorityReads),
    doc_id: &str,
    after: i64,
    peer: &str,
    scope: &[String],
    seen: &HashSet<Hash>,
) -> Result<Vec<LogRow>, StoreError> {
    let all = r.doc_changes(doc_id)?;
    let missing: Vec<Hash> = all
        .iter()
        .filter(|c| c.seq <= after && c.author != peer && c.origin.as_deref() != Some(peer))
        .map(|c| c.hash)
        .filter(|h| !seen.contains(h))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    // Only a submission that had an FMP outside the scope, and was moved
    // (its FMP written) after the cursor, may have been skipped before
    // it: a peer lacking one of its changes behind the cursor was not
    // served it while it was elsewhere, and it came into the scope by a
    // later move.
    let ever = super::authority::fmps_ever(all.iter().map(|c| c.bytes.as_slice()));
    let moved_since = all
        .iter()
        .filter(|c| c.seq > after)
        .any(|c| !super::authority::fmps_ever([c.bytes.as_slice()]).is_empty());
    if !moved_since || ever.iter().all(|f| scope.contains(f)) {
        return Ok(Vec::new());
    }
    let mut rows = r.changes_by_hash(&missing, None)?;
    let mut known: HashSet<Hash> = seen.clone();
    for r in &mut rows {
        if !r.first {
            r.dep_known = first_dep(&r.bytes).is_some_and(|d| known.contains(&d));
        }
        known.insert(r.hash);
    }
    Ok(rows)
}

impl LogWrites for SqlWriter<'_> {
    fn put_certificate(&self, device: Uuid, cert: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO devices (device, cert) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![device.to_string(), cert]))
            .map_err(self.sql())?;
        Ok(())
    }

    fn store_bundle(&self, b: &StoredBundle) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO bundles (id, author, hashes, sig) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    b.id,
                    b.author.to_string(),
                    b.hashes.concat(),
                    b.sig
                ])
            })
            .map_err(self.sql())?;
        Ok(())
    }

    fn seal(
        &self,
        max: usize,
        budget: usize,
        mut sign: impl FnMut(Vec<Hash>) -> StoredBundle,
    ) -> Result<usize, StoreError> {
        let sql = self.sql();
        let rows: Vec<(i64, Hash, String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT c.seq, c.hash, coalesce(s.fmp, ''), length(c.bytes) FROM changes c
                 LEFT JOIN submissions s ON s.id = c.doc_id
                 WHERE c.bundle IS NULL AND c.author = ?1 ORDER BY c.seq",
            )
            .and_then(|mut s| {
                s.query_map([self.store.identity.device_id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .map_err(&sql)?;
        let chunks = seal_chunks(rows, max, budget);
        let mut made = 0;
        for chunk in &chunks {
            let bundle = sign(chunk.iter().map(|(_, h)| *h).collect());
            self.store_bundle(&bundle)?;
            let mut upd = self
                .conn
                .prepare_cached("UPDATE changes SET bundle = ?1 WHERE seq = ?2")
                .map_err(&sql)?;
            for (seq, _) in chunk {
                upd.execute(params![bundle.id, seq]).map_err(&sql)?;
            }
            made += 1;
        }
        Ok(made)
    }

    fn advance_peer(
        &self,
        peer: Uuid,
        pulled: Option<i64>,
        acked: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO peers (peer, pulled, acked, synced_at) VALUES (?1, coalesce(?2, 0), coalesce(?3, 0), ?4)
                 ON CONFLICT(peer) DO UPDATE SET
                   pulled = coalesce(?2, pulled),
                   acked = max(acked, coalesce(?3, acked)),
                   synced_at = ?4",
            )
            .and_then(|mut s| {
                s.execute(params![
                    peer.to_string(),
                    pulled,
                    acked,
                    chrono::Utc::now().timestamp_millis()
                ])
            })
            .map_err(self.sql())?;
        Ok(())
    }

    fn forget_peer(&self, peer: Uuid) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM peers WHERE peer = ?1", [peer.to_string()])
            .map_err(self.sql())?;
        Ok(())
    }

    fn hold(&self, p: &PendingChange) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO pending (hash, doc_id, kind, author, bundle, origin, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    p.hash,
                    p.doc_id,
                    p.kind,
                    p.author.to_string(),
                    p.bundle,
                    p.origin.map(|o| o.to_string()),
                    p.bytes
                ])
            })
            .map_err(self.sql())?;
        Ok(())
    }

    fn release(&self, hash: &Hash) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM pending WHERE hash = ?1")
            .and_then(|mut s| s.execute([hash]))
            .map_err(self.sql())?;
        Ok(())
    }

    fn save_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        let (stored, _) =
            save_document(self.conn, DocWrite::Upsert, kind, id, data, changes, state)
                .map_err(self.sql())?;
        Ok(stored)
    }

    fn insert_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        // The primary key refuses an id already stored (no separate lookup).
        let sql = self.sql();
        let (stored, _) =
            save_document(self.conn, DocWrite::Insert, kind, id, data, changes, state).map_err(
                |e| {
                    if is_primary_key_violation(&e) {
                        StoreError::Duplicate(id.to_string())
                    } else {
                        sql(e)
                    }
                },
            )?;
        Ok(stored)
    }
}

/// True if `e` is a write refused by a table's primary key.
fn is_primary_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// `seal`'s grouping on either backend: unsealed changes `(seq, hash, FMP
/// or '' for reference documents, length)` in log order, cut into the
/// bundles to sign, one FMP per bundle, at most `max` changes and about
/// `budget` bytes (hash list plus the largest change) each.
pub(crate) fn seal_chunks(
    rows: impl IntoIterator<Item = (i64, Hash, String, i64)>,
    max: usize,
    budget: usize,
) -> Vec<Vec<(i64, Hash)>> {
    // (FMP or '' for reference documents, its chunks of (seq, hash)
    // rows in log order, and the largest change of the last chunk)
    type Group = (String, Vec<Vec<(i64, Hash)>>, usize);
    let mut groups: Vec<Group> = Vec::new();
    for (seq, hash, fmp, len) in rows {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let g = match groups.iter_mut().position(|(f, _, _)| *f == fmp) {
            Some(i) => &mut groups[i],
            None => {
                groups.push((fmp, vec![Vec::new()], 0));
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        let (_, chunks, largest) = g;
        let open = chunks.last().map_or(0, Vec::len);
        let fits = open < max.max(1)
            && (open + 1).saturating_mul(HASH_BYTES) + len.max(*largest) <= budget;
        if open > 0 && !fits {
            chunks.push(Vec::new());
            *largest = 0;
        }
        *largest = (*largest).max(len);
        if let Some(c) = chunks.last_mut() {
            c.push((seq, hash));
        }
    }
    groups.into_iter().flat_map(|(_, g, _)| g).collect()
}

/// How [`save_document`] writes the document row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocWrite {
    /// A new document: its primary key refuses an id already stored (a
    /// record's duplicate id).
    Insert,
    /// A document that may exist: its row is rewritten in place.
    Upsert,
}

/// Appends one change to `changes`: the one statement that does, for the
/// changes made here and those received alike. `None`: a change with its
/// hash is logged already (received twice; never one made here).
fn append_change(
    conn: &Connection,
    doc_id: &str,
    c: &NewChange<'_>,
) -> rusqlite::Result<Option<i64>> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO changes (hash, doc_id, author, time, op, bytes, origin, bundle)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            c.hash,
            doc_id,
            c.author.to_string(),
            c.time,
            c.op,
            c.bytes,
            c.origin.map(|o| o.to_string()),
            c.bundle
        ])?;
    Ok((n == 1).then(|| conn.last_insert_rowid()))
}

/// The store's one promise, written once: in the caller's transaction,
/// writes the document, appends its changes to the log and, with `state`,
/// rewrites the submission's materialized row at the last new change's
/// `seq` (0 if none was new), flagged when `state.1` says it fails
/// validation. Returns how many changes were new and the last one's `seq`.
///
/// A change made here (no `origin`) that is logged already is an error
/// (its hash is taken: the UNIQUE constraint's, as SQLite words it); a
/// received one is skipped, as received twice.
/// The SQL for a document's automerge bytes, `documents` aliased `d`: its
/// `data`, or where that is empty (a document of one change, stored once:
/// see [`save_document`]) the bytes of its one change, which
/// `AutoCommit::load` reads as it reads a saved document.
macro_rules! doc_data {
    () => {
        "CASE WHEN length(d.data) > 0 THEN d.data ELSE \
         (SELECT c.bytes FROM changes c WHERE c.doc_id = d.id ORDER BY c.seq LIMIT 1) END"
    };
}
pub(crate) use doc_data;

pub(crate) fn save_document(
    conn: &Connection,
    write: DocWrite,
    kind: &str,
    id: &str,
    data: &[u8],
    changes: &[NewChange<'_>],
    state: Option<(&StoredSubmission, bool)>,
) -> rusqlite::Result<(u32, i64)> {
    let sql = match write {
        DocWrite::Insert => "INSERT INTO documents (id, kind, data) VALUES (?1, ?2, ?3)",
        DocWrite::Upsert => {
            "INSERT INTO documents (id, kind, data) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, data = excluded.data"
        }
    };
    // A document of one change is that change's bytes: kept once, in the
    // log (`data` empty; read back through `doc_data!`).
    let data = match changes {
        [only] if only.bytes == data => &[][..],
        _ => data,
    };
    conn.prepare_cached(sql)?.execute(params![id, kind, data])?;
    let (mut stored, mut last) = (0u32, 0i64);
    for c in changes {
        match append_change(conn, id, c)? {
            Some(seq) => {
                stored += 1;
                last = seq;
            }
            None if c.origin.is_none() => return Err(already_logged()),
            None => {}
        }
    }
    if let Some((s, invalid)) = state {
        materialize::write_row_flagged(conn, s, last, invalid)?;
    }
    Ok((stored, last))
}

/// The error of a change made here whose hash is logged already.
fn already_logged() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
        Some("UNIQUE constraint failed: changes.hash".into()),
    )
}
