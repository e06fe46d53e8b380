//! Joining a hub and syncing with it: the records and the progress callback
//! that cross the FFI, and their conversions from `fmp_hub` (the only place
//! they are written). `FmpStore.join`, `.sync` and `.status` delegate here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use fmp_hub::Refusal;
use fmp_hub::client::{self, Event, Joined, Progress, Summary};
use fmp_hub::status::Status;

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

/// Limits of one sync (`FmpStore.syncWith`); `SyncSettings()` in Kotlin
/// has the defaults of `sync` (see `defaultSyncSettings()`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSettings {
    /// Retries after network failures before giving up (a round trip that
    /// gets through resets the count); 0: fail at the first.
    #[uniffi(default = 8)]
    pub retries: u32,
    /// Longest silence from the hub, in seconds, before a request is
    /// abandoned as a dead link and retried (at least 1).
    #[uniffi(default = 30)]
    pub stall_timeout_secs: u32,
    /// Longest time, in seconds, one HTTP request may take (at least 1).
    #[uniffi(default = 120)]
    pub request_timeout_secs: u32,
}

impl Default for SyncSettings {
    fn default() -> SyncSettings {
        let d = client::SyncOptions::default();
        let secs = |t: Duration| u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
        SyncSettings {
            retries: d.retries,
            stall_timeout_secs: secs(d.stall_timeout),
            request_timeout_secs: secs(d.timeout),
        }
    }
}

/// The settings `FmpStore.sync` uses (what `SyncSettings()` holds in Kotlin).
#[uniffi::export]
pub fn default_sync_settings() -> SyncSettings {
    SyncSettings::default()
}

/// Stops a running `FmpStore.syncWith` from any thread (e.g. when the user
/// leaves the screen or WorkManager stops the work): the sync then throws
/// `FmpException.Cancelled` at once, keeping what it received. One per
/// sync: once cancelled it stays cancelled.
#[derive(Debug, Default, uniffi::Object)]
pub struct SyncCancel {
    token: client::CancelToken,
}

#[uniffi::export]
impl SyncCancel {
    /// A handle not cancelled yet; pass it to `syncWith`.
    #[uniffi::constructor]
    pub fn new() -> Arc<SyncCancel> {
        Arc::new(SyncCancel::default())
    }

    /// Cancels the sync given this handle (or the next one, if none runs yet).
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// The options `FmpStore.syncWith` uses: `sync_options(progress)` with the
/// app's limits (refused if a timeout is 0) and its cancel handle.
pub(crate) fn sync_options_with(
    progress: Option<Arc<dyn SyncProgress>>,
    settings: Option<SyncSettings>,
    cancel: Option<Arc<SyncCancel>>,
) -> Result<client::SyncOptions, FmpError> {
    let s = settings.unwrap_or_default();
    if s.stall_timeout_secs == 0 || s.request_timeout_secs == 0 {
        return Err(FmpError::other(format!(
            "sync settings: the stall and request timeouts must be at least 1 s, not {} s and {} s",
            s.stall_timeout_secs, s.request_timeout_secs
        )));
    }
    Ok(client::SyncOptions {
        retries: s.retries,
        stall_timeout: Duration::from_secs(s.stall_timeout_secs.into()),
        timeout: Duration::from_secs(s.request_timeout_secs.into()),
        cancel: cancel.map(|c| c.token.clone()),
        ..sync_options(progress)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_those_of_sync() {
        let d = client::SyncOptions::default();
        let s = SyncSettings::default();
        assert_eq!(s.retries, d.retries);
        assert_eq!(
            Duration::from_secs(s.stall_timeout_secs.into()),
            d.stall_timeout
        );
        assert_eq!(
            Duration::from_secs(s.request_timeout_secs.into()),
            d.timeout
        );
        let o = sync_options_with(None, None, None).ok();
        let o = o.as_ref().map(|o| (o.retries, o.stall_timeout, o.timeout));
        assert_eq!(o, Some((d.retries, d.stall_timeout, d.timeout)));
    }

    #[test]
    fn settings_and_cancel_reach_the_client() {
        let cancel = SyncCancel::new();
        let settings = SyncSettings {
            retries: 2,
            stall_timeout_secs: 5,
            request_timeout_secs: 40,
        };
        let Ok(o) = sync_options_with(None, Some(settings), Some(cancel.clone())) else {
            panic!("valid settings refused");
        };
        assert_eq!(o.retries, 2);
        assert_eq!(o.stall_timeout, Duration::from_secs(5));
        assert_eq!(o.timeout, Duration::from_secs(40));
        let token = o.cancel.as_ref().map(client::CancelToken::is_cancelled);
        assert_eq!(token, Some(false));
        cancel.cancel();
        assert!(cancel.is_cancelled());
        let token = o.cancel.as_ref().map(client::CancelToken::is_cancelled);
        assert_eq!(token, Some(true), "the client's token is the app's handle");
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        for (stall, request) in [(0, 120), (30, 0)] {
            let settings = SyncSettings {
                retries: 8,
                stall_timeout_secs: stall,
                request_timeout_secs: request,
            };
            assert!(matches!(
                sync_options_with(None, Some(settings), None),
                Err(FmpError::Other { .. })
            ));
        }
    }
}
