//! Verifying a received batch (all or nothing) and applying it to the store
//! (change by change, inside the caller's transaction).

use std::collections::HashMap;

use automerge::{AutoCommit, Change, ChangeHash};
use fmp_core::doc;
use fmp_core::model::StoredSubmission;
use fmp_core::store::materialize;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::bundle::{Bundle, MAX_BUNDLE};
use crate::error::SyncError;
use crate::log::{store_certificate, stored_certificate};
use crate::trust::{AuthorInfo, Certificate, Trust};
use crate::wire::{Batch, DocRef, Hash, HashRef, Refusal};

/// Resolves authors' keys and scopes: the caller's trust, then certificates.
pub(crate) struct Authors<'a> {
    trust: &'a dyn Trust,
    offered: HashMap<Uuid, Vec<Certificate>>,
    resolved: HashMap<Uuid, Option<AuthorInfo>>,
    learned: Vec<Certificate>,
}

impl<'a> Authors<'a> {
    pub(crate) fn new(trust: &'a dyn Trust, certs: Vec<Certificate>) -> Authors<'a> {
        let mut offered: HashMap<Uuid, Vec<Certificate>> = HashMap::new();
        for c in certs {
            offered.entry(c.device).or_default().push(c);
        }
        Authors {
            trust,
            offered,
            resolved: HashMap::new(),
            learned: Vec::new(),
        }
    }

    pub(crate) fn resolve(
        &mut self,
        conn: &Connection,
        device: Uuid,
    ) -> Result<Option<AuthorInfo>, SyncError> {
        if let Some(r) = self.resolved.get(&device) {
            return Ok(r.clone());
        }
        let mut found = self.trust.author(device);
        if found.is_some() {
            // Known here; still keep valid issued certificates so they travel on.
            let offered = self.offered.get(&device).cloned().unwrap_or_default();
            for c in offered
                .into_iter()
                .filter(|c| !c.is_self_signed() && c.device == device)
            {
                if c.verify(self.trust).is_ok() {
                    self.learned.push(c);
                }
            }
        } else {
            let stored = stored_certificate(conn, device)?;
            let offered = self.offered.get(&device).cloned().unwrap_or_default();
            // Issued certificates first, then a pinned self-signed one, then an offered one.
            let mut candidates: Vec<(Certificate, bool)> = Vec::new();
            for c in offered.iter().filter(|c| !c.is_self_signed()) {
                candidates.push((c.clone(), true));
            }
            if let Some(s) = stored.clone() {
                candidates.push((s, false));
            }
            if stored.is_none() {
                for c in offered.iter().filter(|c| c.is_self_signed()) {
                    candidates.push((c.clone(), true));
                }
            }
            for (c, new) in candidates {
                if c.device != device {
                    continue;
                }
                if let Ok(info) = c.verify(self.trust) {
                    if new {
                        self.learned.push(c);
                    }
                    found = Some(info);
                    break;
                }
            }
        }
        self.resolved.insert(device, found.clone());
        Ok(found)
    }
}

/// A change whose signature, bundle and author were checked.
pub(crate) struct Checked {
    pub hash: Hash,
    pub doc: DocRef,
    pub change: Change,
    pub author: Uuid,
    pub bundle: Hash,
}

/// A batch that passed every whole-message check.
pub(crate) struct Verified {
    pub changes: Vec<Checked>,
    pub bundles: Vec<Bundle>,
    /// Changes whose document cannot be found here (refused on their own).
    pub unresolved: Vec<Refusal>,
}

/// Checks a batch as a whole: every change parses, is claimed by exactly
/// one bundle whose signature verifies with its author's key, and was made
/// by that author. Any failure refuses the whole batch.
pub(crate) fn verify(
    conn: &Connection,
    authors: &mut Authors<'_>,
    batch: Batch,
) -> Result<Verified, SyncError> {
    let mut parsed = Vec::with_capacity(batch.changes.len());
    let mut docs_here: HashMap<Hash, DocRef> = HashMap::new();
    let mut unresolved: Vec<Refusal> = Vec::new();
    for (index, c) in batch.changes.into_iter().enumerate() {
        let change = Change::try_from(c.bytes.as_slice()).map_err(|e| SyncError::BadChange {
            index,
            detail: e.to_string(),
        })?;
        let doc = match c.doc {
            DocRef::InChange => DocRef::Submission(record_id(&change).ok_or_else(|| {
                SyncError::Malformed(format!(
                    "change {index} is sent as a submission's record but holds no submission id"
                ))
            })?),
            DocRef::Dep => {
                let Some(dep) = change.deps().first().map(|d| d.0) else {
                    return Err(SyncError::Malformed(format!(
                        "change {index} names its document by a dependency but has none"
                    )));
                };
                match docs_here.get(&dep) {
                    Some(d) => d.clone(),
                    None => match doc_of(conn, &dep)? {
                        Some(d) => d,
                        None => {
                            unresolved.push(Refusal {
                                hash: change.hash().0,
                                reason: "it depends on a change this replica does not have".into(),
                            });
                            DocRef::Dep
                        }
                    },
                }
            }
            d => d,
        };
        docs_here.insert(change.hash().0, doc.clone());
        parsed.push((doc, change));
    }
    let hashes: Vec<Hash> = parsed.iter().map(|(_, c)| c.hash().0).collect();
    let mut owner: Vec<Option<usize>> = vec![None; parsed.len()];
    let mut bundles = Vec::with_capacity(batch.bundles.len());
    for (bi, wb) in batch.bundles.into_iter().enumerate() {
        if wb.hashes.len() > MAX_BUNDLE {
            return Err(SyncError::Malformed(format!(
                "bundle {bi} lists {} changes, more than {MAX_BUNDLE}",
                wb.hashes.len()
            )));
        }
        let mut list = Vec::with_capacity(wb.hashes.len());
        for h in &wb.hashes {
            match h {
                HashRef::Hash(h) => list.push(*h),
                HashRef::Here(i) => {
                    let i = *i as usize;
                    match owner.get_mut(i) {
                        Some(slot @ None) => *slot = Some(bi),
                        Some(Some(_)) => {
                            return Err(SyncError::Malformed(format!("change {i} claimed twice")));
                        }
                        None => {
                            return Err(SyncError::Malformed(format!(
                                "bundle {bi} refers to change {i}, past the message's {}",
                                hashes.len()
                            )));
                        }
                    }
                    list.push(hashes[i]);
                }
            }
        }
        let bundle = Bundle {
            author: wb.author,
            hashes: list,
            sig: wb.sig,
        };
        let Some(info) = authors.resolve(conn, wb.author)? else {
            return Err(SyncError::UnknownAuthor(wb.author));
        };
        if !bundle.verify(&info.public_key) {
            return Err(SyncError::BadSignature { author: wb.author });
        }
        bundles.push(bundle);
    }
    let mut changes = Vec::with_capacity(parsed.len());
    for (i, (doc, change)) in parsed.into_iter().enumerate() {
        let Some(bi) = owner[i] else {
            return Err(SyncError::Malformed(format!(
                "change {} is covered by no signed bundle",
                hex::encode(hashes[i])
            )));
        };
        let author = bundles[bi].author;
        if change.actor_id().to_bytes() != author.as_bytes().as_slice() {
            return Err(SyncError::ForgedAuthor {
                hash: hex::encode(hashes[i]),
                actor: change.actor_id().to_hex_string(),
                author,
            });
        }
        changes.push(Checked {
            hash: hashes[i],
            doc,
            change,
            author,
            bundle: bundles[bi].id(),
        });
    }
    Ok(Verified {
        changes,
        bundles,
        unresolved,
    })
}

/// The document a stored (or pending) change belongs to.
fn doc_of(conn: &Connection, hash: &Hash) -> Result<Option<DocRef>, SyncError> {
    let found: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT d.kind, c.doc_id FROM changes c JOIN documents d ON d.id = c.doc_id WHERE c.hash = ?1
             UNION ALL SELECT kind, doc_id FROM pending WHERE hash = ?1 LIMIT 1",
        )?
        .query_row([hash.to_vec()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(found.map(|(k, i)| DocRef::from_row(&k, &i)))
}

/// The submission id inside a record (a document's first change).
fn record_id(change: &Change) -> Option<Uuid> {
    use automerge::{ROOT, ReadDoc, ScalarValue, Value};
    if !change.deps().is_empty() {
        return None;
    }
    let mut d = AutoCommit::new();
    d.apply_changes([change.clone()]).ok()?;
    match d.get(ROOT, "id").ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Uuid::parse_str(s).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// What applying a batch did.
#[derive(Debug, Default, Clone)]
pub(crate) struct Applied {
    /// Newly stored changes.
    pub stored: u32,
    /// Already here.
    pub duplicates: u32,
    /// Waiting for dependencies.
    pub pending: u32,
    /// Refused one by one.
    pub refused: Vec<Refusal>,
}

impl Applied {
    pub(crate) fn accepted(&self) -> u32 {
        self.stored + self.duplicates + self.pending
    }
}

struct Item {
    c: Checked,
    origin: Option<Uuid>,
    from_pending: bool,
}

/// Applies a verified batch inside the caller's transaction: stores bundles
/// and learned certificates, then per document applies each change whose
/// dependencies are present (refusing, on its own, one outside its author's
/// scope), parks the others in `pending`, saves the document, appends the
/// applied changes to the log with their origin, and rematerializes.
pub(crate) fn apply(
    conn: &Connection,
    authors: &mut Authors<'_>,
    verified: Verified,
    origin: Uuid,
) -> Result<Applied, SyncError> {
    for c in std::mem::take(&mut authors.learned) {
        store_certificate(conn, &c)?;
    }
    for b in &verified.bundles {
        b.store(conn)?;
    }
    let mut out = Applied {
        refused: verified.unresolved,
        ..Applied::default()
    };
    let mut groups: Vec<(DocRef, Vec<Item>)> = Vec::new();
    let mut at: HashMap<DocRef, usize> = HashMap::new();
    for c in verified.changes {
        if c.doc == DocRef::Dep {
            continue; // unresolved, refused above
        }
        let i = *at.entry(c.doc.clone()).or_insert_with(|| {
            groups.push((c.doc.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(Item {
            c,
            origin: Some(origin),
            from_pending: false,
        });
    }
    for (docref, mut items) in groups {
        items.extend(load_pending(conn, &docref)?);
        apply_doc(conn, authors, &docref, items, &mut out)?;
    }
    for c in std::mem::take(&mut authors.learned) {
        store_certificate(conn, &c)?;
    }
    Ok(out)
}

fn load_pending(conn: &Connection, docref: &DocRef) -> Result<Vec<Item>, SyncError> {
    let (_, id) = docref.kind_and_id();
    let rows: Vec<(Vec<u8>, String, Vec<u8>, Option<String>)> = conn
        .prepare_cached("SELECT bytes, author, bundle, origin FROM pending WHERE doc_id = ?1")?
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (bytes, author, bundle, origin) in rows {
        let (Ok(change), Ok(author), Some(bundle)) = (
            Change::try_from(bytes.as_slice()),
            Uuid::parse_str(&author),
            crate::bundle::to_hash(&bundle),
        ) else {
            continue;
        };
        out.push(Item {
            c: Checked {
                hash: change.hash().0,
                doc: docref.clone(),
                change,
                author,
                bundle,
            },
            origin: origin.and_then(|o| Uuid::parse_str(&o).ok()),
            from_pending: true,
        });
    }
    Ok(out)
}

fn refuse(out: &mut Applied, hash: Hash, reason: String) {
    out.refused.push(Refusal { hash, reason });
}

fn apply_doc(
    conn: &Connection,
    authors: &mut Authors<'_>,
    docref: &DocRef,
    items: Vec<Item>,
    out: &mut Applied,
) -> Result<(), SyncError> {
    let (kind, id) = docref.kind_and_id();
    let existing: Option<(String, Vec<u8>)> = conn
        .prepare_cached("SELECT kind, data FROM documents WHERE id = ?1")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut doc = match &existing {
        Some((k, _)) if *k != kind => {
            for it in items {
                refuse(
                    out,
                    it.c.hash,
                    format!("document {id} is a {k}, not a {kind}"),
                );
            }
            return Ok(());
        }
        Some((_, data)) => AutoCommit::load(data)?,
        None => AutoCommit::new(),
    };
    let mut state: Option<StoredSubmission> = match (&existing, docref) {
        (Some(_), DocRef::Submission(_)) => doc::read_submission(&doc).ok(),
        _ => None,
    };
    let mut applied: Vec<(Checked, Option<Uuid>)> = Vec::new();
    let mut done_pending: Vec<Hash> = Vec::new();
    let mut queue: Vec<Item> = items;
    loop {
        let mut progress = false;
        let mut rest = Vec::new();
        for it in queue {
            let h = it.c.hash;
            if doc.get_change_by_hash(&ChangeHash(h)).is_some() {
                if it.from_pending {
                    done_pending.push(h);
                } else {
                    out.duplicates += 1;
                }
                continue;
            }
            if it
                .c
                .change
                .deps()
                .iter()
                .any(|d| doc.get_change_by_hash(d).is_none())
            {
                rest.push(it);
                continue;
            }
            progress = true;
            if it.from_pending {
                done_pending.push(h);
            }
            let Some(info) = authors.resolve(conn, it.c.author)? else {
                refuse(out, h, format!("device {} is not known here", it.c.author));
                continue;
            };
            let mut trial = doc.clone();
            if let Err(e) = trial.apply_changes([it.c.change.clone()]) {
                refuse(out, h, format!("automerge refused the change: {e}"));
                continue;
            }
            match docref {
                DocRef::Submission(uuid) => {
                    let after = match doc::read_submission(&trial) {
                        Ok(s) => s,
                        Err(e) => {
                            refuse(out, h, format!("not a valid submission afterwards: {e}"));
                            continue;
                        }
                    };
                    if after.submission.id != Some(*uuid) {
                        refuse(
                            out,
                            h,
                            format!("the change does not belong to submission {uuid}"),
                        );
                        continue;
                    }
                    let before_fmp = state.as_ref().map(|s| s.submission.fmp.clone());
                    let bad = [before_fmp, Some(after.submission.fmp.clone())]
                        .into_iter()
                        .flatten()
                        .find(|f| !info.may_write(f));
                    if let Some(f) = bad {
                        refuse(
                            out,
                            h,
                            format!(
                                "device {} may not write submissions of {f} (its FMPs: {})",
                                it.c.author,
                                info.fmps.as_deref().unwrap_or_default().join(", ")
                            ),
                        );
                        continue;
                    }
                    state = Some(after);
                }
                DocRef::InChange | DocRef::Dep => {
                    // `verify` resolves these to their submission.
                    refuse(out, h, "the change's document is not resolved".into());
                    continue;
                }
                DocRef::Other { .. } => {
                    if info.fmps.is_some() {
                        refuse(
                            out,
                            h,
                            format!("device {} may not write {kind} documents", it.c.author),
                        );
                        continue;
                    }
                }
            }
            doc = trial;
            applied.push((it.c, it.origin));
        }
        queue = rest;
        if !progress || queue.is_empty() {
            break;
        }
    }
    let mut del = conn.prepare_cached("DELETE FROM pending WHERE hash = ?1")?;
    for h in &done_pending {
        del.execute([h.to_vec()])?;
    }
    let mut park = conn.prepare_cached(
        "INSERT OR IGNORE INTO pending (hash, doc_id, kind, author, bundle, origin, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for it in &queue {
        if !it.from_pending {
            park.execute(params![
                it.c.hash.to_vec(),
                id,
                kind,
                it.c.author.to_string(),
                it.c.bundle.to_vec(),
                it.origin.map(|o| o.to_string()),
                it.c.change.raw_bytes()
            ])?;
            out.pending += 1;
        }
    }
    if applied.is_empty() {
        return Ok(());
    }
    conn.prepare_cached("INSERT OR REPLACE INTO documents (id, kind, data) VALUES (?1, ?2, ?3)")?
        .execute(params![id, kind, doc.save()])?;
    let mut ins = conn.prepare_cached(
        "INSERT OR IGNORE INTO changes (hash, doc_id, author, time, op, bytes, origin, bundle)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut last = 0;
    for (c, origin) in &applied {
        if ins.execute(params![
            c.hash.to_vec(),
            id,
            c.author.to_string(),
            c.change.timestamp(),
            c.change.message().unwrap_or(""),
            c.change.raw_bytes(),
            origin.map(|o| o.to_string()),
            c.bundle.to_vec()
        ])? == 1
        {
            last = conn.last_insert_rowid();
            out.stored += 1;
        }
    }
    if let Some(s) = state {
        materialize::write_row(conn, &s, last)?;
    }
    Ok(())
}
