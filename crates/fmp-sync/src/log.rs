//! Reading this store's change log into batches that fit a message.

use std::collections::{HashMap, HashSet};

use fmp_core::store::Identity;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::bundle::{Bundle, to_hash};
use crate::error::SyncError;
use crate::trust::Certificate;
use crate::wire::{Batch, DocRef, Hash, HashRef, MIN_MAX_BYTES, WireBundle, WireChange};

/// One change of the log, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub seq: i64,
    pub hash: Hash,
    pub doc: DocRef,
    pub bytes: Vec<u8>,
    pub bundle: Hash,
    /// A submission's record (its first change).
    pub first: bool,
    /// The receiver holds (or gets earlier in the message) this change's
    /// first dependency, so the document need not be named.
    pub dep_known: bool,
}

const SELECT: &str = "SELECT c.seq, c.hash, c.doc_id, d.kind, c.bytes, c.bundle, c.op
     FROM changes c JOIN documents d ON d.id = c.doc_id";

type RawRow = (
    i64,
    Vec<u8>,
    String,
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_row((seq, hash, doc_id, kind, bytes, bundle, op): RawRow) -> Result<Row, SyncError> {
    let hash = to_hash(&hash).ok_or_else(|| SyncError::Malformed(format!("change {seq}: hash")))?;
    let bundle = bundle
        .as_deref()
        .and_then(to_hash)
        .ok_or_else(|| SyncError::Malformed(format!("change {seq} is not sealed in a bundle")))?;
    Ok(Row {
        seq,
        hash,
        doc: DocRef::from_row(&kind, &doc_id),
        bytes,
        bundle,
        first: kind == "submission" && op == fmp_core::doc::Op::Record.as_str(),
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
pub(crate) fn scope_param(fmps: Option<&[String]>) -> Option<String> {
    fmps.map(|f| serde_json::Value::from(f.to_vec()).to_string())
}

/// The last `seq` of the log (0 if empty).
pub(crate) fn log_end(conn: &Connection) -> Result<i64, SyncError> {
    Ok(
        conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })?,
    )
}

/// Changes after `after`, not received from `peer`, in log order, until
/// their raw size reaches `raw_budget`. Returns the rows and whether the
/// log was exhausted. With `fmps`, submissions of other FMPs are skipped,
/// and a submission that came into those FMPs after the cursor (an edit
/// moved it) comes with its changes before the cursor too, which the peer
/// was not served then and needs to apply the later ones.
pub(crate) fn after_cursor(
    conn: &Connection,
    after: i64,
    peer: Uuid,
    raw_budget: usize,
    fmps: Option<&[String]>,
) -> Result<(Vec<Row>, bool), SyncError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE c.seq > ?1 AND (c.origin IS NULL OR c.origin <> ?2)
           AND {}
         ORDER BY c.seq",
        in_scope(3)
    ))?;
    let scope = scope_param(fmps);
    let mut histories: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut rows = stmt.query(params![after, peer.to_string(), scope])?;
    let mut out: Vec<Row> = Vec::new();
    let mut seen: std::collections::HashSet<Hash> = std::collections::HashSet::new();
    let mut size = 0usize;
    let mut dep_stmt =
        conn.prepare_cached("SELECT seq, origin, author FROM changes WHERE hash = ?1")?;
    let peer_s = peer.to_string();
    while let Some(r) = rows.next()? {
        if size >= raw_budget {
            return Ok((out, false));
        }
        let mut r = to_row(row(r)?)?;
        if let (Some(scope), DocRef::Submission(id)) = (fmps, &r.doc)
            && !r.first
            && histories.insert(id.to_string())
        {
            for h in moved_in_history(conn, &id.to_string(), after, &peer_s, scope, &seen)? {
                seen.insert(h.hash);
                size += h.bytes.len() + 40;
                out.push(h);
            }
        }
        if matches!(r.doc, DocRef::Submission(_)) && !r.first {
            let dep = automerge::Change::try_from(r.bytes.as_slice())
                .ok()
                .and_then(|c| c.deps().first().map(|d| d.0));
            if let Some(dep) = dep {
                r.dep_known = seen.contains(&dep)
                    || dep_stmt
                        .query_row([dep.to_vec()], |x| {
                            let seq: i64 = x.get(0)?;
                            let origin: Option<String> = x.get(1)?;
                            let author: String = x.get(2)?;
                            Ok(seq <= after
                                || origin.as_deref() == Some(peer_s.as_str())
                                || author == peer_s)
                        })
                        .optional()?
                        .unwrap_or(false);
            }
        }
        seen.insert(r.hash);
        size += r.bytes.len() + 40;
        out.push(r);
    }
    Ok((out, true))
}

