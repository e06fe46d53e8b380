//! Verifying a received batch (all or nothing for its bytes and known
//! authors' signatures; an author that cannot be verified has its changes
//! refused alone) and applying it to the store (change by change, inside
//! the caller's transaction, through the store's [`Writer`]).

use fmp_core::store::ops::*;
use std::collections::HashMap;
use std::sync::Arc;

use automerge::{AutoCommit, Change, ChangeHash};
use fmp_core::doc;
use fmp_core::form::Forms;
use fmp_core::model::StoredSubmission;
use fmp_core::reference::Registry;
use fmp_core::role::Role;
pub use fmp_core::store::log::Waiting;
use fmp_core::store::log::{DocStamp, NewChange, PendingChange};
use fmp_core::store::{Authority, Reader, Writer, roles};
use uuid::Uuid;

use crate::bundle::{Bundle, MAX_BUNDLE};
use crate::error::SyncError;
use crate::trust::{AuthorInfo, Certificate, Trust, certificate_of, keep_certificate};
use crate::wire::{Batch, DocRef, Hash, HashRef, Refusal};

/// Resolves authors' keys and scopes: the caller's trust, then certificates.
pub(crate) struct Authors<'a> {
    trust: &'a dyn Trust,
    /// The only author of registry and form changes accepted here (HQ).
    authority: Authority,
    offered: HashMap<Uuid, Vec<Certificate>>,
    resolved: HashMap<Uuid, Option<AuthorInfo>>,
    /// Why an author could not be resolved (for its refusals).
    unresolved_why: HashMap<Uuid, String>,
    learned: Vec<Certificate>,
    /// Issuers resolved through certificate chains in this message.
    chain_memo: std::cell::RefCell<ChainMemo>,
    /// The registry and forms received submissions are validated against
    /// (loaded on first use; dropped when a reference document changes).
    reference: Option<Arc<(Registry, Forms)>>,
}

impl<'a> Authors<'a> {
    pub(crate) fn new(
        trust: &'a dyn Trust,
        certs: Vec<Certificate>,
        authority: Authority,
    ) -> Authors<'a> {
        let mut offered: HashMap<Uuid, Vec<Certificate>> = HashMap::new();
        for c in certs {
            offered.entry(c.device).or_default().push(c);
        }
        Authors {
            trust,
            authority,
            offered,
            resolved: HashMap::new(),
            unresolved_why: HashMap::new(),
            learned: Vec::new(),
            chain_memo: std::cell::RefCell::new(HashMap::new()),
            reference: None,
        }
    }

    /// Why `device` could not be resolved (after [`Authors::resolve`] gave `None`).
    pub(crate) fn why_unknown(&self, device: Uuid) -> String {
        self.unresolved_why
            .get(&device)
            .cloned()
            .unwrap_or_else(|| "no valid certificate for it came with the message".into())
    }

    /// The registry and forms in force in the snapshot `r` reads.
    fn reference(&mut self, r: &Reader<'_>) -> Result<Arc<(Registry, Forms)>, SyncError> {
        if let Some(r) = &self.reference {
            return Ok(r.clone());
        }
        let loaded = Arc::new(r.reference()?);
        self.reference = Some(loaded.clone());
        Ok(loaded)
    }

    pub(crate) fn resolve(
        &mut self,
        r: &Reader<'_>,
        device: Uuid,
    ) -> Result<Option<AuthorInfo>, SyncError> {
        if let Some(r) = self.resolved.get(&device) {
            return Ok(r.clone());
        }
        let mut found = self.trust.author(device);
        if let Some(why) = self.trust.why_unknown(device) {
            // Revoked here: no certificate brings it back.
            found = None;
            self.unresolved_why.insert(device, why);
        } else if found.is_some() {
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
            let stored = certificate_of(r, device)?;
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
            let mut why: Option<String> = None;
            let chain = Chain {
                trust: self.trust,
                r,
                offered: &self.offered,
                depth: MAX_CHAIN,
                memo: &self.chain_memo,
                used: std::cell::RefCell::new(Vec::new()),
            };
            for (c, new) in candidates {
                if c.device != device {
                    continue;
                }
                match c.verify(&chain) {
                    Ok(info) => {
                        if new {
                            self.learned.push(c);
                        }
                        // The issuers' certificates it was verified through
                        // travel on with it.
                        self.learned.extend(chain.used.take());
                        found = Some(info);
                        break;
                    }
                    Err(e) => {
                        why.get_or_insert(format!("its certificate is refused: {e}"));
                    }
                }
            }
            if found.is_none() {
                self.unresolved_why.insert(
                    device,
                    why.unwrap_or_else(|| {
                        "no valid certificate for it came with the message".into()
                    }),
                );
            }
        }
        self.resolved.insert(device, found.clone());
        Ok(found)
    }
}

/// How many issuers above the one this replica knows a certificate may be
/// verified through (a phone of a sub-hub of a regional hub: two).
const MAX_CHAIN: usize = 3;

/// How many offered certificates of one issuer are tried (a message
/// carrying hundreds for one device buys no more signature checks).
const MAX_OFFERED_PER_ISSUER: usize = 4;

/// What a chain resolved an issuer to at a depth: its info and the
/// certificates it went through.
type ChainMemo = HashMap<(Uuid, usize), Option<(AuthorInfo, Vec<Certificate>)>>;

