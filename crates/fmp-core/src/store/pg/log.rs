//! The change log's positions on PostgreSQL (ADR 0005). Writers commit
//! concurrently, so a sequence handed out at insert time does not follow
//! commit order, and "everything after position c" would skip a change
//! committed late under a lower number. Instead:
//!
//! - a change's position is `xid · 2^24 + ordinal`: the id of the
//!   transaction that appends it (`pg_current_xact_id()`), then its rank
//!   among that transaction's changes;
//! - a reader sees only the positions of transactions older than its
//!   snapshot's horizon (`pg_snapshot_xmin(pg_current_snapshot())`): all
//!   of those have ended, so no change can ever appear below a position a
//!   reader passed (the cursor contract's prefix visibility, `ops.rs`).
//!
//! A transaction that writes holds the horizon back while it runs: pulls
//! wait for it, they never skip it. Read-only transactions have no id and
//! hold nothing back.

use postgres::GenericClient;
use uuid::Uuid;

use super::pg_err;
use crate::store::StoreError;
use crate::store::log::{Hash, NewChange};

/// Bits of a position below the transaction id: the most changes one
/// transaction may append (16,777,216).
pub const ORDINAL_BITS: u32 = 24;

/// A change as the log serves it after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Its position.
    pub seq: i64,
    /// Its hash.
    pub hash: Hash,
    /// Its document.
    pub doc_id: String,
    /// The automerge change.
    pub bytes: Vec<u8>,
}

/// The horizon of the reader's snapshot: every position below it belongs
/// to a transaction that ended before the snapshot was taken. Run it in
/// the reader's (repeatable read) transaction.
pub fn horizon(client: &mut impl GenericClient, url: &str) -> Result<i64, StoreError> {
    let xmin: i64 = client
        .query_one(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            &[],
        )
        .map_err(|e| pg_err(url, e))?
        .get(0);
    Ok(xmin << ORDINAL_BITS)
}

/// Starts a read of the log: one repeatable-read, read-only transaction,
/// so its horizon and its rows are of one snapshot.
pub fn reader<'c>(
    client: &'c mut postgres::Client,
    url: &str,
) -> Result<postgres::Transaction<'c>, StoreError> {
    client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| pg_err(url, e))
}

/// The last position of the log this snapshot may serve (0 if none).
pub fn log_end(client: &mut impl GenericClient, url: &str) -> Result<i64, StoreError> {
    let h = horizon(client, url)?;
    let end: Option<i64> = client
        .query_one("SELECT max(seq) FROM changes WHERE seq < $1", &[&h])
        .map_err(|e| pg_err(url, e))?
        .get(0);
    Ok(end.unwrap_or(0))
}

/// Up to `limit` changes after position `after`, in log order, below the
/// snapshot's horizon.
pub fn changes_after(
    client: &mut impl GenericClient,
    url: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<Logged>, StoreError> {
    let h = horizon(client, url)?;
    let rows = client
        .query(
            "SELECT seq, hash, doc_id, bytes FROM changes
             WHERE seq > $1 AND seq < $2 ORDER BY seq LIMIT $3",
            &[&after, &h, &limit],
        )
        .map_err(|e| pg_err(url, e))?;
    rows.into_iter()
        .map(|r| {
            let hash: Vec<u8> = r.get(1);
            Ok(Logged {
                seq: r.get(0),
                hash: hash.try_into().map_err(|_| StoreError::Corrupt {
                    what: "a change hash that is not 32 bytes".into(),
                })?,
                doc_id: r.get(2),
                bytes: r.get(3),
            })
        })
        .collect()
}

/// The next position this transaction appends at: its id, then one past
/// its last ordinal.
fn next_position(client: &mut impl GenericClient, url: &str) -> Result<i64, StoreError> {
    let base: i64 = client
        .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
        .map_err(|e| pg_err(url, e))?
        .get::<_, i64>(0)
        << ORDINAL_BITS;
    let next: i64 = client
        .query_one(
            "SELECT coalesce(max(seq) + 1, $1) FROM changes WHERE seq >= $1 AND seq < $2",
            &[&base, &(base + (1 << ORDINAL_BITS))],
        )
        .map_err(|e| pg_err(url, e))?
        .get(0);
    if next - base >= 1 << ORDINAL_BITS {
        return Err(StoreError::TooManyChanges {
            limit: 1 << ORDINAL_BITS,
        });
    }
    Ok(next)
}

/// Appends one change of document `doc_id` in this (writing) transaction.
/// `None`: a change with its hash is logged already (by this transaction,
/// a committed one, or a concurrent one that committed first: the change
/// lands once).
pub fn append_change(
    tx: &mut postgres::Transaction<'_>,
    url: &str,
    doc_id: &str,
    c: &NewChange<'_>,
) -> Result<Option<i64>, StoreError> {
    let seq = next_position(tx, url)?;
    let author = c.author.to_string();
    let origin = c.origin.map(|o: Uuid| o.to_string());
    let row = tx
        .query_opt(
            "INSERT INTO changes (seq, hash, doc_id, author, time, op, bytes, origin, bundle)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (hash) DO NOTHING RETURNING seq",
            &[
                &seq,
                &&c.hash[..],
                &doc_id,
                &author,
                &c.time,
                &c.op,
                &c.bytes,
                &origin,
                &c.bundle.as_ref().map(|b| &b[..]),
            ],
        )
        .map_err(|e| pg_err(url, e))?;
    Ok(row.map(|r| r.get(0)))
}
