//! The exchange: a [`Client`] that drives a sync with one peer, and
//! [`respond`], the stateless answer of the other side (the hub's handler).

use fmp_core::store::ops::*;
use std::collections::{HashMap, HashSet};

use fmp_core::store::{Reader, Store, StoreError, Writer};
use uuid::Uuid;

use crate::apply::{self, Authors};
use crate::bundle::seal;
use crate::error::SyncError;
use crate::log::{self, Row};
use crate::reconcile::{self, Found, Key, Range};
use crate::trust::{AuthorInfo, Trust};
use crate::wire::{
    Batch, DEFAULT_MAX_BYTES, FLOOR_MAX_BYTES, Hash, MIN_MAX_BYTES, Refusal, Request, Response,
};

/// Raw bytes of changes loaded per message attempt, as a multiple of the limit.
const RAW_FACTOR: usize = 8;
/// Hashes wanted per request at most (the client never asks more; a hub
/// refuses a request that does).
pub const MAX_WANT: usize = 1000;
/// A sync gives up after this many round trips.
const MAX_ROUND_TRIPS: u32 = 100_000;
/// The setting marking a peer that reconciled with this store since its
/// last cursor request (the peer's device id follows).
const RECONCILED_WITH: &str = "reconciled_with:";

/// Per-peer progress, as stored in `peers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// How far into the peer's log this store has consumed.
    pub pulled: i64,
    /// How far into this store's log the peer has acknowledged.
    pub acked: i64,
}

/// Reads the progress recorded with `peer`.
pub fn cursor(store: &Store, peer: Uuid) -> Result<Cursor, SyncError> {
    store.snapshot(|r| read_cursor(r, peer))
}

fn read_cursor(r: &Reader<'_>, peer: Uuid) -> Result<Cursor, SyncError> {
    Ok(read_cursor_row_at(r, peer)?
        .map(|(c, _)| c)
        .unwrap_or_default())
}

/// The progress recorded with `peer` and when it was last written (ms).
fn read_cursor_row_at(r: &Reader<'_>, peer: Uuid) -> Result<Option<(Cursor, i64)>, SyncError> {
    Ok(r.peer_cursor(peer)?.map(|p| {
        (
            Cursor {
                pulled: p.pulled,
                acked: p.acked,
            },
            p.synced_at,
        )
    }))
}

/// Forgets the progress with `peer` (the next sync reconciles or starts over).
pub fn forget_peer(store: &Store, peer: Uuid) -> Result<(), SyncError> {
    store.transaction(|w| -> Result<(), SyncError> { Ok(w.forget_peer(peer)?) })
}

/// What a sync did, from the client's side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Round trips: requests answered and stored (one whose answer was
    /// lost is not counted; its bytes are, in `bytes_sent`).
    pub round_trips: u32,
    /// Bytes of all requests.
    pub bytes_sent: u64,
    /// Bytes of all responses.
    pub bytes_received: u64,
    /// Changes pushed and accepted by the peer.
    pub pushed: u64,
    /// Changes received and stored here.
    pub pulled: u64,
    /// Our changes the peer refused, with its reasons.
    pub refused_by_peer: Vec<Refusal>,
    /// The peer's changes refused here.
    pub refused_here: Vec<Refusal>,
}

enum Phase {
    Cursor,
    Reconcile {
        keys: Vec<Key>,
        send: Vec<Range>,
        found: Found,
        peer_end: Option<i64>,
        my_end: i64,
    },
    Transfer {
        have: Vec<Hash>,
        need: Vec<Hash>,
        peer_end: i64,
        my_end: i64,
    },
    Done,
}

#[derive(Debug)]
struct InFlight {
    push_upto: Option<i64>,
    /// The requester's log end sent with the request.
    log_end: i64,
    push_complete: bool,
    pushed_hashes: Vec<Hash>,
    wanted: Vec<Hash>,
}

/// Drives a sync with one peer: `next_request` → send → `handle_response`,
/// until `next_request` returns `None`. All state that matters is in the
/// store: a client dropped at any point (a cut link) loses nothing, and a
/// new one resumes from the stored cursors.
pub struct Client<'a> {
    store: &'a Store,
    trust: &'a dyn Trust,
    peer: Uuid,
    max_bytes: u32,
    phase: Phase,
    in_flight: Option<InFlight>,
    report: Report,
    /// Changes behind the cursor to push again (released from quarantine).
    resend: Vec<Hash>,
}