/// This replica's trust, extended through the issuers' certificates that
/// came with the message or are stored here: a phone enrolled by a hub this
/// replica never met (a sibling region's hub, a hub below a regional hub)
/// is verified through that hub's certificate, itself verified up to an
/// issuer known here. A device refused here (revoked) is never an issuer.
/// Each issuer is resolved once per depth, so a message cannot buy more
/// signature checks than it carries certificates (times the depth).
struct Chain<'a> {
    trust: &'a dyn Trust,
    r: &'a Reader<'a>,
    offered: &'a HashMap<Uuid, Vec<Certificate>>,
    depth: usize,
    memo: &'a std::cell::RefCell<ChainMemo>,
    /// The issuers' certificates the last verification went through.
    used: std::cell::RefCell<Vec<Certificate>>,
}

impl Chain<'_> {
    fn resolve_issuer(&self, device: Uuid) -> Option<(AuthorInfo, Vec<Certificate>)> {
        if let Some(hit) = self.memo.borrow().get(&(device, self.depth)) {
            return hit.clone();
        }
        let above = Chain {
            trust: self.trust,
            r: self.r,
            offered: self.offered,
            depth: self.depth - 1,
            memo: self.memo,
            used: std::cell::RefCell::new(Vec::new()),
        };
        let stored = certificate_of(self.r, device).ok().flatten();
        let offered = self
            .offered
            .get(&device)
            .into_iter()
            .flatten()
            .filter(|c| !c.is_self_signed())
            .take(MAX_OFFERED_PER_ISSUER)
            .cloned();
        let mut found = None;
        for c in offered.chain(stored) {
            if c.device != device || c.is_self_signed() {
                continue;
            }
            if let Ok(mut info) = c.verify(&above) {
                info.may_enroll = info.role.may_enroll();
                let mut path = above.used.take();
                path.push(c);
                found = Some((info, path));
                break;
            }
        }
        self.memo
            .borrow_mut()
            .insert((device, self.depth), found.clone());
        found
    }
}

impl Trust for Chain<'_> {
    fn author(&self, device: Uuid) -> Option<AuthorInfo> {
        if let Some(info) = self.trust.author(device) {
            return Some(info);
        }
        if self.depth == 0 || self.trust.why_unknown(device).is_some() {
            return None;
        }
        let (info, path) = self.resolve_issuer(device)?;
        self.used.borrow_mut().extend(path);
        Some(info)
    }

    fn require_known(&self) -> bool {
        self.trust.require_known()
    }

    fn why_unknown(&self, device: Uuid) -> Option<String> {
        self.trust.why_unknown(device)
    }

    fn authority(&self) -> Option<fmp_core::store::Authority> {
        self.trust.authority()
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
    /// Changes already in the log (not parsed; counted as duplicates).
    pub known: Vec<Hash>,
}

impl Verified {
    /// The hashes of the batch's changes that verified, the known ones
    /// first (a set: what a puller got).
    pub fn hashes(&self) -> Vec<Hash> {
        let mut out = self.known.clone();
        out.extend(self.changes.iter().map(|c| c.hash));
        out
    }
}

/// Checks a batch as a whole: every change parses, is claimed by exactly
/// one bundle whose signature verifies with its author's key, and was made
/// by that author. Any failure refuses the whole batch, except an author
/// this replica cannot verify (unknown, no valid certificate, revoked):
/// its bundles are dropped and their changes refused alone, with the reason
/// (see [`UNVERIFIED`]), and the rest is judged as usual.
pub(crate) fn verify(
    r: &Reader<'_>,
    authors: &mut Authors<'_>,
    batch: Batch,
) -> Result<Verified, SyncError> {
    let mut parsed = Vec::with_capacity(batch.changes.len());
    let mut hashes: Vec<Hash> = Vec::with_capacity(batch.changes.len());
    let mut known: Vec<Hash> = Vec::new();
    let mut docs_here: HashMap<Hash, DocRef> = HashMap::new();
    let mut unresolved: Vec<Refusal> = Vec::new();
    for (index, c) in batch.changes.into_iter().enumerate() {
        // A change already in the log is skipped before it is parsed: its
        // hash is the SHA-256 of its chunk after the magic bytes and the
        // checksum, and bytes that hash to a logged change's hash are
        // that change's bytes.
        if let Some(h) = logged_hash(r, &c.bytes)? {
            hashes.push(h);
            known.push(h);
            parsed.push(None);
            continue;
        }
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
                    None => match doc_of(r, &dep)? {
                        Some(d) => d,
                        None => {
                            unresolved.push(Refusal {
                                hash: change.hash().0,
                                reason: MISSING_DEPENDENCY.into(),
                            });
                            DocRef::Dep
                        }
                    },
                }
            }
            d => d,
        };
        docs_here.insert(change.hash().0, doc.clone());
        hashes.push(change.hash().0);
        parsed.push(Some((doc, change)));
    }
    let mut owner: Vec<Option<usize>> = vec![None; parsed.len()];
    let mut bundles = Vec::with_capacity(batch.bundles.len());
    let mut unverifiable: Vec<usize> = Vec::new();
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
        match authors.resolve(r, wb.author)? {
            // Cannot be verified here: its changes are refused alone (the
            // sender holds them until a certificate can come), the rest of
            // the message is judged as usual.
            None => unverifiable.push(bi),
            Some(info) => {
                if !bundle.verify(&info.public_key) {
                    return Err(SyncError::BadSignature { author: wb.author });
                }
            }
        }
        bundles.push(bundle);
    }
    let mut changes = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.into_iter().enumerate() {
        let Some((doc, change)) = p else {
            continue; // logged already: nothing of it is stored again
        };
        let Some(bi) = owner[i] else {
            return Err(SyncError::Malformed(format!(
                "change {} is covered by no signed bundle",
                hex::encode(hashes[i])
            )));
        };
        let author = bundles[bi].author;
        // The actor is the author's device id, bare (epoch 0) or followed
        // by the actor epoch it took after a restore.
        if doc::actor_parts(change.actor_id().to_bytes()).0 != Some(author) {
            return Err(SyncError::ForgedAuthor {
                hash: hex::encode(hashes[i]),
                actor: change.actor_id().to_hex_string(),
                author,
            });
        }
        if unverifiable.contains(&bi) {
            unresolved.retain(|r| r.hash != hashes[i]);
            unresolved.push(Refusal {
                hash: hashes[i],
                reason: unverifiable_reason(author, &authors.why_unknown(author)),
            });
            continue;
        }
        changes.push(Checked {
            hash: hashes[i],
            doc,
            change,
            author,
            bundle: bundles[bi].id(),
        });
    }
    let bundles = bundles
        .into_iter()
        .enumerate()
        .filter(|(bi, _)| !unverifiable.contains(bi))
        .map(|(_, b)| b)
        .collect();
    Ok(Verified {
        changes,
        bundles,
        unresolved,
        known,
    })
}

