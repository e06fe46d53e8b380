//! Per-peer sync progress as `fmp status` shows it: each peer's name where
//! this store knows it, when it last synced, and how many of this store's
//! changes it may receive and has not acknowledged yet.

use rusqlite::params;
use uuid::Uuid;

use super::ops::PeerReads;
use super::{Store, StoreError, access::SqlReader};

/// One peer's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProgress {
    /// Its device id.
    pub peer: String,
    /// Its name: the hub this store joined, or a device enrolled here.
    pub name: Option<String>,
    /// This store's changes the peer may receive and has not acknowledged:
    /// for a device enrolled here, only its FMPs' submissions (and the
    /// reference data), as a pull would serve it.
    pub pending: i64,
    /// Last sync, ms since the epoch.
    pub last_sync_ms: Option<i64>,
}

/// Changes after `p.acked`, not received from `p.peer`, that the peer may
/// receive: `d.fmps` is its FMPs, comma-joined (`NULL`: any).
const BACKLOG: &str = "(SELECT count(*) FROM changes ch LEFT JOIN submissions s ON s.id = ch.doc_id
     WHERE ch.seq > p.acked AND (ch.origin IS NULL OR ch.origin != p.peer)
       AND (d.fmps IS NULL OR s.id IS NULL
            OR instr(',' || d.fmps || ',', ',' || s.fmp || ',') > 0))";

impl PeerReads for SqlReader<'_> {
    fn peer_progress(&self) -> Result<Vec<PeerProgress>, StoreError> {
        let sql = format!(
            "SELECT p.peer, coalesce(u.name, d.name), {BACKLOG}, p.synced_at
             FROM peers p LEFT JOIN hub_upstream u ON u.hub = p.peer
             LEFT JOIN hub_devices d ON d.device = p.peer ORDER BY p.synced_at DESC"
        );
        self.conn
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map([], |row| {
                    Ok(PeerProgress {
                        peer: row.get(0)?,
                        name: row.get(1)?,
                        pending: row.get(2)?,
                        last_sync_ms: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.sql())
    }

    fn never_sent_to(&self, peer: Option<Uuid>) -> Result<i64, StoreError> {
        match peer {
            Some(p) => self.conn.query_row(
                "SELECT count(*) FROM changes WHERE origin IS NULL OR origin != ?1",
                params![p.to_string()],
                |row| row.get(0),
            ),
            None => self.conn.query_row(
                "SELECT count(*) FROM changes WHERE origin IS NULL",
                [],
                |row| row.get(0),
            ),
        }
        .map_err(self.sql())
    }
}

impl Store {
    /// Every peer this store synced with, the most recent first.
    pub fn peer_progress(&self) -> Result<Vec<PeerProgress>, StoreError> {
        self.snapshot(|r| r.peer_progress())
    }

    /// How many of this store's changes a first sync with `peer` would
    /// offer: every change but those received from it (a hub before its
    /// first forward to the hub it joined); with no peer, the changes made
    /// here (a store that joined no hub yet).
    pub fn never_sent_to(&self, peer: Option<Uuid>) -> Result<i64, StoreError> {
        self.snapshot(|r| r.never_sent_to(peer))
    }
}
