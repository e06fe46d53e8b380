//! The messages on the wire and their encoding.
//!
//! A message is `[PROTOCOL_VERSION: u8][kind: u8 = b'Q' | b'R'][zstd-3 frame
//! of the postcard encoding of a Request or Response]`. The version byte sits
//! outside the compressed body so a future version may change anything
//! after it; an unknown version is refused with [`SyncError::UnknownVersion`].
//! Size limits (`max_bytes`) apply to the whole encoded message, after
//! compression: a sender never builds a larger one.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::SyncError;
use crate::reconcile::Range;
use crate::trust::Certificate;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Default limit of one message, after compression (64 KiB).
pub const DEFAULT_MAX_BYTES: u32 = 64 * 1024;
/// Smallest message limit (a message must hold a change and its bundle).
pub const MIN_MAX_BYTES: u32 = 2048;
/// Smallest limit a client may ask for (a link that cuts every 1.5 KB):
/// below [`MIN_MAX_BYTES`] a message still carries at least one change,
/// so it may reach [`MIN_MAX_BYTES`] when one change alone is larger.
pub const FLOOR_MAX_BYTES: u32 = 512;
/// Largest body a receiver decompresses (a defence against zstd bombs).
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;

const KIND_REQUEST: u8 = b'Q';
const KIND_RESPONSE: u8 = b'R';

/// A 32-byte automerge change hash (SHA-256 of the change chunk).
pub use fmp_core::store::log::Hash;

pub use crate::error::Refusal;

/// Which document a change belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DocRef {
    /// A submission, by id (16 bytes on the wire).
    Submission(Uuid),
    /// A submission's first change (its record): the id is the document's
    /// `id` field inside the change, so it is not repeated (16 bytes saved
    /// per record; a change without it refuses the message).
    InChange,
    /// The document of the change's first dependency, which the receiver
    /// holds or finds earlier in the message (the sender only says so when
    /// the receiver consumed that dependency already): 16 bytes saved per edit.
    Dep,
    /// A document of another kind (`registry`, `form`, `tally`…).
    Other {
        /// The `documents.kind`.
        kind: String,
        /// The `documents.id`.
        id: String,
    },
}

impl DocRef {
    /// The `documents.kind` and `documents.id` of the document.
    pub fn kind_and_id(&self) -> (String, String) {
        match self {
            DocRef::Submission(u) => ("submission".into(), u.to_string()),
            DocRef::InChange | DocRef::Dep => ("submission".into(), String::new()),
            DocRef::Other { kind, id } => (kind.clone(), id.clone()),
        }
    }

    /// The reference of a stored document.
    pub fn from_row(kind: &str, id: &str) -> DocRef {
        match (kind, Uuid::parse_str(id)) {
            ("submission", Ok(u)) if u.to_string() == id => DocRef::Submission(u),
            _ => DocRef::Other {
                kind: kind.to_string(),
                id: id.to_string(),
            },
        }
    }
}

/// One automerge change: its raw (uncompressed) chunk bytes and document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireChange {
    /// The document it changes.
    pub doc: DocRef,
    /// `Change::raw_bytes()`; the receiver recomputes the hash from them.
    pub bytes: Vec<u8>,
}

/// One entry of a bundle's hash list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashRef {
    /// The hash of the change at this index of the message's `changes`.
    Here(u32),
    /// A hash given in full (a change of the bundle not in this message).
    Hash(Hash),
}

/// A signed bundle as it travels: the hash list refers to the message's
/// changes where it can (the receiver recomputes those hashes), so a
/// bundle costs its signature and a few bytes per change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBundle {
    /// The signing device.
    pub author: Uuid,
    /// The bundle's change hashes, in signed order.
    pub hashes: Vec<HashRef>,
    /// Ed25519 signature (64 bytes) over [`crate::bundle::Bundle::payload`].
    pub sig: Vec<u8>,
}

/// Changes with the bundles that sign them and certificates of their authors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Certificates of the bundles' authors (keys travel with the data).
    pub certs: Vec<Certificate>,
    /// Every change of `changes` is claimed by exactly one bundle.
    pub bundles: Vec<WireBundle>,
    /// The changes, in the sender's log order (causal).
    pub changes: Vec<WireChange>,
}

impl Batch {
    /// True if it carries no change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A client's message: what it pushes and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The requesting replica.
    pub from: Uuid,
    /// The replica it is meant for.
    pub to: Uuid,
    /// Changes the responder lacks, in the requester's log order.
    pub push: Batch,
    /// The push covers the requester's log up to this `seq`.
    pub push_upto: i64,
    /// Send your changes after this position of your log (None: none).
    pub pull_after: Option<i64>,
    /// Largest response the requester accepts, after compression.
    pub max_bytes: u32,
    /// Changes wanted by hash (after a reconciliation).
    pub want: Vec<Hash>,
    /// Set-reconciliation ranges, when the two have no shared cursor.
    pub reconcile: Option<Vec<Range>>,
    /// The push starts after this `seq` of the requester's log (its
    /// acknowledged cursor): a responder that holds less of that log sees
    /// the gap (it was restored from an older copy) and keeps its cursor.
    pub push_after: i64,
    /// The last `seq` of the requester's log: below what the responder
    /// already consumed of it, the requester was restored from an older
    /// copy, and the responder sends it its own changes back too.
    pub log_end: i64,
    /// The requester knows it was restored from an older copy (its
    /// database file was put back, or a peer told it) and has not completed
    /// a sync since: send it its own changes after `pull_after` too.
    pub restored: bool,
}

