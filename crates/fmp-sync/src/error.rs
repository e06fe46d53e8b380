//! The errors of sync, and [`Refusal`], a change refused on its own (the
//! bottom of the crate: it depends on no other module of it).

use fmp_core::store::log::Hash;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A change refused on its own, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The change's hash.
    pub hash: Hash,
    /// Why, in words for a supervisor.
    pub reason: String,
}

/// Everything that can go wrong building, reading or applying a sync message.
///
/// The variants from `UnknownVersion` to `WrongPeer` refuse a whole message:
/// nothing of it was stored (see [`SyncError::is_refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The local store failed (its error names the store and what failed).
    #[error(transparent)]
    Store(Box<fmp_core::store::StoreError>),
    /// The message speaks a protocol version this build does not.
    #[error(
        "the message speaks sync protocol version {found}, this fmp speaks version {supported}; upgrade the older side"
    )]
    UnknownVersion {
        /// Version byte found.
        found: u8,
        /// Version this build speaks.
        supported: u8,
    },
    /// The message is cut short or its compressed body is damaged.
    #[error("the message is truncated or corrupt ({0}); nothing of it was stored")]
    Corrupt(String),
    /// The bytes are not a message of the expected type.
    #[error("the bytes are not an fmp-sync {expected}: {detail}; nothing of it was stored")]
    Garbage {
        /// `request` or `response`.
        expected: &'static str,
        /// What failed to decode.
        detail: String,
    },
    /// One of the changes is not an automerge change.
    #[error(
        "change {index} of the message is not a valid automerge change ({detail}); nothing of the message was stored"
    )]
    BadChange {
        /// Position in the message.
        index: usize,
        /// automerge's words.
        detail: String,
    },
    /// The message's structure is inconsistent (bad index, unsigned change…).
    #[error("malformed message: {0}; nothing of it was stored")]
    Malformed(String),
    /// A bundle's signature does not verify with its author's key.
    #[error(
        "a bundle signed as device {author} has a bad signature; nothing of the message was stored"
    )]
    BadSignature {
        /// Claimed author.
        author: Uuid,
    },
    /// A bundle's author is not known and no valid certificate came for it.
    /// No longer raised by `verify` (such bundles are refused alone, change
    /// by change); kept for callers matching on it.
    #[error(
        "device {0} is not known to this replica and no valid certificate for it came with the message; enroll it first. Nothing of the message was stored"
    )]
    UnknownAuthor(Uuid),
    /// A change's automerge actor is not its bundle's signer.
    #[error(
        "change {hash} was made by actor {actor} but sits in a bundle signed by device {author}; nothing of the message was stored"
    )]
    ForgedAuthor {
        /// Change hash (hex).
        hash: String,
        /// The change's actor (hex).
        actor: String,
        /// The bundle's author.
        author: Uuid,
    },
    /// The message is addressed to another replica, or comes from another than expected.
    #[error("the message is for replica {expected} but this is {actual}; check the peer's address")]
    WrongPeer {
        /// Replica the message names.
        expected: Uuid,
        /// Replica that got it.
        actual: Uuid,
    },
    /// A single item does not fit in a message of the given limit.
    #[error("a change of {size} bytes does not fit in a message of at most {limit} bytes")]
    TooLarge {
        /// Size of the item's message alone.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Encoding a message failed (a bug).
    #[error("encoding a message: {0}")]
    Encode(String),
    /// automerge failed on local data.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// Some pushed changes were refused one by one, and the responder was
    /// asked for all or nothing: nothing of the message was stored.
    #[error("{} change(s) refused ({}); nothing of the message was stored", .0.len(), .0.first().map(|r| r.reason.as_str()).unwrap_or(""))]
    Refused(Vec<Refusal>),
    /// The sync did not finish within its round-trip allowance.
    #[error("sync did not converge within {0} round trips")]
    NoProgress(u32),
}

impl From<fmp_core::store::StoreError> for SyncError {
    fn from(e: fmp_core::store::StoreError) -> SyncError {
        SyncError::Store(Box::new(e))
    }
}

impl SyncError {
    /// True if the error refuses a whole message from the peer (its bytes,
    /// signature or author), as opposed to a local failure. A hub answers
    /// these with a client error (HTTP 400/403), the others with 500.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SyncError::UnknownVersion { .. }
                | SyncError::Corrupt(_)
                | SyncError::Garbage { .. }
                | SyncError::BadChange { .. }
                | SyncError::Malformed(_)
                | SyncError::BadSignature { .. }
                | SyncError::UnknownAuthor(_)
                | SyncError::ForgedAuthor { .. }
                | SyncError::WrongPeer { .. }
                | SyncError::Refused(_)
        )
    }
}
