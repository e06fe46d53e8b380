//! Joining a hub and syncing with it: the records and the progress callback
//! that cross the FFI, and their conversions from `fmp_hub` (the only place
//! they are written). `FmpStore.join`, `.sync` and `.status` delegate here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use fmp_hub::client::{self, Event, Joined, Progress, Summary};
use fmp_hub::status::Status;
use fmp_sync::wire::Refusal;

use crate::error::FmpError;
use crate::records::to_system_time;

/// What `FmpStore.join` learned from the hub.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct JoinedHub {
    /// The hub's device id (a UUID).
    pub hub_id: String,
    /// The hub's name, e.g. `gao-hub`.
    pub hub_name: String,
    /// The FMPs this device may now record for (its pick list of FMPs).
    pub fmps: Vec<String>,
    /// Whether this device may enroll devices of its own (a lower hub).
    pub may_enroll: bool,
}

impl From<Joined> for JoinedHub {
    fn from(j: Joined) -> JoinedHub {
        JoinedHub {
            hub_id: j.hub.to_string(),
            hub_name: j.hub_name,
            fmps: j.fmps,
            may_enroll: j.may_enroll,
        }
    }
}

/// A change refused during a sync, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedChange {
    /// The change's hash (hex).
    pub hash: String,
    /// Why it was refused, in words.
    pub reason: String,
}

impl From<&Refusal> for RefusedChange {
    fn from(r: &Refusal) -> RefusedChange {
        RefusedChange {
            hash: hex::encode(r.hash),
            reason: r.reason.clone(),
        }
    }
}

/// What a sync did (the totals so far, in a progress update).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    /// Changes sent and accepted by the hub.
    pub sent: u64,
    /// Changes received from the hub and stored here.
    pub received: u64,
    /// Bytes of requests.
    pub bytes_sent: u64,
    /// Bytes of responses.
    pub bytes_received: u64,
    /// HTTP round trips completed.
    pub round_trips: u32,
    /// Retries after network failures.
    pub retries: u32,
    /// Changes of this device the hub refused; they are set aside (see `status().quarantined`).
    pub refused: Vec<RefusedChange>,
    /// Changes from the hub refused here.
    pub refused_here: Vec<RefusedChange>,
}

impl From<&Summary> for SyncSummary {
    fn from(s: &Summary) -> SyncSummary {
        SyncSummary {
            sent: s.sent,
            received: s.received,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            round_trips: s.round_trips,
            retries: s.retries,
            refused: s.refused.iter().map(Into::into).collect(),
            refused_here: s.refused_here.iter().map(Into::into).collect(),
        }
    }
}

/// What just happened during a sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncEvent {
    /// A round trip with the hub completed.
    RoundTrip,
    /// The hub refused some changes; they are set aside and the sync goes on.
    Quarantined {
        /// How many.
        count: u64,
    },
    /// A round trip failed; the sync retries after `wait`.
    Retry {
        /// Attempt number (1 = first retry).
        attempt: u32,
        /// The wait before it.
        wait: Duration,
        /// What failed.
        error: String,
    },
}

/// One progress update: the event and the totals so far.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncUpdate {
    /// What just happened.
    pub event: SyncEvent,
    /// Totals so far.
    pub totals: SyncSummary,
}

impl From<&Progress> for SyncUpdate {
    fn from(p: &Progress) -> SyncUpdate {
        SyncUpdate {
            event: match &p.event {
                Event::RoundTrip => SyncEvent::RoundTrip,
                Event::Quarantined(n) => SyncEvent::Quarantined {
                    count: u64::try_from(*n).unwrap_or(u64::MAX),
                },
                Event::Retry {
                    attempt,
                    wait,
                    error,
                } => SyncEvent::Retry {
                    attempt: *attempt,
                    wait: *wait,
                    error: error.clone(),
                },
            },
            totals: (&p.summary).into(),
        }
    }
}

/// Receives a sync's progress, implemented in Kotlin (e.g. to update a
/// WorkManager notification).
///
/// Called on the syncing thread after each round trip, quarantine and
/// retry: keep it quick, and do not throw (an exception thrown here ends the
/// sync with `InternalException`; what was synced so far is kept).
#[uniffi::export(with_foreign)]
pub trait SyncProgress: Send + Sync {
    /// One update.
    fn on_progress(&self, update: SyncUpdate);
}

/// The options `FmpStore.sync` uses: the client's defaults, with `progress`.
pub(crate) fn sync_options(progress: Option<Arc<dyn SyncProgress>>) -> client::SyncOptions {
    client::SyncOptions {
        progress: progress.map(|cb| -> client::ProgressFn {
            Box::new(move |p: &Progress| cb.on_progress(p.into()))
        }),
        ..client::SyncOptions::default()
    }
}

/// A record the hub refused, set aside on this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuarantinedRecord {
    /// The submission's id.
    pub record_id: String,
    /// Its FMP now, if it is a submission.
    pub fmp: Option<String>,
    /// The hub's reason.
    pub reason: String,
    /// When it was set aside.
    pub at: SystemTime,
    /// It was edited back into this device's FMPs since: the next sync sends it again.
    pub released: bool,
}

/// This device's sync state, for a "last synced / N waiting" line on screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// The hub joined (its device id), if any.
    pub hub_id: Option<String>,
    /// The hub's name, once synced with.
    pub hub_name: Option<String>,
    /// The hub's address.
    pub hub_url: Option<String>,
    /// The FMPs this device may record for (`None`: not joined, any).
    pub fmps: Option<Vec<String>>,
    /// Changes made here that the hub has not acknowledged yet.
    pub pending: u64,
    /// The last completed sync with the hub joined.
    pub last_sync: Option<SystemTime>,
    /// Records the hub refused, set aside here.
    pub quarantined: Vec<QuarantinedRecord>,
}

fn parse_time(s: &str) -> Result<SystemTime, FmpError> {
    let t: DateTime<Utc> = s
        .parse()
        .map_err(|e| FmpError::other(format!("bad time {s:?} in the sync state: {e}")))?;
    Ok(to_system_time(t))
}

impl TryFrom<Status> for SyncStatus {
    type Error = FmpError;

    fn try_from(s: Status) -> Result<SyncStatus, FmpError> {
        let peer = s.peers.iter().find(|p| Some(&p.peer) == s.hub.as_ref());
        Ok(SyncStatus {
            hub_name: peer.and_then(|p| p.name.clone()),
            last_sync: peer
                .and_then(|p| p.last_sync.as_deref())
                .map(parse_time)
                .transpose()?,
            hub_id: s.hub,
            hub_url: s.hub_url,
            fmps: s.fmps,
            pending: u64::try_from(s.pending).unwrap_or(0),
            quarantined: s
                .quarantined
                .into_iter()
                .map(|q| {
                    Ok(QuarantinedRecord {
                        at: parse_time(&q.at)?,
                        record_id: q.record,
                        fmp: q.fmp,
                        reason: q.reason,
                        released: q.released,
                    })
                })
                .collect::<Result<_, FmpError>>()?,
        })
    }
}