/// The hash of a change chunk's bytes if a change with it is in the log.
fn logged_hash(r: &Reader<'_>, bytes: &[u8]) -> Result<Option<Hash>, SyncError> {
    let Some(chunk) = bytes.get(8..) else {
        return Ok(None);
    };
    let d = ring::digest::digest(&ring::digest::SHA256, chunk);
    let mut h: Hash = [0; 32];
    h.copy_from_slice(d.as_ref());
    Ok(r.logged(&h)?.then_some(h))
}

/// How the refusal of a change whose author cannot be verified begins:
/// the sender holds such changes and offers them again later (see
/// [`may_pass_later`]).
pub const UNVERIFIED: &str = "cannot verify its author: ";

/// How the refusal of a change that depends on a change the receiver does
/// not have begins.
pub const MISSING_DEPENDENCY: &str = "it depends on a change this replica does not have";

fn unverifiable_reason(author: Uuid, why: &str) -> String {
    format!(
        "{UNVERIFIED}device {author} is not known to this replica ({why}); held until a certificate for it can arrive"
    )
}

/// True if a refusal with this reason may pass once the receiver learns
/// more (the author's certificate, a missing dependency): the sender
/// offers such changes again at its next syncs, unlike scope refusals.
pub fn may_pass_later(reason: &str) -> bool {
    reason.starts_with(UNVERIFIED) || reason.starts_with(MISSING_DEPENDENCY)
}

/// The document a stored (or pending) change belongs to.
fn doc_of(r: &Reader<'_>, hash: &Hash) -> Result<Option<DocRef>, SyncError> {
    Ok(r.change_document(hash)?
        .map(|(k, i)| DocRef::from_row(&k, &i)))
}

