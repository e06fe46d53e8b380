//! What the sync client learnt about the link to each peer, kept in the
//! store's settings ([`SettingsWrites`]) so the next sync starts from it:
//! the message size that gets through, and whether the peer refused this
//! device outright (revoked) at its last sync.

use uuid::Uuid;

use super::ops::{SettingsReads, SettingsWrites};
use super::{Store, StoreError};

fn key(peer: Uuid) -> String {
    format!("link_max_bytes:{peer}")
}

fn refused_key(peer: Uuid) -> String {
    format!("refused_by:{peer}")
}

impl Store {
    /// The message size (bytes) learnt for the link to `peer` by the last
    /// sync with it; `None` if none was recorded (or it is unreadable).
    pub fn link_max_bytes(&self, peer: Uuid) -> Result<Option<u32>, StoreError> {
        let v = self.snapshot(|r| r.setting(&key(peer)))?;
        Ok(v.and_then(|s| s.parse().ok()))
    }

    /// Why `peer` last refused this device outright (revoked, unknown), and
    /// when (ms since the epoch); `None` once a sync with it got through.
    pub fn refused_by(&self, peer: Uuid) -> Result<Option<(i64, String)>, StoreError> {
        let v = self.snapshot(|r| r.setting(&refused_key(peer)))?;
        Ok(v.and_then(|s| {
            let (at, why) = s.split_once('\t')?;
            Some((at.parse().ok()?, why.to_string()))
        }))
    }

    /// Records (or, with `None`, clears) `peer`'s outright refusal of this
    /// device: at (ms) and the peer's reason in words.
    pub fn set_refused_by(
        &self,
        peer: Uuid,
        refusal: Option<(i64, &str)>,
    ) -> Result<(), StoreError> {
        self.transaction(|w| match refusal {
            Some((at, why)) => w.put_setting(&refused_key(peer), &format!("{at}\t{why}")),
            None => w.delete_setting(&refused_key(peer)),
        })
    }

    /// Records the message size that gets through to `peer`.
    pub fn set_link_max_bytes(&self, peer: Uuid, max_bytes: u32) -> Result<(), StoreError> {
        self.transaction(|w| w.put_setting(&key(peer), &max_bytes.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_learnt_size_is_kept_per_peer_across_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        {
            let s = Store::init(&dir, "phone").unwrap();
            assert_eq!(s.link_max_bytes(a).unwrap(), None);
            s.set_link_max_bytes(a, 4096).unwrap();
            s.set_link_max_bytes(a, 1500).unwrap();
            s.set_link_max_bytes(b, 65536).unwrap();
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.link_max_bytes(a).unwrap(), Some(1500));
        assert_eq!(s.link_max_bytes(b).unwrap(), Some(65536));
    }
}
