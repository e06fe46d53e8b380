//! HQ's identity as this store pinned it when it joined a hub (the only
//! author whose registry and form changes it accepts), and the reads a
//! responder needs to serve a peer only its scope.
//!
//! The pin lives in `meta` under `hq_authority` as `DEVICE_ID:PUBLIC_KEY_HEX`.
//! A store with no pin (HQ itself, a standalone store) is its own authority.

use super::ops::{AuthorityReads, SettingsWrites};
use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use super::{Store, StoreError, access::SqlReader, log::Hash};

pub(crate) const KEY: &str = "hq_authority";

/// The device whose key alone may change the registry and forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// HQ's device id.
    pub device_id: Uuid,
    /// HQ's Ed25519 public key.
    pub public_key: Vec<u8>,
}

impl Authority {
    fn encode(&self) -> String {
        format!("{}:{}", self.device_id, hex::encode(&self.public_key))
    }

    pub(crate) fn decode(s: &str) -> Option<Authority> {
        let (id, key) = s.split_once(':')?;
        Some(Authority {
            device_id: Uuid::parse_str(id).ok()?,
            public_key: hex::decode(key).ok()?,
        })
    }
}

impl AuthorityReads for SqlReader<'_> {
    fn pinned_authority(&self) -> Result<Option<Authority>, StoreError> {
        pinned(self.conn).map_err(self.sql())
    }

    fn doc_changes(&self, doc_id: &str) -> Result<Vec<DocChange>, StoreError> {
        doc_changes(self.conn, doc_id).map_err(self.sql())
    }
}

/// The pinned authority read on a connection (`None`: no pin).
pub(crate) fn pinned(conn: &Connection) -> rusqlite::Result<Option<Authority>> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([KEY], |r| r.get(0))
        .optional()?;
    Ok(v.as_deref().and_then(Authority::decode))
}

impl Store {
    /// HQ's identity pinned at join, if this store joined a hub.
    pub fn pinned_authority(&self) -> Result<Option<Authority>, StoreError> {
        self.snapshot(|r| r.pinned_authority())
    }

    /// The authority for the registry and forms: the pinned HQ, or this
    /// store itself if it has no pin (it is HQ, or standalone).
    pub fn authority(&self) -> Result<Authority, StoreError> {
        Ok(self.pinned_authority()?.unwrap_or_else(|| Authority {
            device_id: self.identity().device_id,
            public_key: self.identity().public_key().to_vec(),
        }))
    }

    /// Pins HQ's identity (learned at join through the chain of hubs). A
    /// store already pinned to another HQ refuses it and keeps its pin.
    pub fn pin_authority(&self, hq: &Authority) -> Result<(), StoreError> {
        self.transaction(|w| {
            if let Some(old) = w.pinned_authority()? {
                if old == *hq {
                    return Ok(());
                }
                return Err(StoreError::OtherAuthority {
                    pinned: old.device_id,
                    offered: hq.device_id,
                });
            }
            w.put_setting(KEY, &hq.encode())
        })
    }
}

/// One change of a document in this store's log (what a responder needs to
/// send a document's whole history to a peer it just came into scope for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChange {
    /// Its position in the log.
    pub seq: i64,
    /// Its hash.
    pub hash: Hash,
    /// Its author's device id.
    pub author: String,
    /// The peer it was received from (`None`: made here).
    pub origin: Option<String>,
    /// The automerge change.
    pub bytes: Vec<u8>,
}

/// Every change of document `doc_id` in this store's log, in log order.
pub(crate) fn doc_changes(conn: &Connection, doc_id: &str) -> rusqlite::Result<Vec<DocChange>> {
    conn.prepare_cached(
        "SELECT seq, hash, author, origin, bytes FROM changes WHERE doc_id = ?1 ORDER BY seq",
    )?
    .query_map([doc_id], |r| {
        Ok(DocChange {
            seq: r.get(0)?,
            hash: r.get(1)?,
            author: r.get(2)?,
            origin: r.get(3)?,
            bytes: r.get(4)?,
        })
    })?
    .collect()
}

/// Every FMP code a submission's changes ever put in its `fmp` field (a
/// superset of every FMP it ever had, in any replica's order of changes).
pub fn fmps_ever<'a>(changes: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for bytes in changes {
        let Ok(change) = automerge::Change::try_from(bytes) else {
            continue;
        };
        for op in change.decode().operations {
            if let (automerge::legacy::Key::Map(k), automerge::legacy::OpType::Put(v)) =
                (&op.key, &op.action)
                && k.as_str() == "fmp"
                && let automerge::ScalarValue::Str(s) = v
                && !out.iter().any(|f| f == s.as_str())
            {
                out.push(s.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pin_is_kept_and_another_hq_refused_with_nothing_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::init(&tmp.path().join("s"), "phone").unwrap();
        assert_eq!(store.pinned_authority().unwrap(), None);
        assert_eq!(
            store.authority().unwrap().device_id,
            store.identity().device_id
        );
        let hq = Authority {
            device_id: Uuid::now_v7(),
            public_key: vec![7; 32],
        };
        store.pin_authority(&hq).unwrap();
        store.pin_authority(&hq).unwrap();
        let other = Authority {
            device_id: Uuid::now_v7(),
            public_key: vec![8; 32],
        };
        let err = store.pin_authority(&other).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pinned to HQ device {}", hq.device_id)),
            "{err}"
        );
        // The same device with another key is another HQ too.
        let forged = Authority {
            public_key: vec![9; 32],
            ..hq.clone()
        };
        assert!(store.pin_authority(&forged).is_err());
        let reopened = Store::open(&tmp.path().join("s")).unwrap();
        assert_eq!(reopened.authority().unwrap(), hq);
    }

    #[test]
    fn fmps_ever_lists_the_record_s_fmp_and_every_move() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::init(&tmp.path().join("s"), "hub").unwrap();
        let id = store.record(crate::example_submission()).unwrap();
        store
            .edit(id, &serde_json::json!({"notes": "bus"}))
            .unwrap();
        let changes = store.read(|c| doc_changes(c, &id.to_string())).unwrap();
        assert_eq!(changes.len(), 2);
        let bytes = |cs: &[DocChange]| cs.iter().map(|c| c.bytes.clone()).collect::<Vec<_>>();
        let b = bytes(&changes);
        assert_eq!(fmps_ever(b.iter().map(|x| x.as_slice())), vec!["ML-HER"]);
        assert!(
            fmps_ever([b[1].as_slice()]).is_empty(),
            "an edit of notes moves nothing"
        );
        store
            .edit(id, &serde_json::json!({"fmp": "ML-GOG"}))
            .unwrap();
        let changes = store.read(|c| doc_changes(c, &id.to_string())).unwrap();
        let b = bytes(&changes);
        assert_eq!(
            fmps_ever(b.iter().map(|x| x.as_slice())),
            vec!["ML-HER", "ML-GOG"]
        );
    }
}
