//! A store restored from an older copy of itself: its actor epoch, what it
//! knows of the restore, and the cursor resets that heal it.
//!
//! The automerge actor of this store's changes is the device id for epoch
//! 0 (every store before the first restore) and the device id followed by
//! the epoch (u32, big-endian) after (see [`crate::doc::actor_for_epoch`]).
//! A store that learns it was restored (opened from a database file other
//! than the one it last ran from, a peer holds more of its log than it
//! does, or its peer's cursors are past its own log) moves to a fresh
//! epoch, so no automerge sequence number it used before is used again.
//! The facts live in the `meta` table (no schema change):
//! - `actor_epoch`: the epoch this store writes under (absent: 0);
//! - `restored_at`: when the restore was first detected (RFC 3339);
//! - `restore_mark`: how far into this store's log a peer held at detection
//!   (a later detection at or below it is the same restore);
//! - `healed_at`: when a sync completed after the detection;
//! - `take_back`: present while the store, restored, has not completed a
//!   sync as a client since: its requests ask for its own changes back;
//! - `db_file`: the identity (inode, birth time where the file system
//!   tells it) of the database file the store last ran from:
//!   opened from another (a copy put back by a restore), the store takes a
//!   fresh epoch before its first write, so even an edit made before the
//!   first sync reuses no sequence number;
//! - `reoffer:PEER`: this store's log is pushed to that restored peer
//!   again whole (what it received from the peer too) up to this `seq`.

use super::ops::{RestoreReads, RestoreWrites};
use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{StoreError, access::SqlReader, access::SqlWriter};

/// What a store knows of its own restore, for `fmp status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreState {
    /// When the restore was detected (RFC 3339); `None`: never restored.
    pub detected_at: Option<String>,
    /// When a sync completed after it (RFC 3339); `None`: not healed yet.
    pub healed_at: Option<String>,
    /// This store's own changes received back from peers (changes of its
    /// log authored here that arrived by sync).
    pub taken_back: i64,
    /// The actor epoch this store writes under.
    pub epoch: u32,
}

impl RestoreReads for SqlReader<'_> {
    fn actor_epoch(&self) -> Result<u32, StoreError> {
        epoch(self.conn).map_err(self.sql())
    }

    fn restore_state(&self) -> Result<RestoreState, StoreError> {
        state(self.conn, self.store.identity.device_id).map_err(self.sql())
    }

    fn wants_own_back(&self) -> Result<bool, StoreError> {
        wants_own_back(self.conn).map_err(self.sql())
    }

    fn needs_heal(&self) -> Result<bool, StoreError> {
        needs_heal(self.conn).map_err(self.sql())
    }

    fn before_restore(&self, synced_at: Option<i64>) -> Result<bool, StoreError> {
        before_restore(self.conn, synced_at).map_err(self.sql())
    }

    fn holds_from(&self, peer: Uuid) -> Result<bool, StoreError> {
        holds_from(self.conn, peer).map_err(self.sql())
    }

    fn holds_received(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM changes WHERE origin IS NOT NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql())
    }

    fn reoffer_until(&self, peer: Uuid) -> Result<i64, StoreError> {
        reoffer_until(self.conn, peer).map_err(self.sql())
    }
}

