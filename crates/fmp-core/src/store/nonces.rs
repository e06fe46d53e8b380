//! The hub's replay cache on disk (table `request_nonces`, schema version 3):
//! each signed request a hub accepted, by (device, nonce), with its signed
//! time. A request is accepted only within a time window of the hub's
//! clock, so rows older than the window can never match again and are
//! pruned. These run inside the caller's transaction: the hub writes them
//! in the transaction it already commits per request (no extra fsync).

use super::ops::{NonceReads, NonceWrites};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{StoreError, access::SqlReader, access::SqlWriter};

impl NonceReads for SqlReader<'_> {
    fn nonce_seen(&self, device: Uuid, nonce: &str) -> Result<bool, StoreError> {
        seen(self.conn, device, nonce).map_err(self.sql())
    }
}

impl NonceWrites for SqlWriter<'_> {
    fn remember_nonce(
        &self,
        device: Uuid,
        nonce: &str,
        time: i64,
        forget_before: i64,
    ) -> Result<bool, StoreError> {
        let fresh = remember(self.conn, device, nonce, time).map_err(self.sql())?;
        prune(self.conn, forget_before).map_err(self.sql())?;
        Ok(fresh)
    }
}

/// True if `device` already used `nonce` in a request remembered here.
fn seen(conn: &Connection, device: Uuid, nonce: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM request_nonces WHERE device = ?1 AND nonce = ?2")?
        .query_row(params![device.to_string(), nonce], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Remembers a request's (device, nonce, signed time in seconds since the
/// epoch); false if that nonce was remembered already (a replay).
fn remember(conn: &Connection, device: Uuid, nonce: &str, time: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO request_nonces (device, nonce, time) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![device.to_string(), nonce, time])?;
    Ok(n == 1)
}

/// Forgets the nonces of requests signed before `before` (seconds since
/// the epoch); the number forgotten.
fn prune(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM request_nonces WHERE time < ?1")?
        .execute([before])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_once_seen_after_and_pruned_when_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("n.sqlite3")).expect("open");
        super::super::schema::migrate(&mut conn, dir.path()).expect("schema");
        let d = Uuid::now_v7();
        assert!(!seen(&conn, d, "aa").expect("seen"));
        assert!(remember(&conn, d, "aa", 1000).expect("first"));
        assert!(!remember(&conn, d, "aa", 1000).expect("again"), "a replay");
        assert!(seen(&conn, d, "aa").expect("seen"));
        assert!(!seen(&conn, Uuid::now_v7(), "aa").expect("other device"));
        assert!(remember(&conn, d, "bb", 2000).expect("second"));
        assert_eq!(prune(&conn, 1500).expect("prune"), 1);
        assert!(!seen(&conn, d, "aa").expect("pruned"));
        assert!(seen(&conn, d, "bb").expect("kept"));
    }
}