/// The submission id inside a record (a document's first change): the
/// last root `id` the change puts, read from its ops (no document is built;
/// [`plan_doc`] checks the document it makes holds the same id).
fn record_id(change: &Change) -> Option<Uuid> {
    use automerge::ScalarValue;
    use automerge::legacy::{Key, ObjectId, OpType};
    if !change.deps().is_empty() {
        return None;
    }
    let ops = change.decode().operations;
    let last = ops
        .iter()
        .rev()
        .find(|op| op.obj == ObjectId::Root && matches!(&op.key, Key::Map(k) if k == "id"))?;
    match &last.action {
        OpType::Put(ScalarValue::Str(s)) => Uuid::parse_str(s).ok(),
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
    /// Refused one by one (among them, scope refusals kept in `pending`).
    pub refused: Vec<Refusal>,
    /// A registry or form document changed: the store reloads its reference data.
    pub reference: bool,
    /// Documents decided again inside the write: another write changed
    /// them after the snapshot the batch was planned on.
    pub replanned: u32,
}

impl Applied {
    pub(crate) fn accepted(&self) -> u32 {
        self.stored + self.duplicates + self.pending
    }
}

struct Item {
    c: Checked,
    origin: Option<Uuid>,
    /// Its row in `pending` exists (delete it once the change is applied).
    from_pending: bool,
    /// It came in this batch (its refusals are reported to the sender).
    in_batch: bool,
}

/// Applies a verified batch inside the caller's transaction: plans it on
/// the writer's own state ([`plan`]) and writes the plan ([`commit`]).
pub(crate) fn apply(
    w: &Writer<'_>,
    authors: &mut Authors<'_>,
    verified: Verified,
    origin: Uuid,
) -> Result<Applied, SyncError> {
    let planned = plan(w, authors, verified, origin)?;
    commit(w, authors, planned)
}

/// A verified batch decided on a snapshot: per document, what applies,
/// what waits and what is refused (see [`plan_doc`]), with where the
/// document stood when it was decided. Planning is the expensive part of an
/// apply (loading and merging automerge documents, judging roles, scope and
/// validity, saving the merged document); it reads and writes nothing of
/// the writer's, so a hub plans one request while it commits another.
pub(crate) struct Plan {
    /// The verified changes' hashes (see [`Verified::hashes`]).
    hashes: Vec<Hash>,
    bundles: Vec<Bundle>,
    unresolved: Vec<Refusal>,
    docs: Vec<DocPlan>,
    /// The reference (registry, forms) the plan validated against.
    reference_seen: Option<i64>,
    /// The batch's changes already in the log when planned.
    known: u32,
}

impl Plan {
    /// The verified changes' hashes (see [`Verified::hashes`]).
    pub(crate) fn hashes(&self) -> Vec<Hash> {
        self.hashes.clone()
    }
}

/// One document's part of a [`Plan`].
struct DocPlan {
    docref: DocRef,
    /// The batch's changes for it and those that waited in `pending`.
    items: Vec<Item>,
    /// Where it stood in the snapshot the plan read.
    seen: DocStamp,
    writes: DocWrites,
}

/// A document's saved bytes and, for a submission, its state and whether
/// that state fails validation.
type Saved = (Vec<u8>, Option<(StoredSubmission, bool)>);

/// What one document's apply writes, decided by [`plan_doc`].
#[derive(Default)]
struct DocWrites {
    /// Changes whose `pending` row goes (applied, already here, refused for good).
    release: Vec<Hash>,
    /// Items held in `pending` (waiting for a dependency, or for scope).
    hold: Vec<usize>,
    /// Items applied, in dependency order.
    applied: Vec<usize>,
    /// The document after them, and for a submission its state and whether
    /// that state fails validation.
    saved: Option<Saved>,
    /// The batch's changes already here, waiting, refused.
    duplicates: u32,
    pending: u32,
    refused: Vec<Refusal>,
    /// A registry or form document changed.
    reference: bool,
}

/// Groups a verified batch by document and decides each on `r` (a
/// snapshot, or the writer itself), writing nothing.
pub(crate) fn plan(
    r: &Reader<'_>,
    authors: &mut Authors<'_>,
    verified: Verified,
    origin: Uuid,
) -> Result<Plan, SyncError> {
    let reference_seen = r.reference_stamp()?;
    let hashes = verified.hashes();
    let known = u32::try_from(verified.known.len()).unwrap_or(u32::MAX);
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
        if groups[i].1.iter().any(|it| it.c.hash == c.hash) {
            continue; // the same change twice in one message
        }
        groups[i].1.push(Item {
            c,
            origin: Some(origin),
            from_pending: false,
            in_batch: true,
        });
    }
    let mut docs = Vec::with_capacity(groups.len());
    for (docref, batch) in groups {
        let seen = r.document_stamp(&docref.kind_and_id().1)?;
        let items = with_pending(r, &docref, batch)?;
        let writes = plan_doc(r, authors, &docref, &items)?;
        docs.push(DocPlan {
            docref,
            items,
            seen,
            writes,
        });
    }
    Ok(Plan {
        hashes,
        bundles: verified.bundles,
        unresolved: verified.unresolved,
        docs,
        reference_seen,
        known,
    })
}

/// Writes a plan in the caller's transaction: bundles and learned
/// certificates, then each document as planned. A document that another
/// write changed since the plan's snapshot (its [`DocStamp`] differs: a
/// change of it stored, held or released meanwhile), and every document
/// when the reference changed (meanwhile, or by a registry or form change
/// earlier in this batch), is decided again here on the writer's state:
/// the outcome is the one a plan made inside the write would have had.
pub(crate) fn commit(
    w: &Writer<'_>,
    authors: &mut Authors<'_>,
    plan: Plan,
) -> Result<Applied, SyncError> {
    for c in std::mem::take(&mut authors.learned) {
        keep_certificate(w, &c)?;
    }
    for b in &plan.bundles {
        b.store(w)?;
    }
    let mut out = Applied {
        refused: plan.unresolved,
        duplicates: plan.known,
        ..Applied::default()
    };
    let mut stale_reference = w.reference_stamp()? != plan.reference_seen;
    if stale_reference {
        authors.reference = None;
    }
    for mut dp in plan.docs {
        if stale_reference || w.document_stamp(&dp.docref.kind_and_id().1)? != dp.seen {
            let batch = dp
                .items
                .into_iter()
                .filter(|it| it.in_batch)
                .map(|it| Item {
                    from_pending: false,
                    ..it
                })
                .collect();
            dp.items = with_pending(w, &dp.docref, batch)?;
            dp.writes = plan_doc(w, authors, &dp.docref, &dp.items)?;
            out.replanned += 1;
        }
        if dp.writes.reference && dp.writes.saved.is_some() {
            // What follows is validated against the new reference.
            stale_reference = true;
            authors.reference = None;
        }
        write_doc(w, &dp.docref, &dp.items, dp.writes, &mut out)?;
    }
    for c in std::mem::take(&mut authors.learned) {
        keep_certificate(w, &c)?;
    }
    Ok(out)
}

/// The batch's items for a document and, after them, what waits in
/// `pending` for it (a change sent again that waits there is one item,
/// whose row is cleared once it is settled).
fn with_pending(
    r: &Reader<'_>,
    docref: &DocRef,
    mut items: Vec<Item>,
) -> Result<Vec<Item>, SyncError> {
    for p in load_pending(r, docref)? {
        match items.iter_mut().find(|it| it.c.hash == p.c.hash) {
            Some(it) => it.from_pending = true,
            None => items.push(p),
        }
    }
    Ok(items)
}