/// The responder's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The responding replica.
    pub from: Uuid,
    /// How many pushed changes were stored (or already there, or wait for dependencies).
    pub accepted: u32,
    /// Pushed changes refused one by one (outside their author's scope…).
    pub refused: Vec<Refusal>,
    /// Changes for the requester: after its cursor, or wanted by hash.
    pub pull: Batch,
    /// Where the requester's cursor into the responder's log now stands.
    pub next_cursor: i64,
    /// More changes wait: ask again.
    pub more: bool,
    /// The last `seq` of the responder's log when it answered.
    pub log_end: i64,
    /// Set-reconciliation ranges in reply.
    pub reconcile: Option<Vec<Range>>,
    /// How far into the requester's log the responder holds (its cursor
    /// after this request): above the requester's log end, the requester
    /// was restored; below its acknowledged cursor, the responder was, and
    /// the requester pushes again from here.
    pub pulled_yours: i64,
    /// How far into the responder's log the requester had consumed, as the
    /// responder recorded it: where a requester whose cursor ran past the
    /// responder's `log_end` (a restored responder) pulls again from.
    pub acked_yours: i64,
}

fn encode<T: Serialize>(kind: u8, msg: &T) -> Result<Vec<u8>, SyncError> {
    let body = postcard::to_stdvec(msg).map_err(|e| SyncError::Encode(e.to_string()))?;
    let z = zstd::bulk::compress(&body, 3).map_err(|e| SyncError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(z.len() + 2);
    out.push(PROTOCOL_VERSION);
    out.push(kind);
    out.extend_from_slice(&z);
    Ok(out)
}

fn decode<T: DeserializeOwned>(
    kind: u8,
    expected: &'static str,
    bytes: &[u8],
    max_decoded: usize,
) -> Result<T, SyncError> {
    let Some(&version) = bytes.first() else {
        return Err(SyncError::Corrupt("empty message".into()));
    };
    if version != PROTOCOL_VERSION {
        return Err(SyncError::UnknownVersion {
            found: version,
            supported: PROTOCOL_VERSION,
        });
    }
    match bytes.get(1) {
        None => return Err(SyncError::Corrupt("message ends after its version".into())),
        Some(&k) if k != kind => {
            return Err(SyncError::Garbage {
                expected,
                detail: format!("message type {k:#04x}"),
            });
        }
        Some(_) => {}
    }
    if bytes.len() == 2 {
        return Err(SyncError::Corrupt("message ends after its header".into()));
    }
    // Bulk decompression into a buffer of this capacity stops with an error
    // as soon as the output would pass it: a bomb never grows past the limit.
    let body = zstd::bulk::decompress(&bytes[2..], max_decoded)
        .map_err(|e| SyncError::Corrupt(format!("zstd: {e}")))?;
    let (msg, rest) = postcard::take_from_bytes::<T>(&body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => {
            SyncError::Corrupt(format!("the {expected} ends early"))
        }
        e => SyncError::Garbage {
            expected,
            detail: e.to_string(),
        },
    })?;
    if !rest.is_empty() {
        return Err(SyncError::Garbage {
            expected,
            detail: format!("{} bytes left over", rest.len()),
        });
    }
    Ok(msg)
}

impl Request {
    /// The message bytes.
    pub fn encode(&self) -> Result<Vec<u8>, SyncError> {
        encode(KIND_REQUEST, self)
    }

    /// Reads a request; any damage is an error and nothing is returned.
    pub fn decode(bytes: &[u8]) -> Result<Request, SyncError> {
        decode(KIND_REQUEST, "request", bytes, MAX_DECODED_BYTES)
    }

    /// [`Request::decode`] refusing a body that decompresses to more than
    /// `max_decoded` bytes (at most [`MAX_DECODED_BYTES`]) before it is all
    /// decompressed: a hub ties it to its own body limit.
    pub fn decode_limited(bytes: &[u8], max_decoded: usize) -> Result<Request, SyncError> {
        decode(
            KIND_REQUEST,
            "request",
            bytes,
            max_decoded.min(MAX_DECODED_BYTES),
        )
    }
}

impl Response {
    /// The message bytes.
    pub fn encode(&self) -> Result<Vec<u8>, SyncError> {
        encode(KIND_RESPONSE, self)
    }

    /// Reads a response; any damage is an error and nothing is returned.
    pub fn decode(bytes: &[u8]) -> Result<Response, SyncError> {
        decode(KIND_RESPONSE, "response", bytes, MAX_DECODED_BYTES)
    }
}
