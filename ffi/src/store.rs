//! `FmpStore`: the device's local replica, a newtype over `fmp_core::store::Store`
//! whose methods each delegate in a line or two.
//!
//! Thread-safe: the core store takes its connection mutex per operation
//! (one query or one transaction), so Kotlin may call one `FmpStore` from any
//! number of threads. `sync` is long, but it holds that mutex only while it
//! reads or applies a message, never across a network round trip, so
//! `record` and `list` go on during a sync. Two `sync` calls on one store
//! take turns (a second waits for the first; it then has little to do).
//! Every call is blocking; call it off the main thread (e.g. `Dispatchers.IO`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use fmp_core::store::Store;

use crate::error::FmpError;
use crate::hub::{
    JoinedHub, SyncCancel, SyncProgress, SyncSettings, SyncStatus, SyncSummary, sync_options,
    sync_options_with,
};
use crate::records::{
    ConflictRecord, HistoryEntry, ListFilter, ReviewStatus, StoredRecord, SubmissionRecord,
    parse_id,
};
use crate::reference::{FmpInfo, fmp_infos};

/// A device's local store: record, edit, review and query submissions offline.
/// Close it with `close()` or Kotlin's `use {}`.
#[derive(Debug, uniffi::Object)]
pub struct FmpStore {
    inner: Store,
    /// Taken by `sync` only, so two syncs take turns; quick calls never wait on it.
    syncing: Mutex<()>,
}

impl FmpStore {
    fn new(inner: Store) -> Arc<FmpStore> {
        Arc::new(FmpStore {
            inner,
            syncing: Mutex::new(()),
        })
    }
}

// The FFI hands one store to many threads.
const _: fn() = || {
    fn thread_safe<T: Send + Sync>() {}
    thread_safe::<FmpStore>();
};

#[uniffi::export]
impl FmpStore {
    /// Opens the store in `dir`, migrating its schema forward if needed.
    #[uniffi::constructor]
    pub fn open(dir: String) -> Result<Arc<FmpStore>, FmpError> {
        Ok(FmpStore::new(Store::open(Path::new(&dir))?))
    }

    /// Creates a new store in `dir` (created if missing) with a fresh device
    /// identity named `name`; fails if `dir` already holds a store.
    #[uniffi::constructor]
    pub fn init(dir: String, name: String) -> Result<Arc<FmpStore>, FmpError> {
        Ok(FmpStore::new(Store::init(Path::new(&dir), &name)?))
    }

    /// This device's id (a UUID), the author of its changes.
    pub fn device_id(&self) -> String {
        self.inner.identity().device_id.to_string()
    }

    /// Validates and stores a submission; returns its id.
    pub fn record(&self, submission: SubmissionRecord) -> Result<String, FmpError> {
        Ok(self.inner.record(submission.try_into()?)?.to_string())
    }

    /// Validates and stores a submission given as canonical JSON; returns its id.
    pub fn record_json(&self, json: String) -> Result<String, FmpError> {
        let sub = fmp_core::Submission::from_json(&json)?;
        Ok(self.inner.record(sub)?.to_string())
    }

    /// Applies a JSON merge patch (RFC 7386) of the fields to change,
    /// e.g. `{"notes": "…", "people": {"adult_male": 3}}`; re-validated as a whole.
    pub fn edit(&self, id: String, patch_json: String) -> Result<StoredRecord, FmpError> {
        let patch: serde_json::Value = serde_json::from_str(&patch_json)
            .map_err(|e| FmpError::other(format!("the edit patch is not JSON: {e}")))?;
        Ok(self.inner.edit(parse_id(&id)?, &patch)?.into())
    }

    /// Marks a submission deleted (the tombstone is kept for sync).
    pub fn delete(&self, id: String) -> Result<(), FmpError> {
        Ok(self.inner.delete(parse_id(&id)?)?)
    }

    /// Records a supervisor's review; it also settles conflicting fields on the shown values.
    pub fn review(
        &self,
        id: String,
        status: ReviewStatus,
        comment: String,
    ) -> Result<StoredRecord, FmpError> {
        Ok(self
            .inner
            .review(parse_id(&id)?, status.into(), &comment)?
            .into())
    }

