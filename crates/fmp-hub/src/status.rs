//! What `fmp status` shows of a store's sync state (pending changes and
//! last sync per peer, quarantined records) and `fmp devices` of a hub's.

use fmp_core::store::Store;
use fmp_core::store::ops::*;
use serde::Serialize;

use crate::db::{self, DeviceRow, Quarantined};
use crate::error::HubError;

/// A peer this store syncs with.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its device id.
    pub peer: String,
    /// Its name, where known (the hub joined, an enrolled device).
    pub name: Option<String>,
    /// Changes of this store the peer has not acknowledged yet.
    pub pending: i64,
    /// Last sync (RFC 3339).
    pub last_sync: Option<String>,
}

/// A store's sync state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// This device.
    pub device: String,
    /// Its name.
    pub name: String,
    /// The hub it joined, if any.
    pub hub: Option<String>,
    /// The hub's address.
    pub hub_url: Option<String>,
    /// SHA-256 fingerprint of the hub's TLS certificate pinned at join
    /// (`None` over plain HTTP or not joined).
    pub hub_tls_fingerprint: Option<String>,
    /// The FMPs it is enrolled for (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// Changes not yet acknowledged by the hub joined (all changes if never synced).
    pub pending: i64,
    /// Every peer it synced with.
    pub peers: Vec<PeerStatus>,
    /// Changes the hub refused, set aside.
    pub quarantined: Vec<Quarantined>,
    /// The same, one entry per author and reason, with a count.
    pub held: Vec<HeldGroup>,
    /// Changes received but not applied here (held back for scope, or
    /// waiting for dependencies), and why.
    pub waiting: fmp_sync::Waiting,
    /// This store was restored from an older copy of itself: when that was
    /// detected, whether a sync healed it, its own changes taken back from
    /// peers and the actor epoch it writes under (`None`: never restored).
    pub restored: Option<fmp_core::store::restore::RestoreState>,
    /// The role this device was enrolled with, if it joined a hub since roles exist.
    pub role: Option<fmp_sync::Role>,
    /// Submissions flagged for review: conflicting concurrent values, or
    /// valid concurrent edits that merged into a record breaking a rule
    /// (`fmp show` names the rule).
    pub flagged: i64,
    /// The hub joined refused this device itself at the last sync (revoked
    /// by the supervisor, or no longer known), and when; `None` otherwise.
    pub refused_by_hub: Option<HubRefusal>,
    /// Records this device recorded that a review marked has_issues or
    /// rejected, with the comment: what the enumerator must correct.
    pub to_correct: Vec<fmp_core::store::corrections::ToCorrect>,
}

/// The hub's refusal of this device itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HubRefusal {
    /// When the sync was refused (RFC 3339, UTC).
    pub at: String,
    /// The hub's reason, in words.
    pub reason: String,
}

/// Quarantined changes of one author refused for one reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HeldGroup {
    /// The device that made them, where known.
    pub author: Option<String>,
    /// Its name, where this store knows it (itself, a device enrolled here).
    pub author_name: Option<String>,
    /// The hub's reason.
    pub reason: String,
    /// How many changes.
    pub changes: usize,
    /// Offered again at each sync (the hub could not verify them yet).
    pub retried: bool,
}

/// Groups quarantined changes by author and reason, in first-seen order.
pub fn group(list: &[Quarantined]) -> Vec<HeldGroup> {
    let mut out: Vec<HeldGroup> = Vec::new();
    for q in list {
        match out
            .iter_mut()
            .find(|g| g.author == q.author && g.reason == q.reason)
        {
            Some(g) => g.changes += 1,
            None => out.push(HeldGroup {
                author: q.author.clone(),
                author_name: None,
                reason: q.reason.clone(),
                changes: 1,
                retried: fmp_sync::may_pass_later(&q.reason),
            }),
        }
    }
    out
}

/// The groups with their authors' names, where this store knows them.
fn named(store: &Store, mut groups: Vec<HeldGroup>) -> Result<Vec<HeldGroup>, HubError> {
    store.snapshot(|r| -> Result<(), HubError> {
        for g in &mut groups {
            if let Some(a) = &g.author {
                g.author_name = r.device_name(a)?;
            }
        }
        Ok(())
    })?;
    Ok(groups)
}

/// The sync state of a store.
pub fn status(store: &Store) -> Result<Status, HubError> {
    let id = store.identity();
    let waiting = fmp_sync::waiting(store)?;
    let role = store.role()?;
    let flagged = store.flagged()?;
    let up = db::upstream(store)?;
    let refused_by_hub = match &up {
        Some(up) => store.refused_by(up.hub)?.map(|(ms, reason)| HubRefusal {
            at: chrono::DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            reason,
        }),
        None => None,
    };
    let peers: Vec<PeerStatus> = store
        .peer_progress()?
        .into_iter()
        .map(|p| PeerStatus {
            peer: p.peer,
            name: p.name,
            pending: p.pending,
            last_sync: p.last_sync_ms.map(|ms| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
        })
        .collect();
    // Before its first sync with the hub it joined, everything it holds but
    // what came from that hub is still to go up.
    let pending = match &up {
        Some(u) => match peers.iter().find(|p| p.peer == u.hub.to_string()) {
            Some(p) => p.pending,
            None => store.never_sent_to(Some(u.hub))?,
        },
        None => store.never_sent_to(None)?,
    };
    let to_correct = store.to_correct()?;
    let (restored, quarantined) = store
        .snapshot(|r| -> Result<_, HubError> { Ok((r.restore_state()?, db::quarantined(r)?)) })?;
    Ok(Status {
        device: id.device_id.to_string(),
        name: id.name.clone(),
        hub: up.as_ref().map(|u| u.hub.to_string()),
        hub_url: up.as_ref().map(|u| u.url.clone()),
        hub_tls_fingerprint: up
            .as_ref()
            .and_then(|u| u.tls_cert.as_deref())
            .map(crate::tls::fingerprint),
        fmps: up.and_then(|u| u.fmps),
        pending,
        peers,
        held: named(store, group(&quarantined))?,
        quarantined,
        waiting,
        restored: restored.detected_at.is_some().then_some(restored),
        role,
        flagged,
        refused_by_hub,
        to_correct,
    })
}

/// The devices enrolled on a hub.
pub fn devices(store: &Store) -> Result<Vec<DeviceRow>, HubError> {
    db::devices(store)
}