impl RestoreWrites for SqlWriter<'_> {
    fn mark_restored(&self, mark: Option<i64>) -> Result<bool, StoreError> {
        mark_restored(self.conn, self.store.identity.device_id, mark).map_err(self.sql())
    }

    fn mark_taken_back(&self) -> Result<(), StoreError> {
        mark_taken_back(self.conn, self.store.identity.device_id).map_err(self.sql())
    }

    fn mark_healed(&self) -> Result<(), StoreError> {
        mark_healed(self.conn, self.store.identity.device_id).map_err(self.sql())
    }

    fn set_reoffer(&self, peer: Uuid, upto: i64) -> Result<(), StoreError> {
        set_reoffer(self.conn, peer, upto).map_err(self.sql())
    }

    fn reset_peer_cursor(&self, peer: Uuid, pulled: i64, acked: i64) -> Result<(), StoreError> {
        reset_peer_cursor(self.conn, peer, pulled, acked).map_err(self.sql())
    }
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// The actor epoch this store writes under (0 if never restored).
pub(crate) fn epoch(conn: &Connection) -> rusqlite::Result<u32> {
    Ok(meta(conn, "actor_epoch")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The highest actor epoch among the changes of `device` in this store's
/// log: what it wrote here and what it took back from peers, or, with
/// `received_only`, only what came back from peers.
pub(crate) fn max_logged_epoch(
    conn: &Connection,
    device: Uuid,
    received_only: bool,
) -> rusqlite::Result<u32> {
    let mut stmt = conn.prepare(
        "SELECT bytes FROM changes WHERE author = ?1 AND (?2 = 0 OR origin IS NOT NULL)",
    )?;
    let rows = stmt.query_map(params![device.to_string(), received_only], |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    let mut max = 0u32;
    for bytes in rows {
        let bytes = bytes?;
        if let Ok(c) = automerge::Change::try_from(bytes.as_slice()) {
            let (_, e) = crate::doc::actor_parts(c.actor_id().to_bytes());
            max = max.max(e.unwrap_or(0));
        }
    }
    Ok(max)
}

/// Records that this store was restored from an older copy: a peer holds
/// its log up to `mark` (past this store's own end), or, with no mark, the
/// peer's cursors run past this store's log. A new detection (not while a
/// detected restore is still healing, and, with a mark, above the last
/// one) moves the store to an epoch above every epoch of its changes here,
/// so it never reuses a sequence number. Returns true if it was new.
pub(crate) fn mark_restored(
    conn: &Connection,
    device: Uuid,
    mark: Option<i64>,
) -> rusqlite::Result<bool> {
    let last: Option<i64> = meta(conn, "restore_mark")?.and_then(|v| v.parse().ok());
    if let (Some(l), Some(m)) = (last, mark)
        && l >= m
    {
        return Ok(false);
    }
    if let Some(m) = mark {
        set_meta(conn, "restore_mark", &m.to_string())?;
    }
    set_meta(conn, "take_back", "1")?;
    if needs_heal(conn)? {
        return Ok(false);
    }
    begin(conn, device)?;
    Ok(true)
}

/// A restore begins: a fresh epoch, the time (see [`before_restore`]), not
/// healed.
fn begin(conn: &Connection, device: Uuid) -> rusqlite::Result<()> {
    fresh_epoch(conn, device)?;
    set_meta(conn, "restored_at", &Utc::now().to_rfc3339())?;
    set_meta(
        conn,
        "restored_at_ms",
        &Utc::now().timestamp_millis().to_string(),
    )?;
    conn.prepare_cached("DELETE FROM meta WHERE key = 'healed_at'")?
        .execute([])?;
    Ok(())
}

/// True if this store knows it was restored and has not yet completed a
/// sync, as a client, since: its requests ask for its own changes back.
pub(crate) fn wants_own_back(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(meta(conn, "take_back")?.is_some())
}

/// A sync this store ran as a client completed while it wanted its own
/// changes back: it has them; the restore is healed (see [`mark_healed`]).
pub(crate) fn mark_taken_back(conn: &Connection, device: Uuid) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM meta WHERE key = 'take_back'")?
        .execute([])?;
    mark_healed(conn, device)
}

/// Moves the store to an epoch above its own and above every epoch of its
/// logged changes: a restore begins a new writer.
fn fresh_epoch(conn: &Connection, device: Uuid) -> rusqlite::Result<()> {
    let next = epoch(conn)?
        .max(max_logged_epoch(conn, device, false)?)
        .saturating_add(1);
    set_meta(conn, "actor_epoch", &next.to_string())
}

/// The identity on disk of the database file: its inode, with its birth
/// time where the file system tells it (a freed inode is soon reused). A
/// copy put in its place, as a restore from a backup does, has another.
pub(crate) fn file_id(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let born = m
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos());
    Some(match born {
        Some(b) => format!("{}@{b}", m.ino()),
        None => m.ino().to_string(),
    })
}

/// True if the database file is not the one this store last recorded
/// (`file` from [`file_id`]).
pub(crate) fn file_changed(conn: &Connection, file: &str) -> rusqlite::Result<bool> {
    Ok(meta(conn, "db_file")?.as_deref() != Some(file))
}

/// Records the database file this store runs from. If it had recorded
/// another (the store was put back from a copy, or copied), the store
/// knows it was restored: it moves to a fresh epoch before any write (even
/// a record edited before the first sync after the restore reuses no
/// sequence number of its older self) and asks its peers for its own
/// changes back at its next sync.
pub(crate) fn take_file(conn: &Connection, device: Uuid, file: &str) -> rusqlite::Result<()> {
    if meta(conn, "db_file")?.is_some() {
        begin(conn, device)?;
        set_meta(conn, "take_back", "1")?;
    }
    set_meta(conn, "db_file", file)
}

/// True if this store was restored after a peer's cursor row was last
/// written (`synced_at`, ms; `None`: no row): the peer has not synced with
/// this store since its last restore. Its pull cursor is about the store
/// before the restore and may point past positions the store has given to
/// other changes since.
pub(crate) fn before_restore(conn: &Connection, synced_at: Option<i64>) -> rusqlite::Result<bool> {
    let Some(at) = meta(conn, "restored_at_ms")?.and_then(|v| v.parse::<i64>().ok()) else {
        return Ok(false);
    };
    Ok(synced_at.is_none_or(|t| t < at))
}

/// True if a restore was detected and no sync completed since.
pub(crate) fn needs_heal(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(meta(conn, "restored_at")?.is_some() && meta(conn, "healed_at")?.is_none())
}

/// True if this store's log holds a change received from `peer`: a peer
/// with no cursor row that pushes from past 0 either lost its cursor (this
/// store holds what it sent) or met a copy of this store taken before its
/// first sync (this store holds nothing from it).
pub(crate) fn holds_from(conn: &Connection, peer: Uuid) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM changes WHERE origin = ?1)",
        [peer.to_string()],
        |r| r.get(0),
    )
}

