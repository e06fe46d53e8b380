//! Reading this store's change log (through the store's [`Reader`]) into
//! batches that fit a message: rows with their wire document references,
//! their bundles and their authors' certificates.

use fmp_core::store::ops::*;
use std::collections::{HashMap, HashSet};

use fmp_core::store::log::LogRow;
use fmp_core::store::{Identity, Reader};
use uuid::Uuid;

use crate::bundle::Bundle;
use crate::error::SyncError;
use crate::trust::{Certificate, certificate_of};
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

fn to_row(r: LogRow) -> Result<Row, SyncError> {
    let bundle = r.bundle.ok_or_else(|| {
        SyncError::Malformed(format!("change {} is not sealed in a bundle", r.seq))
    })?;
    Ok(Row {
        seq: r.seq,
        hash: r.hash,
        doc: DocRef::from_row(&r.doc_kind, &r.doc_id),
        bytes: r.bytes,
        bundle,
        first: r.first,
        dep_known: r.dep_known,
    })
}

fn to_rows(rows: Vec<LogRow>) -> Result<Vec<Row>, SyncError> {
    rows.into_iter().map(to_row).collect()
}

/// Changes after `after`, not received from `peer`, in log order, until
/// their raw size reaches `raw_budget`. Returns the rows and whether the
/// log was exhausted. With `fmps`, submissions of other FMPs are skipped,
/// and a submission that came into those FMPs after the cursor (an edit
/// moved it) comes with its changes before the cursor too, which the peer
/// was not served then and needs to apply the later ones (see
/// [`LogReads::changes_after`](fmp_core::store::ops::LogReads::changes_after)).
pub(crate) fn after_cursor(
    r: &Reader<'_>,
    after: i64,
    peer: Uuid,
    raw_budget: usize,
    fmps: Option<&[String]>,
) -> Result<(Vec<Row>, bool), SyncError> {
    let (rows, exhausted) = r.changes_after(after, peer, raw_budget, fmps)?;
    Ok((to_rows(rows)?, exhausted))
}

/// The changes with these hashes that this store has, in log order; with
/// `fmps`, only those a peer of these FMPs may read (the others are
/// answered as if this store did not have them).
pub(crate) fn by_hashes(
    r: &Reader<'_>,
    hashes: &[Hash],
    fmps: Option<&[String]>,
) -> Result<Vec<Row>, SyncError> {
    to_rows(r.changes_by_hash(hashes, fmps)?)
}

/// Builds the batch carrying `rows`: their bundles (hash lists referring
/// to the rows where they can) and their authors' certificates.
pub(crate) fn batch(
    reader: &Reader<'_>,
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
            let b = Bundle::load(reader, &id)?.ok_or_else(|| {
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
        if let Some(c) = certificate_of(reader, a)? {
            // The issuers' certificates up the chain, so a receiver that
            // never met the issuer (a sibling region's hub, a hub below a
            // regional hub) can verify it through one it knows.
            let mut issuer = c.issuer;
            out.certs.push(c);
            for _ in 0..CHAIN_SENT {
                if issuer == me.device_id || out.certs.iter().any(|c| c.device == issuer) {
                    break;
                }
                match certificate_of(reader, issuer)? {
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
