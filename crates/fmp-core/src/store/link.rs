//! What the sync client learnt about the link to each peer, kept in `meta`
//! so the next sync starts from it: the message size that gets through.

use rusqlite::OptionalExtension;
use uuid::Uuid;

use super::{Store, StoreError, sql_err};

fn key(peer: Uuid) -> String {
    format!("link_max_bytes:{peer}")
}

impl Store {
    /// The message size (bytes) learnt for the link to `peer` by the last
    /// sync with it; `None` if none was recorded (or it is unreadable).
    pub fn link_max_bytes(&self, peer: Uuid) -> Result<Option<u32>, StoreError> {
        let v: Option<String> = self.read(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key(peer)], |r| {
                r.get(0)
            })
            .optional()
        })?;
        Ok(v.and_then(|s| s.parse().ok()))
    }

    /// Records the message size that gets through to `peer`.
    pub fn set_link_max_bytes(&self, peer: Uuid, max_bytes: u32) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key(peer), max_bytes.to_string()],
            )
            .map_err(|e| sql_err(&self.dir, e))?;
            Ok(())
        })
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