/// Writes what [`plan_doc`] decided for one document.
fn write_doc(
    w: &Writer<'_>,
    docref: &DocRef,
    items: &[Item],
    writes: DocWrites,
    out: &mut Applied,
) -> Result<(), SyncError> {
    let (kind, id) = docref.kind_and_id();
    for h in &writes.release {
        w.release(h)?;
    }
    for &i in &writes.hold {
        let it = &items[i];
        w.hold(&PendingChange {
            hash: it.c.hash,
            doc_id: id.clone(),
            kind: kind.clone(),
            author: it.c.author,
            bundle: it.c.bundle,
            origin: it.origin,
            bytes: it.c.change.raw_bytes().to_vec(),
        })?;
    }
    out.duplicates += writes.duplicates;
    out.pending += writes.pending;
    out.refused.extend(writes.refused);
    let Some((data, state)) = writes.saved else {
        return Ok(());
    };
    out.reference |= writes.reference;
    let changes: Vec<NewChange<'_>> = writes
        .applied
        .iter()
        .map(|&i| {
            let c = &items[i].c;
            NewChange {
                hash: c.hash,
                author: c.author,
                time: c.change.timestamp(),
                op: c.change.message().unwrap_or(""),
                bytes: c.change.raw_bytes(),
                origin: items[i].origin,
                bundle: Some(c.bundle),
            }
        })
        .collect();
    out.stored += w.save_document(
        &kind,
        &id,
        &data,
        &changes,
        state.as_ref().map(|(s, invalid)| (s, *invalid)),
    )?;
    Ok(())
}

fn load_pending(r: &Reader<'_>, docref: &DocRef) -> Result<Vec<Item>, SyncError> {
    let (_, id) = docref.kind_and_id();
    let mut out = Vec::new();
    for p in r.pending_for(&id)? {
        let Ok(change) = Change::try_from(p.bytes.as_slice()) else {
            continue;
        };
        out.push(Item {
            c: Checked {
                hash: change.hash().0,
                doc: docref.clone(),
                change,
                author: p.author,
                bundle: p.bundle,
            },
            origin: p.origin,
            from_pending: true,
            in_batch: false,
        });
    }
    Ok(out)
}

/// What became of one item in [`apply_doc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Dependencies missing (or held back): waits in `pending`.
    Waiting,
    /// Already in the document.
    Duplicate,
    /// Applied.
    Applied,
    /// Refused for good (bad change, unknown author, wrong document).
    Dropped,
    /// Refused for scope, kept in `pending`: a later change that brings the
    /// document into its author's FMPs lets it apply.
    Held,
}

