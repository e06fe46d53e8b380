//! The store's two handles for work that spans several operations: a
//! [`Reader`] on one consistent snapshot, and a [`Writer`] inside one
//! immediate, durable transaction. Other crates reach the data only through
//! their methods (domain types in, domain types out): no SQL and no
//! `rusqlite` type crosses the crate.
//!
//! Readers run on their own connections (WAL readers), so a `list`, a
//! status, a report or a pull never waits behind a write; the one writer
//! connection is behind a lock.

use std::ops::Deref;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{Store, StoreError, sql_err};

/// A read of the store on one consistent snapshot (one read transaction).
pub struct Reader<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) store: &'a Store,
}

impl<'a> Reader<'a> {
    /// The store this reads.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Maps a SQLite error to a store error naming this store.
    pub(crate) fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
        let dir: &'a Path = &self.store.dir;
        move |e| sql_err(dir, e)
    }
}

/// A write of the store: one immediate transaction, committed durably when
/// the closure given to [`Store::transaction`] returns `Ok`, rolled back
/// otherwise. Everything a [`Reader`] offers reads inside it.
pub struct Writer<'a> {
    pub(crate) r: Reader<'a>,
}

impl<'a> Deref for Writer<'a> {
    type Target = Reader<'a>;
    fn deref(&self) -> &Reader<'a> {
        &self.r
    }
}

/// Most reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

impl Store {
    /// Runs `f` on one consistent snapshot of the store, on a reader
    /// connection of its own: it does not wait for a write in progress, and
    /// what a write commits meanwhile is not seen half-way through `f`.
    pub fn snapshot<T, E>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match self.take_reader() {
            Some(conn) => {
                let out = in_read_tx(&conn, || {
                    f(&Reader {
                        conn: &conn,
                        store: self,
                    })
                });
                self.give_back(conn);
                out.map_err(|e| E::from(sql_err(&self.dir, e)))?
            }
            // No reader connection (a read-only directory without the WAL
            // index, say): read on the writer's, behind its lock.
            None => {
                let conn = self.lock();
                in_read_tx(&conn, || {
                    f(&Reader {
                        conn: &conn,
                        store: self,
                    })
                })
                .map_err(|e| E::from(sql_err(&self.dir, e)))?
            }
        }
    }

    /// Runs `f` in one immediate transaction on the writer connection,
    /// committed (durably) only if it returns `Ok`.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Writer<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| E::from(sql_err(&self.dir, e)))?;
        let out = f(&Writer {
            r: Reader {
                conn: &tx,
                store: self,
            },
        })?;
        tx.commit().map_err(|e| E::from(sql_err(&self.dir, e)))?;
        Ok(out)
    }

    /// Runs read-only queries on one consistent snapshot (the unit tests'
    /// look at the tables).
    #[cfg(test)]
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.snapshot(|r| f(r.conn).map_err(r.sql()))
    }

    /// Moves everything the WAL holds into the database file and empties
    /// the WAL (a clean stop of `fmp serve`: a backup of the file alone is
    /// then whole).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| sql_err(&self.dir, e))
    }

    fn take_reader(&self) -> Option<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Some(c);
        }
        let conn = Connection::open_with_flags(
            self.dir.join(super::DB_FILE),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
        conn.set_prepared_statement_cache_capacity(64);
        // A reader that cannot see the schema (no WAL index it may create)
        // is no reader: fall back to the writer's connection.
        conn.query_row("SELECT count(*) FROM meta", [], |_| Ok(()))
            .ok()?;
        Some(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// Runs `f` inside a deferred (read) transaction on `conn`; the outer
/// `Err` is a failure to begin or end it.
fn in_read_tx<T>(conn: &Connection, f: impl FnOnce() -> T) -> Result<T, rusqlite::Error> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let out = f();
    // Nothing was written: ending the read cannot lose anything.
    let _ = conn.execute_batch("COMMIT");
    Ok(out)
}