/// The changes of submission `doc_id` up to `after` that `peer` neither
/// made nor sent here, if the submission ever had an FMP outside `scope`
/// and was moved after `after` (then the peer may not have been served
/// them); in log order, each named
/// by its dependency when it follows one in `seen` or in the list.
fn moved_in_history(
    conn: &Connection,
    doc_id: &str,
    after: i64,
    peer: &str,
    scope: &[String],
    seen: &std::collections::HashSet<Hash>,
) -> Result<Vec<Row>, SyncError> {
    let all = fmp_core::store::authority::doc_changes(conn, doc_id)?;
    let missing: Vec<Hash> = all
        .iter()
        .filter(|c| c.seq <= after && c.author != peer && c.origin.as_deref() != Some(peer))
        .filter_map(|c| to_hash(&c.hash))
        .filter(|h| !seen.contains(h))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    // Only a submission that had an FMP outside the scope, and was moved
    // (its FMP written) after the cursor, may have been skipped before it:
    // a peer lacking one of its changes behind the cursor was not served it
    // while it was elsewhere, and it came into the scope by a later move.
    let ever = fmp_core::store::authority::fmps_ever(all.iter().map(|c| c.bytes.as_slice()));
    let moved_since = all
        .iter()
        .filter(|c| c.seq > after)
        .any(|c| !fmp_core::store::authority::fmps_ever([c.bytes.as_slice()]).is_empty());
    if !moved_since || ever.iter().all(|f| scope.contains(f)) {
        return Ok(Vec::new());
    }
    let mut rows = by_hashes(conn, &missing, None)?;
    let mut known: std::collections::HashSet<Hash> = seen.clone();
    for r in &mut rows {
        if !r.first {
            r.dep_known = automerge::Change::try_from(r.bytes.as_slice())
                .ok()
                .and_then(|c| c.deps().first().map(|d| d.0))
                .is_some_and(|d| known.contains(&d));
        }
        known.insert(r.hash);
    }
    Ok(rows)
}

/// The changes with these hashes that this store has, in log order; with
/// `fmps`, only those a peer of these FMPs may read (the others are
/// answered as if this store did not have them).
pub(crate) fn by_hashes(
    conn: &Connection,
    hashes: &[Hash],
    fmps: Option<&[String]>,
) -> Result<Vec<Row>, SyncError> {
    let mut stmt =
        conn.prepare_cached(&format!("{SELECT} WHERE c.hash = ?1 AND {}", in_scope(2)))?;
    let scope = scope_param(fmps);
    let mut out = Vec::new();
    for h in hashes {
        if let Some(r) = stmt.query_row(params![h.to_vec(), scope], row).optional()? {
            out.push(to_row(r)?);
        }
    }
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

/// Builds the batch carrying `rows`: their bundles (hash lists referring
/// to the rows where they can) and their authors' certificates.
pub(crate) fn batch(
    conn: &Connection,
    me: &Identity,
    rows: &[Row],
    cache: &mut HashMap<Hash, Bundle>,
) -> Result<Batch, SyncError> {
    let index: HashMap<Hash, u32> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.hash, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let mut order: Vec<Hash> = Vec::new();
    for r in rows {
        if !order.contains(&r.bundle) {
            order.push(r.bundle);
        }
    }
    let mut out = Batch::default();
    let mut authors: Vec<Uuid> = Vec::new();
    // A change may be listed by two bundles of its author (a phone restored
    // from a copy taken before it sent them seals them again): the first
    // bundle here claims it, the others name it by hash, so every change of
    // the message is claimed exactly once.
    let mut claimed: HashSet<u32> = HashSet::new();
    for id in order {
        if let std::collections::hash_map::Entry::Vacant(e) = cache.entry(id) {
            let b = Bundle::load(conn, &id)?.ok_or_else(|| {
                SyncError::Malformed(format!("bundle {} missing", hex::encode(id)))
            })?;
            e.insert(b);
        }
        let Some(b) = cache.get(&id) else { continue };
        if !authors.contains(&b.author) {
            authors.push(b.author);
        }
        out.bundles.push(WireBundle {
            author: b.author,
            hashes: b
                .hashes
                .iter()
                .map(|h| match index.get(h) {
                    Some(i) if claimed.insert(*i) => HashRef::Here(*i),
                    _ => HashRef::Hash(*h),
                })
                .collect(),
            sig: b.sig.clone(),
        });
    }
    for a in authors {
        if let Some(c) = stored_certificate(conn, a)? {
            // The issuers' certificates up the chain, so a receiver that
            // never met the issuer (a sibling region's hub, a hub below a
            // regional hub) can verify it through one it knows.
            let mut issuer = c.issuer;
            out.certs.push(c);
            for _ in 0..CHAIN_SENT {
                if issuer == me.device_id || out.certs.iter().any(|c| c.device == issuer) {
                    break;
                }
                match stored_certificate(conn, issuer)? {
                    Some(up) if !up.is_self_signed() => {
                        issuer = up.issuer;
                        out.certs.push(up);
                    }
                    _ => break,
                }
            }
        } else if a == me.device_id {
            out.certs.push(Certificate::self_signed(me));
        }
    }
    out.changes = rows
        .iter()
        .map(|r| WireChange {
            doc: if r.first && matches!(r.doc, DocRef::Submission(_)) {
                DocRef::InChange
            } else if r.dep_known {
                DocRef::Dep
            } else {
                r.doc.clone()
            },
            bytes: r.bytes.clone(),
        })
        .collect();
    Ok(out)
}

/// How many issuers' certificates above an author's are sent with its
/// bundles (the receiver verifies through at most as many).
const CHAIN_SENT: usize = 3;

/// The certificate stored for a device, if any.
pub(crate) fn stored_certificate(
    conn: &Connection,
    device: Uuid,
) -> Result<Option<Certificate>, SyncError> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT cert FROM devices WHERE device = ?1")?
        .query_row([device.to_string()], |r| r.get(0))
        .optional()?;
    Ok(blob.and_then(|b| Certificate::decode_stored(&b)))
}