    /// The current state of one submission.
    pub fn get(&self, id: String) -> Result<StoredRecord, FmpError> {
        Ok(self.inner.get(parse_id(&id)?)?.into())
    }

    /// The current state of one submission as canonical JSON (with review and conflicts).
    pub fn get_json(&self, id: String) -> Result<String, FmpError> {
        let stored = self.inner.get(parse_id(&id)?)?;
        serde_json::to_string(&stored).map_err(|e| FmpError::other(e.to_string()))
    }

    /// Submissions matching `filter`, ordered by observation time then id.
    pub fn list(&self, filter: ListFilter) -> Result<Vec<StoredRecord>, FmpError> {
        let rows = self.inner.list(&filter.try_into()?)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The changes of one submission, oldest first.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>, FmpError> {
        let rows = self.inner.history(parse_id(&id)?)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The fields of one submission where concurrent edits disagreed.
    pub fn conflicts(&self, id: String) -> Result<Vec<ConflictRecord>, FmpError> {
        Ok(self.get(id)?.conflicts)
    }

    /// The FMPs of the registry in force in this store (reference data reaches it by sync).
    pub fn fmps(&self) -> Vec<FmpInfo> {
        fmp_infos(&self.inner.registry())
    }

    /// Joins the hub at `hub_url` (`http://HOST:PORT` or `https://…`, whose
    /// certificate is then pinned) with a one-time enrollment `code`; keeps
    /// the hub's address and restricts `record` to the FMPs it grants.
    /// A refused code is `Auth`, an unreachable hub `Network`.
    pub fn join(&self, hub_url: String, code: String) -> Result<JoinedHub, FmpError> {
        Ok(fmp_hub::client::join(&self.inner, &hub_url, &code)?.into())
    }

    /// Syncs with the hub joined until each has what the other had, retrying
    /// network failures with backoff (up to 8 times, a few minutes in all);
    /// `progress` hears of each round trip. Long: never holds the store
    /// while waiting for the network, so other calls go on meanwhile.
    /// `Network` once retries are spent, `Auth` if the hub no longer knows
    /// this device (or it never joined).
    pub fn sync(&self, progress: Option<Arc<dyn SyncProgress>>) -> Result<SyncSummary, FmpError> {
        let _turn = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        Ok((&fmp_hub::client::sync(&self.inner, sync_options(progress))?).into())
    }

    /// `sync` with the app's limits (`settings`, default `SyncSettings()`)
    /// and a `cancel` handle: `cancel.cancel()` from any thread stops it at
    /// once (even in the middle of a round trip or a wait before a retry)
    /// with `Cancelled`; what was received and stored is kept, and the next
    /// sync resumes from there. `Other` if a timeout in `settings` is 0.
    pub fn sync_with(
        &self,
        progress: Option<Arc<dyn SyncProgress>>,
        settings: Option<SyncSettings>,
        cancel: Option<Arc<SyncCancel>>,
    ) -> Result<SyncSummary, FmpError> {
        let opts = sync_options_with(progress, settings, cancel)?;
        let _turn = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        Ok((&fmp_hub::client::sync(&self.inner, opts)?).into())
    }

    /// The sync state: hub joined, changes waiting, last sync, records set aside.
    pub fn status(&self) -> Result<SyncStatus, FmpError> {
        fmp_hub::status::status(&self.inner)?.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fmp_core::store::ops::LogReads;

    #[test]
    fn a_record_too_large_for_a_sync_message_is_a_validation_error_naming_notes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s").to_string_lossy().into_owned();
        let store = FmpStore::init(dir, "phone".into()).expect("init");
        let mut sub = fmp_core::example_submission();
        sub.notes = "n".repeat(fmp_core::validate::MAX_NOTES_BYTES + 1);
        let json = serde_json::to_string(&sub.to_value()).expect("json");
        let Err(FmpError::Validation { fields }) = store.record_json(json) else {
            panic!("an oversized record is refused as invalid");
        };
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].field, "notes");
        assert!(fields[0].message.contains("at most 800"), "{:?}", fields[0]);
        let n = store.inner.snapshot(|r| r.log_end());
        assert_eq!(n.ok(), Some(0), "nothing stored");
    }
}