impl<'a> Client<'a> {
    /// A cursor sync with `peer` (its device id), 64 KiB messages.
    pub fn new(store: &'a Store, trust: &'a dyn Trust, peer: Uuid) -> Client<'a> {
        Client {
            store,
            trust,
            peer,
            max_bytes: DEFAULT_MAX_BYTES,
            phase: Phase::Cursor,
            in_flight: None,
            report: Report::default(),
            resend: Vec::new(),
        }
    }

    /// Also pushes these changes of this store's log, though the peer's
    /// cursor is past them: changes the peer refused (quarantined here)
    /// that an edit released, so the peer judges them again with the edit.
    /// They go first, in log order, in the cursor phase's first messages.
    pub fn with_resend(mut self, hashes: Vec<Hash>) -> Client<'a> {
        self.resend = hashes;
        self
    }

    /// Sets the message limit, both ways (after compression; at least
    /// [`FLOOR_MAX_BYTES`]: a message still carries one change).
    pub fn with_max_bytes(mut self, max_bytes: u32) -> Client<'a> {
        self.set_max_bytes(max_bytes);
        self
    }

    /// Changes the message limit from the next request on, both ways (the
    /// request's `max_bytes` bounds the answer): a transport shrinks it
    /// after a cut and grows it as messages get through.
    pub fn set_max_bytes(&mut self, max_bytes: u32) {
        self.max_bytes = max_bytes.max(FLOOR_MAX_BYTES);
    }

    /// The message limit the next request uses.
    pub fn max_bytes(&self) -> u32 {
        self.max_bytes
    }

    /// Starts with a set reconciliation instead of the stored cursors: for
    /// two replicas that never synced, or lost their progress record.
    pub fn reconcile(mut self) -> Result<Client<'a>, SyncError> {
        let (keys, my_end) = self
            .store
            .snapshot(|r| -> Result<_, SyncError> { Ok((r.change_keys(None)?, r.log_end()?)) })?;
        let send = reconcile::initial(&keys);
        self.phase = Phase::Reconcile {
            keys,
            send,
            found: Found::default(),
            peer_end: None,
            my_end,
        };
        Ok(self)
    }

    /// Reconciles (see [`Client::reconcile`]) when this store has no cursor
    /// with the peer but may share data with it: it holds changes received
    /// from some peer (a lost peer table, a restored copy, a hub rebuilt
    /// from another's copy). A new device, or one that only wrote its own
    /// changes, syncs by cursor: reconciling would only add the hashes.
    pub fn reconcile_if_lost(self) -> Result<Client<'a>, SyncError> {
        let peer = self.peer;
        let lost = self.store.snapshot(|r| -> Result<_, SyncError> {
            Ok(read_cursor_row_at(r, peer)?.is_none() && r.holds_received()?)
        })?;
        if lost { self.reconcile() } else { Ok(self) }
    }

    /// True while the sync is reconciling or fetching what reconciliation
    /// found, before it goes on by cursor.
    pub fn reconciling(&self) -> bool {
        matches!(self.phase, Phase::Reconcile { .. } | Phase::Transfer { .. })
    }

    /// What the sync did so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The next request to send, or `None` when the sync is complete.
    pub fn next_request(&mut self) -> Result<Option<Vec<u8>>, SyncError> {
        let me = self.store.identity();
        let max = self.max_bytes as usize;
        self.store.transaction(|w| seal(w, me))?;
        let (log_end, restored) = self
            .store
            .snapshot(|r| -> Result<_, SyncError> { Ok((r.log_end()?, r.wants_own_back()?)) })?;
        let base = Request {
            from: me.device_id,
            to: self.peer,
            push: Batch::default(),
            push_upto: 0,
            pull_after: None,
            max_bytes: self.max_bytes,
            want: Vec::new(),
            reconcile: None,
            push_after: 0,
            log_end,
            restored,
        };
        let log_end = base.log_end;
        let (bytes, flight) = match &mut self.phase {
            Phase::Done => return Ok(None),
            Phase::Cursor => {
                let peer = self.peer;
                let resend = &self.resend;
                self.store.snapshot(|r| {
                    let cur = read_cursor(r, peer)?;
                    cursor_push(r, me, peer, cur, resend, base, max)
                })?
            }
            Phase::Reconcile { send, .. } => {
                let req = Request {
                    reconcile: Some(send.clone()),
                    ..base
                };
                (
                    req.encode()?,
                    InFlight {
                        push_upto: None,
                        log_end,
                        push_complete: true,
                        pushed_hashes: Vec::new(),
                        wanted: Vec::new(),
                    },
                )
            }
            Phase::Transfer { have, need, .. } => {
                let want: Vec<Hash> = need.iter().take(MAX_WANT).copied().collect();
                let base = Request {
                    want: want.clone(),
                    ..base
                };
                let mut cache = HashMap::new();
                let (rows, (bytes, n)) = self.store.snapshot(|r| {
                    let rows = log::by_hashes(r, have, None)?;
                    let fitted = log::fit(&rows, max, |rs| {
                        let push = log::batch(r, me, rs, &mut cache)?;
                        Request {
                            push,
                            ..base.clone()
                        }
                        .encode()
                    })?;
                    Ok::<_, SyncError>((rows, fitted))
                })?;
                let pushed_hashes = rows[..n].iter().map(|r| r.hash).collect();
                (
                    bytes,
                    InFlight {
                        push_upto: None,
                        log_end,
                        push_complete: n == rows.len(),
                        pushed_hashes,
                        wanted: want,
                    },
                )
            }
        };
        self.in_flight = Some(flight);
        self.report.bytes_sent += bytes.len() as u64;
        Ok(Some(bytes))
    }

    /// Reads the peer's answer to the last request and stores what it
    /// brings, with the new progress, in one transaction. An error leaves
    /// the store as it was; the sync can be retried.
    pub fn handle_response(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        let answer = self.read_response(bytes)?;
        self.apply(answer)
    }

    /// Reads the peer's answer to the last request (decoded and checked,
    /// nothing stored yet): then [`Client::ahead`] may prepare the next
    /// request from it, and [`Client::apply`] stores it.
    pub fn read_response(&mut self, bytes: &[u8]) -> Result<Answer, SyncError> {
        let flight = self
            .in_flight
            .take()
            .ok_or_else(|| SyncError::Malformed("a response with no request in flight".into()))?;
        self.report.bytes_received += bytes.len() as u64;
        let resp = Response::decode(bytes)?;
        if resp.from != self.peer {
            return Err(SyncError::WrongPeer {
                expected: self.peer,
                actual: resp.from,
            });
        }
        Ok(Answer { resp, flight })
    }

    /// The next request of the cursor phase, prepared from an answer read
    /// but not stored yet (see "Keeping the link busy" in ADR 0001): its
    /// push starts after the pushed request's `push_upto`, its pull after
    /// the answer's `next_cursor`, exactly the cursors the answer stores.
    /// `None` where the next request depends on storing the answer first:
    /// outside the cursor phase, at the end of the sync, or where the
    /// answer moves the cursors otherwise (a restore on either side).
    pub fn ahead(&self, answer: &Answer) -> Result<Option<Ahead>, SyncError> {
        if !matches!(self.phase, Phase::Cursor) {
            return Ok(None);
        }
        let (resp, flight) = (&answer.resp, &answer.flight);
        let Some(push_upto) = flight.push_upto else {
            return Ok(None);
        };
        let mut resend = self.resend.clone();
        if !flight.pushed_hashes.is_empty() {
            let sent: HashSet<Hash> = flight.pushed_hashes.iter().copied().collect();
            resend.retain(|h| !sent.contains(h));
        }
        if !(resp.more || !flight.push_complete || !resend.is_empty()) {
            return Ok(None);
        }
        let peer = self.peer;
        let cur = self.store.snapshot(|r| read_cursor(r, peer))?;
        // The same tests as `apply`'s: any of them moves the cursors
        // otherwise than the answer says (or marks this store restored).
        let restored_here = resp.pulled_yours > flight.log_end;
        let behind = resp.log_end < cur.pulled || resp.acked_yours < cur.pulled;
        let lacks = resp.pulled_yours < cur.acked;
        if restored_here || behind || lacks {
            return Ok(None);
        }
        Ok(Some(Ahead {
            peer,
            cursor: Cursor {
                pulled: resp.next_cursor,
                acked: cur.acked.max(push_upto),
            },
            resend,
            max_bytes: self.max_bytes,
        }))
    }

    /// Takes a request built ahead (and sent) as the one in flight, once
    /// the answer it was prepared from is stored: true if the stored
    /// cursors are those it was built from. False otherwise (another sync
    /// with the peer moved them meanwhile): its answer must not be read;
    /// the next request is built from the store again.
    pub fn adopt(&mut self, built: Built) -> Result<bool, SyncError> {
        self.report.bytes_sent += built.bytes.len() as u64;
        let peer = self.peer;
        let cur = self.store.snapshot(|r| read_cursor(r, peer))?;
        if !matches!(self.phase, Phase::Cursor)
            || cur != built.cursor
            || self.resend != built.resend
        {
            return Ok(false);
        }
        self.in_flight = Some(built.flight);
        Ok(true)
    }

    /// Stores an answer read by [`Client::read_response`] with the new
    /// progress, in one transaction. An error leaves the store as it was;
    /// the sync can be retried.
    pub fn apply(&mut self, answer: Answer) -> Result<(), SyncError> {
        let Answer { resp, flight } = answer;
        let peer = self.peer;
        let trust = self.trust;
        let cursor_phase = matches!(self.phase, Phase::Cursor);
        let own = WithSelf::new(self.store, trust)?;
        // Read before the write: a read inside it would wait for the
        // write's own lock where no reader connection can be opened.
        let hq = authority(self.store, trust)?;
        let applied = {
            let mut authors = Authors::new(&own, resp.pull.certs.clone(), hq.clone());
            // Planned on a snapshot (the app's reads go on meanwhile),
            // committed in the write, as a responder does.
            let early = plan_received(self.store, &mut authors, &resp.pull, peer)?;
            self.store.transaction(|tx| -> Result<_, SyncError> {
                let fresh = || Ok(Authors::new(&own, resp.pull.certs.clone(), hq));
                let (applied, hashes) =
                    commit_received(tx, &mut authors, fresh, early, &resp.pull, peer)?;
                let mut reset = false;
                if cursor_phase {
                    // The peer holds more of this store's log than it has:
                    // this store was restored from an older copy (the
                    // peer sent its own changes back in this answer).
                    if resp.pulled_yours > flight.log_end {
                        tx.mark_restored(Some(resp.pulled_yours))?;
                    }
                    let cur = read_cursor(tx, peer)?;
                    // The peer's log ends before what this store pulled of
                    // it, or it lacks what it acknowledged: the peer was
                    // restored. Pull again from where it knew this store
                    // was, push again from what it holds.
                    // (`acked_yours` below what this store pulled: the peer
                    // did not take its cursor, from before its restore.)
                    let behind = resp.log_end < cur.pulled || resp.acked_yours < cur.pulled;
                    let lacks = resp.pulled_yours < cur.acked;
                    if behind || lacks {
                        let pulled = if behind {
                            cur.pulled.min(resp.acked_yours).min(resp.log_end).max(0)
                        } else {
                            resp.next_cursor
                        };
                        let acked = if lacks {
                            resp.pulled_yours.max(0)
                        } else {
                            cur.acked.max(flight.push_upto.unwrap_or(cur.acked))
                        };
                        tx.reset_peer_cursor(peer, pulled, acked)?;
                        if lacks {
                            tx.set_reoffer(peer, tx.log_end()?)?;
                        }
                        tx.advance_peer(peer, Some(pulled), None)?;
                        reset = true;
                    } else {
                        tx.advance_peer(peer, Some(resp.next_cursor), flight.push_upto)?;
                    }
                }
                Ok((applied, hashes, reset))
            })?
        };
        let (applied, hashes, reset) = applied;
        self.report.round_trips += 1;
        if applied.reference {
            self.store.reload_reference()?;
        }
        let got = hashes;
        self.report.pulled += u64::from(applied.stored);
        self.report.refused_here.extend(applied.refused);
        self.report.pushed += u64::from(resp.accepted);
        self.report.refused_by_peer.extend(resp.refused.clone());
        if cursor_phase && !flight.pushed_hashes.is_empty() {
            let sent: HashSet<Hash> = flight.pushed_hashes.iter().copied().collect();
            self.resend.retain(|h| !sent.contains(h));
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match phase {
            Phase::Cursor => {
                if resp.more || !flight.push_complete || !self.resend.is_empty() || reset {
                    Phase::Cursor
                } else {
                    if self.store.snapshot(|r| r.wants_own_back())? {
                        self.store.transaction(|tx| tx.mark_taken_back())?;
                    }
                    Phase::Done
                }
            }
            Phase::Reconcile {
                keys,
                found,
                peer_end,
                my_end,
                ..
            } => {
                let mut found = found;
                let peer_end = peer_end.unwrap_or(resp.log_end);
                let incoming = resp.reconcile.clone().unwrap_or_default();
                let send = reconcile::answer(
                    &keys,
                    &incoming,
                    Some(&mut found),
                    self.max_bytes.max(MIN_MAX_BYTES) as usize * 3 / 4,
                );
                if reconcile::is_done(&send) {
                    Phase::Transfer {
                        have: found.have,
                        need: found.need,
                        peer_end,
                        my_end,
                    }
                } else {
                    Phase::Reconcile {
                        keys,
                        send,
                        found,
                        peer_end: Some(peer_end),
                        my_end,
                    }
                }
            }
            Phase::Transfer {
                mut have,
                mut need,
                peer_end,
                my_end,
            } => {
                let pushed: HashSet<Hash> = flight.pushed_hashes.into_iter().collect();
                have.retain(|h| !pushed.contains(h));
                let got: HashSet<Hash> = got.into_iter().collect();
                if resp.more {
                    need.retain(|h| !got.contains(h));
                } else {
                    let asked: HashSet<Hash> = flight.wanted.into_iter().collect();
                    need.retain(|h| !asked.contains(h));
                }
                if have.is_empty() && need.is_empty() {
                    self.store
                        .transaction(|tx| tx.advance_peer(peer, Some(peer_end), Some(my_end)))?;
                    Phase::Cursor
                } else {
                    Phase::Transfer {
                        have,
                        need,
                        peer_end,
                        my_end,
                    }
                }
            }
            Phase::Done => Phase::Done,
        };
        Ok(())
    }

    /// Runs the whole sync over `send` (a transport: request bytes in,
    /// response bytes out). Stops at the first error; what was stored stays.
    pub fn run<E>(
        mut self,
        mut send: impl FnMut(Vec<u8>) -> Result<Vec<u8>, E>,
    ) -> Result<Report, E>
    where
        E: From<SyncError>,
    {
        while let Some(req) = self.next_request()? {
            if self.report.round_trips > MAX_ROUND_TRIPS {
                return Err(SyncError::NoProgress(MAX_ROUND_TRIPS).into());
            }
            let resp = send(req)?;
            self.handle_response(&resp)?;
        }
        Ok(self.report)
    }

    /// [`Client::run`] keeping the link busy: while an answer is stored,
    /// the next request is built (on a snapshot) and sent from another
    /// thread (see [`Client::ahead`]). At most one request is in flight
    /// beside the answer being stored. `send` must be callable from
    /// another thread; a failure of either stops the sync, keeping what
    /// was stored (the request sent ahead may have been taken by the peer:
    /// it is sent again from the stored cursors, and known changes cost
    /// the peer nearly nothing).
    pub fn run_pipelined<E>(
        mut self,
        mut send: impl FnMut(Vec<u8>) -> Result<Vec<u8>, E> + Send,
    ) -> Result<Report, E>
    where
        E: From<SyncError> + Send,
    {
        let store = self.store;
        while let Some(req) = self.next_request()? {
            let mut resp = send(req)?;
            loop {
                if self.report.round_trips > MAX_ROUND_TRIPS {
                    return Err(SyncError::NoProgress(MAX_ROUND_TRIPS).into());
                }
                let answer = self.read_response(&resp)?;
                let Some(ahead) = self.ahead(&answer)? else {
                    self.apply(answer)?;
                    break;
                };
                let send = &mut send;
                let (applied, sent) = std::thread::scope(|s| {
                    let next = s.spawn(move || -> Result<Option<(Built, Vec<u8>)>, E> {
                        let Some(built) = ahead.build(store)? else {
                            return Ok(None);
                        };
                        let resp = send(built.bytes().to_vec())?;
                        Ok(Some((built, resp)))
                    });
                    let applied = self.apply(answer);
                    let sent = next.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                    (applied, sent)
                });
                applied?;
                let Some((built, next)) = sent? else {
                    break;
                };
                if !self.adopt(built)? {
                    break;
                }
                resp = next;
            }
        }
        Ok(self.report)
    }
}

