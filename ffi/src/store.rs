//! `FmpStore`: the device's local replica, a newtype over `fmp_core::store::Store`
//! whose methods each delegate in a line or two.
//!
//! Thread-safe: the core store serializes writers on its own mutex, so Kotlin
//! may call one `FmpStore` from any number of threads. Every call is blocking;
//! call it off the main thread (e.g. `Dispatchers.IO`).

use std::path::Path;
use std::sync::Arc;

use fmp_core::store::Store;

use crate::error::FmpError;
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
        Ok(Arc::new(FmpStore {
            inner: Store::open(Path::new(&dir))?,
        }))
    }

    /// Creates a new store in `dir` (created if missing) with a fresh device
    /// identity named `name`; fails if `dir` already holds a store.
    #[uniffi::constructor]
    pub fn init(dir: String, name: String) -> Result<Arc<FmpStore>, FmpError> {
        Ok(Arc::new(FmpStore {
            inner: Store::init(Path::new(&dir), &name)?,
        }))
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
}
