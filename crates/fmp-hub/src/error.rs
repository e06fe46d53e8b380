//! The errors of the hub and of its client.

use std::path::PathBuf;

/// Everything that can go wrong serving, joining or syncing.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The local store failed.
    #[error(transparent)]
    Store(Box<fmp_core::store::StoreError>),
    /// The sync protocol failed or refused a message.
    #[error(transparent)]
    Sync(Box<fmp_sync::SyncError>),
    /// A file (TLS certificate or key) could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The hub could not be reached (after the retries).
    #[error("cannot reach the hub at {url}: {detail}")]
    Network {
        /// The hub's address.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The hub presented another TLS certificate than the one pinned at
    /// join: a renewed certificate, or someone else answering at its
    /// address. Never retried.
    #[error(
        "the hub at {url} presents another TLS certificate than the one this device pinned \
         when it joined (pinned: SHA-256 {pinned}; presented: SHA-256 {presented}), so this \
         device does not talk to it. If the supervisor renewed the hub's certificate, check \
         that the presented fingerprint is the one `fmp serve` printed when it started, then \
         ask the supervisor for an enrollment code and run `fmp join --store DIR --hub {url} \
         --code CODE` again (the records and the sync state stay). Otherwise someone else may \
         be answering at this address: do not sync, and tell the supervisor"
    )]
    CertificateChanged {
        /// The hub's address.
        url: String,
        /// The fingerprint pinned at join.
        pinned: String,
        /// The fingerprint of the certificate presented now.
        presented: String,
    },
    /// The hub refused the request, with its reason.
    #[error("the hub refused the request ({status} {error}): {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code of the hub's JSON body.
        error: String,
        /// The hub's reason, in words.
        reason: String,
    },
    /// The store has not joined a hub.
    #[error(
        "this store has not joined a hub; run `fmp join --store DIR --hub URL --code CODE` first"
    )]
    NotJoined,
    /// A value given by the user is not usable.
    #[error("{0}")]
    Usage(String),
    /// The hub's answer does not make sense.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
    /// The sync was cancelled (its [`crate::client::CancelToken`]); what
    /// was answered and stored before is kept. Never retried.
    #[error("sync cancelled; what was received before is kept, the next sync resumes")]
    Cancelled,
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<fmp_core::store::StoreError> for HubError {
    fn from(e: fmp_core::store::StoreError) -> HubError {
        HubError::Store(Box::new(e))
    }
}

impl From<fmp_sync::SyncError> for HubError {
    fn from(e: fmp_sync::SyncError) -> HubError {
        HubError::Sync(Box::new(e))
    }
}