/// An answer read and checked, not stored yet ([`Client::read_response`]).
#[derive(Debug)]
pub struct Answer {
    resp: Response,
    flight: InFlight,
}

impl Answer {
    /// The decoded answer.
    pub fn response(&self) -> &Response {
        &self.resp
    }
}

/// The next request of a cursor sync, prepared from an answer not stored
/// yet ([`Client::ahead`]): built on a snapshot, from any thread.
#[derive(Debug, Clone)]
pub struct Ahead {
    peer: Uuid,
    cursor: Cursor,
    resend: Vec<Hash>,
    max_bytes: u32,
}

impl Ahead {
    /// Uses this message limit instead (a transport's adaptive size).
    pub fn with_max_bytes(mut self, max_bytes: u32) -> Ahead {
        self.max_bytes = max_bytes.max(FLOOR_MAX_BYTES);
        self
    }

    /// Builds the request on a snapshot of `store` (its writes go on
    /// meanwhile); `None` where it cannot be built without a write (own
    /// changes to seal first) or does not fit the limit: the client then
    /// builds it after storing the answer, as without pipelining.
    pub fn build(&self, store: &Store) -> Result<Option<Built>, SyncError> {
        let me = store.identity();
        let max = self.max_bytes as usize;
        store.snapshot(|r| {
            if r.unsealed()? {
                return Ok(None);
            }
            let base = Request {
                from: me.device_id,
                to: self.peer,
                push: Batch::default(),
                push_upto: 0,
                pull_after: None,
                max_bytes: self.max_bytes,
                want: Vec::new(),
                reconcile: None,
                push_after: 0,
                log_end: r.log_end()?,
                restored: r.wants_own_back()?,
            };
            match cursor_push(r, me, self.peer, self.cursor, &self.resend, base, max) {
                Ok((bytes, flight)) => Ok(Some(Built {
                    bytes,
                    flight,
                    cursor: self.cursor,
                    resend: self.resend.clone(),
                })),
                Err(SyncError::TooLarge { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

/// A request built ahead ([`Ahead::build`]): its bytes to send, and what
/// the client needs to read its answer once it takes it ([`Client::adopt`]).
#[derive(Debug)]
pub struct Built {
    bytes: Vec<u8>,
    flight: InFlight,
    cursor: Cursor,
    resend: Vec<Hash>,
}

impl Built {
    /// The request's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Who may write the registry and forms for `store`: the trust's HQ, else
/// the HQ the store pinned at join, else the store itself.
fn authority(store: &Store, trust: &dyn Trust) -> Result<fmp_core::store::Authority, SyncError> {
    match trust.authority() {
        Some(a) => Ok(a),
        None => Ok(store.authority()?),
    }
}

#[allow(clippy::too_many_arguments)]
fn cursor_push(
    r: &Reader<'_>,
    me: &fmp_core::store::Identity,
    peer: Uuid,
    cur: Cursor,
    resend: &[Hash],
    base: Request,
    max: usize,
) -> Result<(Vec<u8>, InFlight), SyncError> {
    let end = r.log_end()?;
    // Changes sent again go first; the cursor covers only the rows after them.
    let mut rows = log::by_hashes(r, resend, None)?;
    rows.retain(|r| r.seq <= cur.acked);
    let again = rows.len();
    // Not in the log, or not behind the cursor: nothing to send again.
    let mut done: Vec<Hash> = resend
        .iter()
        .filter(|h| !rows.iter().any(|r| r.hash == **h))
        .copied()
        .collect();
    // After the peer was restored, this store's log is offered again whole
    // (the changes it received from the peer too) up to where it ended then.
    let filter = if cur.acked < r.reoffer_until(peer)? {
        Uuid::nil()
    } else {
        peer
    };
    let (after, exhausted) = log::after_cursor(r, cur.acked, filter, max * RAW_FACTOR, None)?;
    rows.extend(after);
    let base = Request {
        push_upto: cur.acked,
        pull_after: Some(cur.pulled),
        push_after: cur.acked,
        ..base
    };
    let upto_of = |rs: &[Row]| {
        rs.iter()
            .skip(again)
            .last()
            .map(|r| r.seq)
            .unwrap_or(cur.acked)
    };
    let mut cache = HashMap::new();
    let (_, n) = log::fit(&rows, max, |rs| {
        let push = log::batch(r, me, rs, &mut cache)?;
        Request {
            push,
            push_upto: upto_of(rs),
            ..base.clone()
        }
        .encode()
    })?;
    let complete = exhausted && n == rows.len();
    let upto = if complete {
        end.max(cur.acked)
    } else {
        upto_of(&rows[..n])
    };
    let push = log::batch(r, me, &rows[..n], &mut cache)?;
    let bytes = Request {
        push,
        push_upto: upto,
        ..base
    }
    .encode()?;
    done.extend(rows[..n.min(again)].iter().map(|r| r.hash));
    Ok((
        bytes,
        InFlight {
            push_upto: Some(upto),
            log_end: end,
            push_complete: complete,
            pushed_hashes: done,
            wanted: Vec::new(),
        },
    ))
}

/// Answers one request: verifies and stores what it pushes (all or nothing
/// for the message's signatures and bytes, change by change for scope),
/// records the requester's progress, and returns the changes it lacks, the
/// wanted ones and the reconciliation reply, within its size limit. Keeps
/// no state between requests beyond the store: an HTTP handler calls it.
pub fn respond(store: &Store, trust: &dyn Trust, request: &[u8]) -> Result<Vec<u8>, SyncError> {
    respond_inner(store, trust, request, &RespondOptions::default())
}

/// How [`respond_with`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RespondOptions {
    /// All or nothing: if any pushed change is refused (outside its
    /// author's scope…), nothing of the request is stored and the error is
    /// [`SyncError::Refused`] with every refusal (a hub answers it with a 403).
    pub all_or_nothing: bool,
    /// Send the requester only submissions of these FMPs (and every
    /// document that is not a submission); `None`: everything. A hub gives
    /// each device its own FMPs' data, not the whole region's.
    pub pull_fmps: Option<Vec<String>>,
}

/// [`respond`] with options (all-or-nothing pushes, pulls limited to FMPs).
pub fn respond_with(
    store: &Store,
    trust: &dyn Trust,
    request: &[u8],
    opts: &RespondOptions,
) -> Result<Vec<u8>, SyncError> {
    respond_inner(store, trust, request, opts)
}

/// What [`respond_counted`] did with a request's push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Changes pushed in the request.
    pub pushed: u32,
    /// Changes stored (new here).
    pub stored: u32,
    /// Changes already here (sent again).
    pub duplicates: u32,
    /// Changes held back, waiting (scope, a missing dependency).
    pub pending: u32,
    /// Documents decided again inside the write: another request changed
    /// them between this one's plan (on a snapshot) and its commit.
    pub replanned: u32,
}

impl Outcome {
    /// A request that pushed changes every one of which was already here:
    /// work done twice (its sender gave up on an earlier answer).
    pub fn all_again(&self) -> bool {
        self.pushed > 0 && self.stored == 0 && self.pending == 0 && self.duplicates > 0
    }
}

/// [`respond_with`], also telling what it did with the push (for a hub's
/// counters).
pub fn respond_counted(
    store: &Store,
    trust: &dyn Trust,
    request: &[u8],
    opts: &RespondOptions,
) -> Result<(Vec<u8>, Outcome), SyncError> {
    respond_decoded(store, trust, Request::decode(request)?, opts, &|_| Ok(()))
}

/// What a responder writes in a request's own transaction beside the sync
/// (a hub notes the device's last sync and the request's nonce there: one
/// durable commit per request).
pub type AlsoInTransaction<'f> = dyn Fn(&Writer<'_>) -> Result<(), StoreError> + 'f;

/// [`respond_counted`] for a request already decoded (a hub decodes it
/// once, with its own limits), with `also` written in the request's own
/// transaction: committed with the sync, or not at all.
pub fn respond_decoded(
    store: &Store,
    trust: &dyn Trust,
    req: Request,
    opts: &RespondOptions,
    also: &AlsoInTransaction<'_>,
) -> Result<(Vec<u8>, Outcome), SyncError> {
    let mut outcome = Outcome::default();
    let out = respond_inner_counted(store, trust, req, opts, &mut outcome, also)?;
    Ok((out, outcome))
}

fn respond_inner(
    store: &Store,
    trust: &dyn Trust,
    request: &[u8],
    opts: &RespondOptions,
) -> Result<Vec<u8>, SyncError> {
    let req = Request::decode(request)?;
    respond_inner_counted(
        store,
        trust,
        req,
        opts,
        &mut Outcome::default(),
        &|_| Ok(()),
    )
}

fn respond_inner_counted(
    store: &Store,
    trust: &dyn Trust,
    req: Request,
    opts: &RespondOptions,
    outcome: &mut Outcome,
    also: &AlsoInTransaction<'_>,
) -> Result<Vec<u8>, SyncError> {
    let me = store.identity();
    if req.to != me.device_id {
        return Err(SyncError::WrongPeer {
            expected: req.to,
            actual: me.device_id,
        });
    }
    let from = req.from;
    let own = WithSelf::new(store, trust)?;
    let hq = authority(store, trust)?;
    let mut authors = Authors::new(&own, req.push.certs.clone(), hq.clone());
    // Decoding, signature checks and the plan (automerge merges, roles,
    // scope, validity) on a snapshot, outside the write lock; the write
    // commits the plan, deciding again only what changed meanwhile. What a
    // snapshot cannot settle (a dependency or a certificate missing, an
    // error) is judged again inside the write, on its state.
    let early = plan_received(store, &mut authors, &req.push, from)?;
    let (applied, mine) = store.transaction(|tx| -> Result<_, SyncError> {
        seal(tx, me)?;
        let end_before = tx.log_end()?;
        let row_at = read_cursor_row_at(tx, from)?;
        let row = row_at.map(|(c, _)| c);
        let stored = row.unwrap_or_default();
        // Read before this request's changes are applied (they are from it).
        let nothing_from_it = row.is_none() && req.push_after > 0 && !tx.holds_from(from)?;
        let reconciled_key = format!("{RECONCILED_WITH}{from}");
        // A reconciliation or its transfer (no pull cursor): this store
        // will hold what the requester holds, and the requester's next
        // cursor claim (its whole log) is believed once.
        let cursor_request =
            req.reconcile.is_none() && req.want.is_empty() && req.pull_after.is_some();
        if !cursor_request {
            tx.put_setting(
                &reconciled_key,
                &chrono::Utc::now().timestamp_millis().to_string(),
            )?;
        }
        let fresh = || Ok(Authors::new(&own, req.push.certs.clone(), hq));
        let (applied, _) = commit_received(tx, &mut authors, fresh, early, &req.push, from)?;
        if opts.all_or_nothing && !applied.refused.is_empty() {
            return Err(SyncError::Refused(applied.refused.clone()));
        }
        let mut mine = Mine {
            pulled: stored.pulled,
            acked: stored.acked,
            send_own: false,
        };
        if cursor_request {
            // The requester's push starts past what this store holds of its
            // log, or it pulled past this store's log end: this store was
            // restored from an older copy. Its cursors stay where they are
            // (the requester pushes and pulls again from them).
            // With no record of the requester, its claim is believed (it
            // lost its cursor here, or reconciled) unless this store knows
            // it was restored or holds nothing from it (a copy taken before
            // the requester's first sync).
            // (Unless it reconciled with this store since: it sends only
            // after what both hold.)
            let reconciled = tx.setting(&reconciled_key)?.is_some();
            if reconciled {
                tx.delete_setting(&reconciled_key)?;
            }
            let gap = req.push_after > stored.pulled
                && !reconciled
                && (row.is_some() || tx.needs_heal()? || nothing_from_it);
            let beyond = req.pull_after.is_some_and(|p| p > end_before);
            let since = row_at.map(|(_, at)| at);
            if gap || beyond {
                // (Seen again by a peer that has not synced since: a fresh
                // epoch costs nothing, a reused actor sequence would.)
                tx.mark_restored(None)?;
            } else {
                tx.mark_healed()?;
            }
            // A pull cursor from before this store's restore may point past
            // positions given to other changes since: not taken; the
            // answer's `acked_yours` (where this store knew the peer was)
            // below it makes the peer pull again from there.
            let stale = req.pull_after.is_some_and(|p| p > 0) && tx.before_restore(since)?;
            let pulled = (!gap).then(|| stored.pulled.max(req.push_upto));
            let acked = if beyond || stale {
                None
            } else {
                req.pull_after
            };
            tx.advance_peer(from, pulled, acked)?;
            mine.pulled = pulled.unwrap_or(stored.pulled);
            mine.acked = acked.map_or(stored.acked, |a| a.max(stored.acked));
            // The requester's log ends before what this store holds of it:
            // it was restored, and gets its own changes back too.
            mine.send_own = req.restored || req.log_end < stored.pulled;
        }
        also(tx)?;
        Ok((applied, mine))
    })?;
    *outcome = Outcome {
        pushed: u32::try_from(req.push.changes.len()).unwrap_or(u32::MAX),
        stored: applied.stored,
        duplicates: applied.duplicates,
        pending: applied.pending,
        replanned: applied.replanned,
    };
    if applied.reference {
        store.reload_reference()?;
    }
    let max = (req.max_bytes.max(FLOOR_MAX_BYTES)) as usize;
    store.snapshot(|r| build_response(r, me, &req, applied, max, opts.pull_fmps.as_deref(), mine))
}

/// Plans a received batch (a push, or a pull's answer) on a snapshot of
/// `store`, outside the write lock; `None` if it is empty or the snapshot
/// cannot settle it (see [`plan_early`]).
fn plan_received(
    store: &Store,
    authors: &mut Authors<'_>,
    batch: &Batch,
    origin: Uuid,
) -> Result<Option<apply::Plan>, SyncError> {
    if batch.changes.is_empty() {
        return Ok(None);
    }
    store.snapshot(|r| Ok(plan_early(r, authors, batch, origin)))
}

/// Applies a received batch in the write: commits the plan made on a
/// snapshot, or, where there is none, judges the batch whole here with
/// `fresh` authors (nothing the snapshot learnt is kept). Returns what was
/// applied and the hashes of the batch's verified changes.
fn commit_received<'o>(
    w: &Writer<'_>,
    authors: &mut Authors<'o>,
    fresh: impl FnOnce() -> Result<Authors<'o>, SyncError>,
    early: Option<apply::Plan>,
    batch: &Batch,
    origin: Uuid,
) -> Result<(apply::Applied, Vec<Hash>), SyncError> {
    if let Some(planned) = early {
        let hashes = planned.hashes();
        return Ok((apply::commit(w, authors, planned)?, hashes));
    }
    *authors = fresh()?;
    let verified = apply::verify(w, authors, batch.clone())?;
    let hashes = verified.hashes();
    Ok((apply::apply(w, authors, verified, origin)?, hashes))
}

/// Verifies and plans a push on a snapshot; `None` where the snapshot
/// cannot settle it (a dependency or a certificate missing, an error): the
/// write then judges it whole on its own state.
fn plan_early(
    r: &Reader<'_>,
    authors: &mut Authors<'_>,
    push: &Batch,
    from: Uuid,
) -> Option<apply::Plan> {
    let verified = apply::verify(r, authors, push.clone()).ok()?;
    if !verified.unresolved.is_empty() {
        return None;
    }
    apply::plan(r, authors, verified, from).ok()
}

/// The caller's trust with this store itself known, with its own key and
/// enrolled FMPs, where the caller does not know it: a restored store gets
/// its own changes back from its peers, and may hold no certificate of its
/// own (HQ, a store that never joined).
struct WithSelf<'a> {
    inner: &'a dyn Trust,
    me: Uuid,
    info: AuthorInfo,
}

impl<'a> WithSelf<'a> {
    fn new(store: &Store, inner: &'a dyn Trust) -> Result<WithSelf<'a>, SyncError> {
        let id = store.identity();
        let fmps = store.enrolled_fmps()?;
        // Its own changes had the rights it was enrolled with (none
        // recorded: it joined no hub, or before roles: as HQ writes).
        let role = store.role()?.unwrap_or(crate::trust::Role::Hq);
        Ok(WithSelf {
            inner,
            me: id.device_id,
            info: AuthorInfo {
                public_key: id.public_key().to_vec(),
                fmps,
                may_enroll: true,
                role,
            },
        })
    }
}

impl Trust for WithSelf<'_> {
    fn author(&self, device: Uuid) -> Option<AuthorInfo> {
        match self.inner.author(device) {
            None if device == self.me => Some(self.info.clone()),
            found => found,
        }
    }

    fn require_known(&self) -> bool {
        self.inner.require_known()
    }

    fn why_unknown(&self, device: Uuid) -> Option<String> {
        self.inner.why_unknown(device)
    }

    fn authority(&self) -> Option<fmp_core::store::Authority> {
        self.inner.authority()
    }
}

/// What the responder holds of the requester, for its answer.
#[derive(Debug, Clone, Copy)]
struct Mine {
    /// Its cursor into the requester's log.
    pulled: i64,
    /// The requester's cursor into its log, as it recorded it.
    acked: i64,
    /// The requester was restored: send it its own changes too.
    send_own: bool,
}

fn build_response(
    r: &Reader<'_>,
    me: &fmp_core::store::Identity,
    req: &Request,
    applied: apply::Applied,
    max: usize,
    pull_fmps: Option<&[String]>,
    mine: Mine,
) -> Result<Vec<u8>, SyncError> {
    let end = r.log_end()?;
    let reconcile = match &req.reconcile {
        Some(ranges) => {
            // Over the requester's scope only: an out-of-scope change is
            // in no fingerprint, count or hash list.
            let keys = r.change_keys(pull_fmps)?;
            let budget = max.max(MIN_MAX_BYTES as usize) * 3 / 4;
            Some(reconcile::answer(&keys, ranges, None, budget))
        }
        None => None,
    };
    // A wanted change outside the requester's scope is answered as if this
    // store did not have it.
    let mut rows: Vec<Row> = log::by_hashes(r, &req.want, pull_fmps)?;
    let wanted = rows.len();
    let mut exhausted = true;
    if let Some(after) = req.pull_after {
        let not_from = if mine.send_own { Uuid::nil() } else { req.from };
        let (more, ex) = log::after_cursor(r, after, not_from, max * RAW_FACTOR, pull_fmps)?;
        rows.extend(more);
        exhausted = ex;
    }
    let base = Response {
        from: me.device_id,
        accepted: applied.accepted(),
        refused: applied.refused,
        pull: Batch::default(),
        next_cursor: req.pull_after.unwrap_or(0),
        more: false,
        log_end: end,
        reconcile,
        pulled_yours: mine.pulled,
        acked_yours: mine.acked,
    };
    let after = req.pull_after.unwrap_or(0);
    let cursor_of = |rs: &[Row], complete: bool| -> i64 {
        if complete {
            return end.max(after);
        }
        // A moved-in submission's earlier changes, sent again, lie behind
        // the cursor: the cursor follows the others.
        rs.iter()
            .skip(wanted)
            .map(|r| r.seq)
            .filter(|s| *s > after)
            .max()
            .unwrap_or(after)
    };
    let mut cache = HashMap::new();
    let (_, n) = log::fit(&rows, max, |rs| {
        let pull = log::batch(r, me, rs, &mut cache)?;
        Response {
            pull,
            next_cursor: cursor_of(rs, false),
            more: true,
            ..base.clone()
        }
        .encode()
    })?;
    let complete = exhausted && n == rows.len();
    let pull = log::batch(r, me, &rows[..n], &mut cache)?;
    let resp = Response {
        pull,
        next_cursor: cursor_of(&rows[..n], complete),
        more: !complete,
        ..base
    };
    resp.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::StaticTrust;
    use fmp_core::Submission;
    use fmp_core::role::Role;

    fn store(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::init(dir.path(), name).expect("init")
    }

    fn known(trust: &mut StaticTrust, s: &Store) {
        trust.insert(
            s.identity().device_id,
            AuthorInfo {
                public_key: s.identity().public_key().to_vec(),
                fmps: None,
                may_enroll: true,
                role: Role::Hq,
            },
        );
    }

    fn gogui() -> Submission {
        let mut s = fmp_core::example_submission();
        s.fmp = "ML-GOG".into();
        s
    }

    /// A plan made on a snapshot, then another request's write to the same
    /// record, then the commit: the record is decided again in the write
    /// and keeps both edits (a plan written blindly would save a document
    /// without the other edit, beside a log that has it).
    #[test]
    fn a_document_written_between_plan_and_commit_is_decided_again() {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("dir")).collect();
        let (hub, a, b, serial) = (
            store(&dirs[0], "hub"),
            store(&dirs[1], "a"),
            store(&dirs[2], "b"),
            store(&dirs[3], "serial"),
        );
        let mut trust = StaticTrust::new(true);
        for s in [&hub, &a, &b, &serial] {
            known(&mut trust, s);
        }
        let id = a.record(gogui()).expect("record");
        for s in [&hub, &b, &serial] {
            crate::sync_in_memory(&a, &trust, s, &trust, 65536).expect("share");
        }
        a.edit(id, &serde_json::json!({"notes": "from a"}))
            .expect("edit a");
        b.edit(id, &serde_json::json!({"transport": "truck"}))
            .expect("edit b");
        let hub_id = hub.identity().device_id;
        let req_a = Request::decode(
            &Client::new(&a, &trust, hub_id)
                .next_request()
                .expect("request a")
                .expect("something to send"),
        )
        .expect("decode a");
        let req_b = Client::new(&b, &trust, hub_id)
            .next_request()
            .expect("request b")
            .expect("something to send");

        let own = WithSelf::new(&hub, &trust).expect("own");
        let mut authors = Authors::new(
            &own,
            req_a.push.certs.clone(),
            authority(&hub, &trust).expect("hq"),
        );
        let from = a.identity().device_id;
        let planned = hub
            .snapshot(|r| Ok::<_, SyncError>(plan_early(r, &mut authors, &req_a.push, from)))
            .expect("snapshot")
            .expect("a plan");
        respond(&hub, &trust, &req_b).expect("b's request meanwhile");
        let applied = hub
            .transaction(|tx| apply::commit(tx, &mut authors, planned))
            .expect("commit");
        assert_eq!((applied.stored, applied.replanned), (1, 1), "{applied:?}");
        let got = hub.get(id).expect("get");
        assert_eq!(got.submission.notes, "from a");
        assert_eq!(got.submission.transport.as_str(), "truck");

        // The same as a store that took them one after the other.
        crate::sync_in_memory(&a, &trust, &serial, &trust, 65536).expect("a");
        crate::sync_in_memory(&b, &trust, &serial, &trust, 65536).expect("b");
        assert_eq!(
            fmp_core::store::testing::converged(&hub).expect("hub"),
            fmp_core::store::testing::converged(&serial).expect("serial")
        );
    }

    /// With nothing written meanwhile, the commit writes the plan as made.
    #[test]
    fn a_plan_nothing_raced_is_written_as_made() {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
        let (hub, a) = (store(&dirs[0], "hub"), store(&dirs[1], "a"));
        let mut trust = StaticTrust::new(true);
        known(&mut trust, &hub);
        known(&mut trust, &a);
        a.record(gogui()).expect("record");
        let outcome = respond_counted(
            &hub,
            &trust,
            &Client::new(&a, &trust, hub.identity().device_id)
                .next_request()
                .expect("request")
                .expect("something"),
            &RespondOptions::default(),
        )
        .expect("respond")
        .1;
        assert_eq!((outcome.stored, outcome.replanned), (1, 0), "{outcome:?}");
    }
}