/// Stores a verified certificate; an issued one replaces a self-signed one,
/// never the reverse (a self-signed key, once pinned, stays).
pub(crate) fn store_certificate(conn: &Connection, cert: &Certificate) -> Result<(), SyncError> {
    let existing = stored_certificate(conn, cert.device)?;
    let replace = match &existing {
        None => true,
        // A certificate signed with a role replaces the same issuer's from
        // before roles (a hub vouching again for the hub it joined).
        Some(old) => {
            old != cert
                && !cert.is_self_signed()
                && (old.is_self_signed()
                    || (old.role.is_none() && cert.role.is_some() && old.issuer == cert.issuer))
        }
    };
    if replace {
        let blob = postcard::to_stdvec(cert).map_err(|e| SyncError::Encode(e.to_string()))?;
        conn.execute(
            "INSERT OR REPLACE INTO devices (device, cert) VALUES (?1, ?2)",
            params![cert.device.to_string(), blob],
        )?;
    }
    Ok(())
}

/// Finds the longest prefix of `rows` whose message (built by `make`)
/// fits in `max` bytes; returns the message and the count of rows in it.
/// An empty prefix must fit; a single row that does not is an error.
/// Under [`MIN_MAX_BYTES`] (a small limit a client asked for), the empty
/// message and a message of one row may take up to [`MIN_MAX_BYTES`]: a
/// message always carries at least one row.
pub(crate) fn fit(
    rows: &[Row],
    max: usize,
    mut make: impl FnMut(&[Row]) -> Result<Vec<u8>, SyncError>,
) -> Result<(Vec<u8>, usize), SyncError> {
    let hard = max.max(MIN_MAX_BYTES as usize);
    let all = make(rows)?;
    if all.len() <= max {
        return Ok((all, rows.len()));
    }
    let mut best = make(&[])?;
    if best.len() > hard {
        return Err(SyncError::TooLarge {
            size: best.len(),
            limit: max,
        });
    }
    // Invariant: `lo` rows fit (message in `best`), `hi` rows do not.
    let (mut lo, mut hi) = (0usize, rows.len());
    // First guess from the compression ratio seen on the whole set.
    let guess = (rows.len() as u64 * max as u64 * 9 / 10 / all.len() as u64) as usize;
    let mut probe = if hi > 1 { guess.clamp(1, hi - 1) } else { 0 };
    while hi - lo > 1 {
        let m = make(&rows[..probe])?;
        if m.len() <= max {
            lo = probe;
            best = m;
        } else {
            hi = probe;
        }
        probe = lo + (hi - lo) / 2;
        if probe == lo {
            break;
        }
    }
    if lo == 0 && !rows.is_empty() {
        let one = make(&rows[..1])?;
        if one.len() <= hard {
            return Ok((one, 1));
        }
        return Err(SyncError::TooLarge {
            size: one.len(),
            limit: max,
        });
    }
    Ok((best, lo))
}
