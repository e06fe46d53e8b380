//! Signed bundles: one author's batch of change hashes and its Ed25519
//! signature, sealed lazily at sync time, stored intact and forwarded as
//! they are through any number of hubs.

use fmp_core::store::Identity;
use ring::digest::{SHA256, digest};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::error::SyncError;
use crate::wire::Hash;

/// Most change hashes in one bundle (1 KiB of hashes, so that a bundle cut
/// across messages costs little and fits the smallest message).
pub const MAX_BUNDLE: usize = 32;

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

    /// Stores the bundle (a no-op if already there).
    pub fn store(&self, conn: &Connection) -> rusqlite::Result<Hash> {
        let id = self.id();
        conn.prepare_cached(
            "INSERT OR IGNORE INTO bundles (id, author, hashes, sig) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            id.to_vec(),
            self.author.to_string(),
            self.hashes.concat(),
            self.sig
        ])?;
        Ok(id)
    }

    /// Loads a stored bundle by id.
    pub fn load(conn: &Connection, id: &Hash) -> Result<Option<Bundle>, SyncError> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = conn
            .prepare_cached("SELECT author, hashes, sig FROM bundles WHERE id = ?1")?
            .query_row([id.to_vec()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((author, hashes, sig)) = row else {
            return Ok(None);
        };
        let author = Uuid::parse_str(&author)
            .map_err(|e| SyncError::Malformed(format!("stored bundle author: {e}")))?;
        let hashes = hashes
            .chunks_exact(32)
            .map(to_hash)
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| SyncError::Malformed("stored bundle hash list".into()))?;
        Ok(Some(Bundle {
            author,
            hashes,
            sig,
        }))
    }
}

/// A 32-byte slice as a hash.
pub(crate) fn to_hash(b: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(b).ok()
}

/// Seals this device's changes not covered by a bundle yet into bundles of
/// at most [`MAX_BUNDLE`] hashes, one FMP's submissions per bundle (and the
/// reference documents apart), so that a bundle served to a peer of one FMP
/// names no change of another; returns how many bundles were made.
pub fn seal(conn: &Connection, identity: &Identity) -> Result<usize, SyncError> {
    let rows: Vec<(i64, Vec<u8>, String)> = conn
        .prepare_cached(
            "SELECT c.seq, c.hash, coalesce(s.fmp, '') FROM changes c
             LEFT JOIN submissions s ON s.id = c.doc_id
             WHERE c.bundle IS NULL AND c.author = ?1 ORDER BY c.seq",
        )?
        .query_map([identity.device_id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // (FMP or '' for reference documents, its (seq, hash) rows in log order)
    type Group = (String, Vec<(i64, Vec<u8>)>);
    let mut groups: Vec<Group> = Vec::new();
    for (seq, hash, fmp) in rows {
        match groups.iter_mut().find(|(f, _)| *f == fmp) {
            Some((_, g)) => g.push((seq, hash)),
            None => groups.push((fmp, vec![(seq, hash)])),
        }
    }
    let mut made = 0;
    for chunk in groups.iter().flat_map(|(_, g)| g.chunks(MAX_BUNDLE)) {
        let hashes = chunk
            .iter()
            .map(|(_, h)| to_hash(h))
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| SyncError::Malformed("stored change hash is not 32 bytes".into()))?;
        let bundle = Bundle::sign(identity, hashes);
        let id = bundle.store(conn)?;
        let mut upd = conn.prepare_cached("UPDATE changes SET bundle = ?1 WHERE seq = ?2")?;
        for (seq, _) in chunk {
            upd.execute(params![id.to_vec(), seq])?;
        }
        made += 1;
    }
    Ok(made)
}
