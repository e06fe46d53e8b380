//! Signed bundles: one author's batch of change hashes and its Ed25519
//! signature, sealed lazily at sync time, stored intact and forwarded as
//! they are through any number of hubs.

use fmp_core::store::log::{Hash, StoredBundle};
use fmp_core::store::ops::*;
use fmp_core::store::{Identity, Reader, Writer};
use ring::digest::{SHA256, digest};
use uuid::Uuid;

use crate::error::SyncError;

/// Most change hashes in one bundle (1 KiB of hashes, so that a bundle cut
/// across messages costs little and fits the smallest message).
pub const MAX_BUNDLE: usize = 32;

/// A bundle's hashes (32 bytes each) and its largest change (raw bytes)
/// stay within this, so that any of its changes fits the smallest message
/// (2048 bytes) with it: beside those two, a message of one change and its
/// bundle takes up to about 600 bytes (envelope, signature, the author's
/// certificate chain; measured: 40 long records sealed 32 to a bundle made
/// a 2,162-byte message of one). A change past this is sealed alone, as
/// `tests/fits.rs` checks the largest record fits.
pub const BUNDLE_BUDGET: usize = 1280;

const BUNDLE_DOMAIN: &[u8] = b"fmp-sync bundle v1\0";

/// One author's signed list of change hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The signing device (the automerge actor of every listed change).
    pub author: Uuid,
    /// The change hashes, in the author's log order.
    pub hashes: Vec<Hash>,
    /// Ed25519 signature over [`Bundle::payload`].
    pub sig: Vec<u8>,
}

impl Bundle {
    /// The signed bytes: domain tag, author's 16 bytes, count (u32 BE), hashes.
    pub fn payload(author: Uuid, hashes: &[Hash]) -> Vec<u8> {
        let mut out = Vec::with_capacity(BUNDLE_DOMAIN.len() + 20 + 32 * hashes.len());
        out.extend_from_slice(BUNDLE_DOMAIN);
        out.extend_from_slice(author.as_bytes());
        out.extend_from_slice(
            &u32::try_from(hashes.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for h in hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Signs `hashes` as this device.
    pub fn sign(identity: &Identity, hashes: Vec<Hash>) -> Bundle {
        let sig = identity.sign(&Bundle::payload(identity.device_id, &hashes));
        Bundle {
            author: identity.device_id,
            hashes,
            sig,
        }
    }

    /// The bundle's id: SHA-256 of its payload.
    pub fn id(&self) -> Hash {
        let d = digest(&SHA256, &Bundle::payload(self.author, &self.hashes));
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// True if the signature verifies with `public_key`.
    pub fn verify(&self, public_key: &[u8]) -> bool {
        fmp_core::store::identity::verify(
            public_key,
            &Bundle::payload(self.author, &self.hashes),
            &self.sig,
        )
    }

    /// Stores the bundle (a no-op if already there); returns its id.
    pub fn store(&self, w: &Writer<'_>) -> Result<Hash, SyncError> {
        let stored = self.to_stored();
        w.store_bundle(&stored)?;
        Ok(stored.id)
    }

    /// Loads a stored bundle by id.
    pub fn load(r: &Reader<'_>, id: &Hash) -> Result<Option<Bundle>, SyncError> {
        Ok(r.bundle(id)?.map(|b| Bundle {
            author: b.author,
            hashes: b.hashes,
            sig: b.sig,
        }))
    }

    /// The bundle as the store keeps it, with its id.
    pub fn to_stored(&self) -> StoredBundle {
        StoredBundle {
            id: self.id(),
            author: self.author,
            hashes: self.hashes.clone(),
            sig: self.sig.clone(),
        }
    }
}

/// Seals this device's changes not covered by a bundle yet into bundles of
/// at most [`MAX_BUNDLE`] hashes, one FMP's submissions per bundle (and the
/// reference documents apart), so that a bundle served to a peer of one FMP
/// names no change of another; returns how many bundles were made.
pub fn seal(w: &Writer<'_>, identity: &Identity) -> Result<usize, SyncError> {
    Ok(w.seal(MAX_BUNDLE, BUNDLE_BUDGET, |hashes| {
        Bundle::sign(identity, hashes).to_stored()
    })?)
}