/// Decides, writing nothing, what becomes of the changes available for one
/// document (`items`: the batch's and those waiting in `pending`): applied
/// in dependency order, each checked on its own
/// for what does not depend on scope (automerge accepts it, the submission
/// stays valid and keeps its id; non-submission documents only from HQ's
/// key, the store's authority). Scope is judged on the document's state after all
/// of them: every author of an applied change must be allowed the FMP the
/// receiver held before (a submission that exists here is never moved out of
/// or into another author's FMP) and the FMP after. The changes of an author
/// who is not are held back in `pending`, reported refused with the reason,
/// and the rest judged again without them (and without what depends on them).
fn plan_doc(
    r: &Reader<'_>,
    authors: &mut Authors<'_>,
    docref: &DocRef,
    items: &[Item],
) -> Result<DocWrites, SyncError> {
    let (kind, id) = docref.kind_and_id();
    let mut writes = DocWrites::default();
    let existing: Option<(String, Vec<u8>)> = r.document(&id)?;
    let mut base = match &existing {
        Some((k, _)) if *k != kind => {
            for it in items.iter().filter(|it| it.in_batch) {
                writes.refused.push(Refusal {
                    hash: it.c.hash,
                    reason: format!("document {id} is a {k}, not a {kind}"),
                });
            }
            return Ok(writes);
        }
        Some((_, data)) => AutoCommit::load(data)?,
        None => AutoCommit::new(),
    };
    let before: Option<StoredSubmission> = match (&existing, docref) {
        (Some(_), DocRef::Submission(_)) => doc::read_submission(&base).ok(),
        _ => None,
    };
    let before_fmp = before.as_ref().map(|s| s.submission.fmp.clone());
    // Who recorded it: an enumerator may change only its own records.
    let recorded_by = match (&existing, docref) {
        (Some(_), DocRef::Submission(uuid)) => r.record_author(*uuid)?,
        _ => None,
    };
    let mut fate: Vec<Fate> = vec![Fate::Waiting; items.len()];
    let mut reasons: HashMap<usize, String> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();
    let (mut doc, state) = loop {
        order.clear();
        for f in fate.iter_mut() {
            if *f == Fate::Applied {
                *f = Fate::Waiting;
            }
        }
        let mut doc = base.clone();
        let mut state = before.clone();
        let mut creator = recorded_by;
        loop {
            let mut progress = false;
            for (i, it) in items.iter().enumerate() {
                if fate[i] != Fate::Waiting {
                    continue;
                }
                let h = it.c.hash;
                if base.get_change_by_hash(&ChangeHash(h)).is_some() {
                    fate[i] = Fate::Duplicate;
                    continue;
                }
                if it
                    .c
                    .change
                    .deps()
                    .iter()
                    .any(|d| doc.get_change_by_hash(d).is_none())
                {
                    continue;
                }
                progress = true;
                match check_one(r, authors, docref, &kind, &doc, it, creator)? {
                    Ok((trial, after)) => {
                        doc = trial;
                        creator.get_or_insert(it.c.author);
                        if after.is_some() {
                            state = after;
                        }
                        fate[i] = Fate::Applied;
                        order.push(i);
                    }
                    Err(reason) => {
                        fate[i] = Fate::Dropped;
                        reasons.insert(i, reason);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        // Scope, on the state after everything that applies.
        // First the authors who may not write the record as the receiver
        // holds it (whatever the others do), then, judged again without
        // them, those who may not write it as it ends.
        let mut held_any = false;
        if let (DocRef::Submission(_), Some(after)) = (docref, &state) {
            let after_fmp = after.submission.fmp.clone();
            let passes = [(before_fmp.clone(), false), (Some(after_fmp), true)];
            for (fmp, last) in passes.into_iter().filter_map(|(f, l)| Some((f?, l))) {
                let mut judged: HashMap<Uuid, Option<String>> = HashMap::new();
                for (i, it) in items.iter().enumerate() {
                    if fate[i] != Fate::Applied {
                        continue;
                    }
                    let author = it.c.author;
                    if let std::collections::hash_map::Entry::Vacant(e) = judged.entry(author) {
                        let bad = authors
                            .resolve(r, author)?
                            .filter(|info| !info.may_write(&fmp))
                            // As it ends, the record may be in an FMP its
                            // author may not write because another author
                            // moved it (a supervisor's correction): each of
                            // its changes is then judged on the record as
                            // that change found it and left it.
                            .filter(|info| {
                                !(last
                                    && causally_within(&mut doc, items, &fate, author, info))
                            })
                            .map(|info| {
                                format!(
                                    "device {author} may not write submissions of {fmp} (its FMPs: {})",
                                    info.fmps.as_deref().unwrap_or_default().join(", ")
                                )
                            });
                        e.insert(bad);
                    }
                    if let Some(Some(reason)) = judged.get(&author) {
                        fate[i] = Fate::Held;
                        reasons.insert(i, reason.clone());
                        held_any = true;
                    }
                }
                if held_any {
                    break;
                }
            }
        }
        // Validity, on the same state: a change that leaves (as its author
        // saw it) a submission the rules refuse is held like a scope
        // refusal; two valid changes merging into an invalid state are not
        // (the record is flagged for review instead).
        if !held_any
            && let (DocRef::Submission(_), Some(after)) = (docref, &state)
            && {
                let r = authors.reference(r)?;
                roles::check_state(after, &r.0, &r.1).is_err()
            }
        {
            let reference = authors.reference(r)?;
            for (i, it) in items.iter().enumerate() {
                if fate[i] != Fate::Applied {
                    continue;
                }
                if let Some(reason) = invalid_by(&mut doc.clone(), &it.c.change, &reference)? {
                    fate[i] = Fate::Held;
                    reasons.insert(i, reason);
                    held_any = true;
                }
            }
        }
        if !held_any {
            break (doc, state);
        }
    };
    for (i, it) in items.iter().enumerate() {
        let h = it.c.hash;
        match fate[i] {
            Fate::Duplicate | Fate::Applied | Fate::Dropped => {
                if it.from_pending {
                    writes.release.push(h);
                }
                match fate[i] {
                    Fate::Duplicate if it.in_batch => writes.duplicates += 1,
                    Fate::Dropped if it.in_batch => writes.refused.push(Refusal {
                        hash: h,
                        reason: reasons.remove(&i).unwrap_or_default(),
                    }),
                    _ => {}
                }
            }
            Fate::Waiting | Fate::Held => {
                if !it.from_pending {
                    writes.hold.push(i);
                }
                if it.in_batch {
                    if fate[i] == Fate::Held {
                        writes.refused.push(Refusal {
                            hash: h,
                            reason: reasons.remove(&i).unwrap_or_default(),
                        });
                    } else {
                        writes.pending += 1;
                    }
                }
            }
        }
    }
    // In the order they applied: dependencies first.
    writes.applied = order
        .into_iter()
        .filter(|i| fate[*i] == Fate::Applied)
        .collect();
    if writes.applied.is_empty() {
        return Ok(writes);
    }
    if matches!(docref, DocRef::Other { .. }) {
        writes.reference = true;
        authors.reference = None;
    }
    let state = match (docref, state) {
        (DocRef::Submission(_), Some(s)) => {
            let reference = authors.reference(r)?;
            let invalid = roles::check_state(&s, &reference.0, &reference.1).is_err();
            Some((s, invalid))
        }
        _ => None,
    };
    // A new document made of one change is stored as that change's bytes
    // (read back by `AutoCommit::load` as a saved document is): no save.
    let data = match (&existing, writes.applied.as_slice()) {
        (None, [i]) => items[*i].c.change.raw_bytes().to_vec(),
        _ => doc.save(),
    };
    writes.saved = Some((data, state));
    Ok(writes)
}

/// If `change` (applied in `doc`) left the submission invalid as its author
/// saw it (the document at the change itself), the reason naming the
/// failing fields. A change made on a state that was already invalid (a
/// flagged merge) is not to blame unless it changed the submission's data
/// (a review or a delete of a flagged record passes).
fn invalid_by(
    doc: &mut AutoCommit,
    change: &Change,
    reference: &(Registry, Forms),
) -> Result<Option<String>, SyncError> {
    let at = |doc: &mut AutoCommit, heads: &[ChangeHash]| -> Option<StoredSubmission> {
        let d = if doc.get_heads() == heads {
            doc.clone()
        } else {
            doc.fork_at(heads).ok()?
        };
        doc::read_submission(&d).ok()
    };
    let Some(own) = at(doc, &[change.hash()]) else {
        return Ok(Some("not a valid submission as its author left it".into()));
    };
    let Err(e) = roles::check_state(&own, &reference.0, &reference.1) else {
        return Ok(None);
    };
    if !change.deps().is_empty()
        && let Some(parent) = at(doc, change.deps())
        && roles::check_state(&parent, &reference.0, &reference.1).is_err()
        && parent.submission == own.submission
    {
        return Ok(None);
    }
    let fields: Vec<String> = e.errors.iter().map(|f| f.to_string()).collect();
    Ok(Some(format!("{INVALID_REASON}{}", fields.join("; "))))
}

/// What a change does to a submission's review: whether it touches it, the
/// reviewers (`review.by`) it writes, and the `by` each review map it
/// writes into holds in `doc` (a map this change creates without `by`: `None`).
fn review_ops(doc: &AutoCommit, change: &Change) -> (bool, Vec<String>, Vec<Option<String>>) {
    use automerge::legacy::{Key, ObjectId, OpId, OpType};
    use automerge::{ObjType, ROOT, ReadDoc, ScalarValue, Value};
    let maps: Vec<(ObjectId, Option<String>)> = doc
        .get_all(ROOT, "review")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, id)| match (v, &id) {
            (Value::Object(ObjType::Map), automerge::ObjId::Id(ctr, actor, _)) => {
                let by = match doc.get(&id, "by") {
                    Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                        ScalarValue::Str(s) => Some(s.to_string()),
                        _ => None,
                    },
                    _ => None,
                };
                Some((ObjectId::Id(OpId(*ctr, actor.clone())), by))
            }
            _ => None,
        })
        .collect();
    let mut touches = false;
    let mut by = Vec::new();
    let mut signed_by = Vec::new();
    for op in change.decode().operations {
        let key = match &op.key {
            Key::Map(k) => Some(k.as_str()),
            Key::Seq(_) => None,
        };
        if op.obj == ObjectId::Root && key == Some("review") {
            touches = true;
            signed_by.push(None);
        } else if let Some((_, holds)) = maps.iter().find(|(m, _)| *m == op.obj) {
            touches = true;
            signed_by.push(holds.clone());
            if key == Some("by") {
                match &op.action {
                    OpType::Put(ScalarValue::Str(s)) => by.push(s.to_string()),
                    _ => by.push(String::new()),
                }
            }
        }
    }
    (touches, by, signed_by)
}

/// The reason a change is refused for its author's role, if it is: an
/// enumerator reviewing or changing a submission another device recorded,
/// or any review whose reviewer is not the device that signed it.
fn role_refusal(
    author: Uuid,
    info: &AuthorInfo,
    recorded_by: Option<Uuid>,
    submission: Uuid,
    doc: &AutoCommit,
    change: &Change,
) -> Option<String> {
    let (touches_review, by, signed_by) = review_ops(doc, change);
    if info.role == Role::Enumerator {
        if let Some(owner) = recorded_by
            && owner != author
        {
            return Some(format!(
                "device {author} is an enumerator's phone: it may change only the submissions \
                 it recorded, and {submission} was recorded by device {owner}"
            ));
        }
        if touches_review {
            return Some(format!(
                "device {author} is an enumerator's phone: only a supervisor's hub or HQ may \
                 review submissions"
            ));
        }
    }
    let me = author.to_string();
    if let Some(other) = by.iter().find(|b| **b != me) {
        return Some(format!(
            "the review names {other:?} as its reviewer but is signed by device {author}: \
             a review's reviewer is the device that signs it"
        ));
    }
    // automerge writes nothing for a put of the value already there: a
    // reviewer changing its own review need not write `by` again.
    if touches_review && by.is_empty() && !signed_by.iter().all(|b| b.as_deref() == Some(&me)) {
        return Some(format!(
            "the change by device {author} alters the review without naming its signer as \
             the reviewer (review.by)"
        ));
    }
    None
}

/// Checks one change whose dependencies are in `doc`, apart from scope:
/// `Ok` with the document after it (and the submission's state, for a
/// submission), or `Err` with the reason it is refused for good.
#[allow(clippy::type_complexity)]
fn check_one(
    r: &Reader<'_>,
    authors: &mut Authors<'_>,
    docref: &DocRef,
    kind: &str,
    doc: &AutoCommit,
    it: &Item,
    recorded_by: Option<Uuid>,
) -> Result<Result<(AutoCommit, Option<StoredSubmission>), String>, SyncError> {
    let Some(info) = authors.resolve(r, it.c.author)? else {
        return Ok(Err(format!("device {} is not known here", it.c.author)));
    };
    let mut trial = doc.clone();
    if let Err(e) = trial.apply_changes([it.c.change.clone()]) {
        return Ok(Err(format!("automerge refused the change: {e}")));
    }
    match docref {
        DocRef::Submission(uuid) => {
            let after = match doc::read_submission(&trial) {
                Ok(s) => s,
                Err(e) => return Ok(Err(format!("not a valid submission afterwards: {e}"))),
            };
            if after.submission.id != Some(*uuid) {
                return Ok(Err(format!(
                    "the change does not belong to submission {uuid}"
                )));
            }
            // Judged on the document as the change's author left it, not
            // on this replica's merge: a concurrent review that arrived
            // first must not decide whether this one is accepted.
            // (The trial itself when the change is its only head: no copy.)
            let forked;
            let own = if trial.get_heads() == [ChangeHash(it.c.hash)] {
                &trial
            } else {
                match trial.fork_at(&[ChangeHash(it.c.hash)]) {
                    Ok(d) => {
                        forked = d;
                        &forked
                    }
                    Err(e) => return Ok(Err(format!("automerge cannot read the change: {e}"))),
                }
            };
            if let Some(reason) =
                role_refusal(it.c.author, &info, recorded_by, *uuid, own, &it.c.change)
            {
                return Ok(Err(reason));
            }
            Ok(Ok((trial, Some(after))))
        }
        // `verify` resolves these to their submission.
        DocRef::InChange | DocRef::Dep => Ok(Err("the change's document is not resolved".into())),
        DocRef::Other { id, .. } => {
            // HQ's authority is its key, not a position in the chain: a hub
            // (even one with no FMP restriction) may not write these.
            let hq = &authors.authority;
            if it.c.author != hq.device_id || info.public_key != hq.public_key {
                return Ok(Err(format!(
                    "device {} may not write {kind} documents (only HQ, device {}, may)",
                    it.c.author, hq.device_id
                )));
            }
            if let Err(e) = fmp_core::refdoc::check(kind, id, &trial) {
                return Ok(Err(format!("not valid afterwards: {e}")));
            }
            Ok(Ok((trial, None)))
        }
    }
}

/// True if every applied change of `author` found the record (at its
/// dependencies) and left it (with its dependencies) in FMPs the author may
/// write: judged on the change's own causal history, the same on every
/// replica whatever the order changes arrive in.
fn causally_within(
    doc: &mut AutoCommit,
    items: &[Item],
    fate: &[Fate],
    author: Uuid,
    info: &AuthorInfo,
) -> bool {
    let fmp_at = |doc: &mut AutoCommit, heads: &[ChangeHash]| -> Option<String> {
        let at = doc.fork_at(heads).ok()?;
        doc::read_submission(&at).ok().map(|s| s.submission.fmp)
    };
    for (i, it) in items.iter().enumerate() {
        if fate[i] != Fate::Applied || it.c.author != author {
            continue;
        }
        let deps = it.c.change.deps().to_vec();
        if !deps.is_empty() {
            match fmp_at(doc, &deps) {
                Some(f) if info.may_write(&f) => {}
                _ => return false,
            }
        }
        match fmp_at(doc, &[ChangeHash(it.c.hash)]) {
            Some(f) if info.may_write(&f) => {}
            _ => return false,
        }
    }
    true
}

/// Why a change was refused alone, as far as its sender must know to
/// decide whether to send it again (read from the reason's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Its author's role does not allow it: sending it again never helps.
    Role,
    /// It leaves a submission that breaks a rule: an edit of the record
    /// making it valid lets both apply.
    Invalid,
    /// Scope, or anything else.
    Other,
}