/// Offers this store's log to `peer` again whole (what it received from
/// the peer too) up to `upto`: the peer was restored and may lack it.
pub(crate) fn set_reoffer(conn: &Connection, peer: Uuid, upto: i64) -> rusqlite::Result<()> {
    set_meta(conn, &format!("reoffer:{peer}"), &upto.to_string())
}

/// Up to where this store's log is offered again whole to `peer` (0: not).
pub(crate) fn reoffer_until(conn: &Connection, peer: Uuid) -> rusqlite::Result<i64> {
    Ok(meta(conn, &format!("reoffer:{peer}"))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Records that a sync completed after a detected restore (no-op if the
/// store was never restored or is healed already). Moves the store to a
/// fresh epoch again if a change taken back carries its current one.
pub(crate) fn mark_healed(conn: &Connection, device: Uuid) -> rusqlite::Result<()> {
    if !needs_heal(conn)? {
        return Ok(());
    }
    // A change taken back under this store's epoch (its older self had
    // moved to it too, after the copy): move on past it.
    let now = epoch(conn)?;
    let back = max_logged_epoch(conn, device, true)?;
    if back >= now {
        set_meta(conn, "actor_epoch", &back.saturating_add(1).to_string())?;
    }
    set_meta(conn, "healed_at", &Utc::now().to_rfc3339())
}

/// What this store knows of its restore.
pub(crate) fn state(conn: &Connection, device: Uuid) -> rusqlite::Result<RestoreState> {
    let detected_at = meta(conn, "restored_at")?;
    let taken_back = if detected_at.is_some() {
        conn.query_row(
            "SELECT count(*) FROM changes WHERE author = ?1 AND origin IS NOT NULL",
            [device.to_string()],
            |r| r.get(0),
        )?
    } else {
        0
    };
    Ok(RestoreState {
        detected_at,
        healed_at: meta(conn, "healed_at")?,
        taken_back,
        epoch: epoch(conn)?,
    })
}

/// Sets the progress recorded with `peer` to exactly these values (lower
/// ones included), keeping its last sync time: after a restore, the
/// cursors that ran past the restored log are moved back.
pub(crate) fn reset_peer_cursor(
    conn: &Connection,
    peer: Uuid,
    pulled: i64,
    acked: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO peers (peer, pulled, acked) VALUES (?1, ?2, ?3)
         ON CONFLICT(peer) DO UPDATE SET pulled = ?2, acked = ?3",
    )?
    .execute(params![peer.to_string(), pulled, acked])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }

    fn last_actor(s: &Store) -> Vec<u8> {
        let bytes: Vec<u8> = s
            .read(|c| {
                c.query_row(
                    "SELECT bytes FROM changes ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
            })
            .expect("a change");
        automerge::Change::try_from(bytes.as_slice())
            .expect("change")
            .actor_id()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn a_store_opened_from_a_copy_takes_a_fresh_actor_before_any_write() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("phone");
        let id = {
            let s = Store::init(&dir, "phone").expect("init");
            s.record(crate::example_submission()).expect("record")
        };
        // Reopened where it is: nothing changes.
        let s = Store::open(&dir).expect("open");
        let me = s.identity().device_id;
        let st = s.read(|c| state(c, me)).expect("state");
        assert_eq!((st.detected_at.as_deref(), st.epoch), (None, 0));
        assert!(!s.read(wants_own_back).expect("read"));
        drop(s);

        // A copy of the directory opened in another place (as a restore
        // puts one back): restored, a fresh epoch, its own changes wanted.
        let copy = tmp.path().join("restored");
        copy_dir(&dir, &copy);
        let s = Store::open(&copy).expect("open the copy");
        let st = s.read(|c| state(c, me)).expect("state");
        assert!(st.detected_at.is_some() && st.healed_at.is_none(), "{st:?}");
        assert_eq!(st.epoch, 1);
        assert!(s.read(wants_own_back).expect("read"));
        s.edit(id, &serde_json::json!({"notes": "after the restore"}))
            .expect("edit");
        assert_eq!(
            last_actor(&s),
            crate::doc::actor_for_epoch(me, 1).to_bytes()
        );
        drop(s);
        // Opened again: the same file, the same epoch.
        let s = Store::open(&copy).expect("reopen");
        assert_eq!(s.read(epoch).expect("epoch"), 1);
        // The original, reopened, was not touched.
        drop(s);
        let s = Store::open(&dir).expect("open the original");
        assert_eq!(s.read(epoch).expect("epoch"), 0);
    }

    #[test]
    fn actor_parts_read_only_the_authors_two_forms() {
        let me = Uuid::now_v7();
        assert_eq!(
            crate::doc::actor_parts(crate::doc::actor_for_epoch(me, 0).to_bytes()),
            (Some(me), Some(0))
        );
        assert_eq!(
            crate::doc::actor_parts(crate::doc::actor_for_epoch(me, 9).to_bytes()),
            (Some(me), Some(9))
        );
        let mut zero = me.as_bytes().to_vec();
        zero.extend_from_slice(&[0; 4]);
        assert_eq!(crate::doc::actor_parts(&zero), (None, None));
        assert_eq!(crate::doc::actor_parts(&zero[..15]), (None, None));
        assert_eq!(
            crate::doc::actor_parts(&[zero.clone(), vec![1]].concat()),
            (None, None)
        );
    }
}