const INVALID_REASON: &str = "the submission it leaves is not valid: ";
const ROLE_MARKS: [&str; 3] = [
    "is an enumerator's phone:",
    "a review's reviewer is the device that signs it",
    "alters the review without naming its signer",
];

/// Classifies a refusal reason written when a batch is applied.
pub fn refusal_kind(reason: &str) -> RefusalKind {
    if reason.starts_with(INVALID_REASON) {
        RefusalKind::Invalid
    } else if ROLE_MARKS.iter().any(|m| reason.contains(m)) {
        RefusalKind::Role
    } else {
        RefusalKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fmp_core::store::Store;

    /// The fast path for a change sent again holds only if the hash taken
    /// from its bytes is automerge's: a logged change is found by it, and
    /// the same bytes with one byte changed are not.
    #[test]
    fn a_logged_change_is_found_by_the_hash_of_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::init(dir.path(), "hub").expect("init");
        let mut s = fmp_core::example_submission();
        s.id = None;
        let id = store.record(s).expect("record");
        let bytes = store
            .snapshot(|r| r.doc_changes(&id.to_string()))
            .expect("changes")
            .remove(0)
            .bytes;
        let change = Change::try_from(bytes.as_slice()).expect("a change");
        let found = store.snapshot(|r| logged_hash(r, &bytes)).expect("look up");
        assert_eq!(found, Some(change.hash().0));
        let mut other = bytes.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        let missing = store.snapshot(|r| logged_hash(r, &other)).expect("look up");
        assert_eq!(missing, None);
        assert_eq!(
            store
                .snapshot(|r| logged_hash(r, &bytes[..4]))
                .expect("look up"),
            None,
            "shorter than a chunk header"
        );
    }
}
