//! The store's two handles for work that spans several operations: a
//! [`Reader`] on one consistent snapshot, and a [`Writer`] inside one
//! immediate, durable transaction. Other crates reach the data only through
//! their methods (domain types in, domain types out): no SQL and no
//! database type crosses the crate.
//!
//! Each handle carries one backend: SQLite (`SqlReader`/`SqlWriter`, the
//! operations in `log.rs`, `hub.rs`, …) or PostgreSQL (`pg::PgReader`/
//! `pg::PgWriter`, `pg/ops.rs`), and every operation of `ops.rs` on a
//! `Reader` or `Writer` is dispatched to the one it carries (ADR 0006).
//!
//! SQLite readers run on their own connections (WAL readers), so a `list`,
//! a status, a report or a pull never waits behind a write; the one writer
//! connection is behind a lock.

use std::ops::Deref;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use uuid::Uuid;

use super::authority::{Authority, DocChange};
use super::corrections::ToCorrect;
use super::counts::MonthCounts;
use super::enrollment::DeviceMatch;
use super::hub::{
    CodeRow, EnrolledDevice, QuarantineEntry, TrustRow, TrustVersion, UnusedCode, Upstream,
};
use super::log::{
    DocStamp, Hash, LogRow, NewChange, PeerCursor, PendingChange, StoredBundle, Waiting,
};
use super::ops::*;
use super::peers::PeerProgress;
use super::report::{Counted, ExportRow, ExportSelection, ReportAggregates};
use super::restore::RestoreState;
use super::{Backing, Filter, HistoryEntry, Store, StoreError, sql_err};
use crate::form::Forms;
use crate::model::StoredSubmission;
use crate::reference::Registry;
use crate::role::Role;

/// A read of the store on one consistent snapshot (one read transaction).
pub struct Reader<'a> {
    pub(crate) db: Db<'a>,
    pub(crate) store: &'a Store,
}

/// The backend a handle carries.
#[derive(Clone, Copy)]
pub(crate) enum Db<'a> {
    /// SQLite: the connection of the transaction.
    Sqlite(SqlReader<'a>),
    /// PostgreSQL: the client of the transaction.
    #[cfg(feature = "postgres")]
    Pg(super::pg::PgReader<'a>),
}

/// SQLite's read handle: the connection of one transaction.
#[derive(Clone, Copy)]
pub(crate) struct SqlReader<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) store: &'a Store,
}

impl<'a> SqlReader<'a> {
    /// Maps a SQLite error to a store error naming this store.
    pub(crate) fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
        let dir: &'a Path = &self.store.dir;
        move |e| sql_err(dir, e)
    }
}

/// SQLite's write handle: the connection of one immediate transaction.
pub(crate) struct SqlWriter<'a> {
    pub(crate) r: SqlReader<'a>,
}

impl<'a> Deref for SqlWriter<'a> {
    type Target = SqlReader<'a>;
    fn deref(&self) -> &SqlReader<'a> {
        &self.r
    }
}

impl<'a> Reader<'a> {
    /// The store this reads.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// The SQLite connection of this read (the unit tests' look; a
    /// PostgreSQL reader has none).
    #[cfg(test)]
    pub(crate) fn sqlite_conn(&self) -> &'a Connection {
        match self.db {
            Db::Sqlite(s) => s.conn,
            #[cfg(feature = "postgres")]
            Db::Pg(_) => panic!("a SQLite test on a PostgreSQL store"),
        }
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
        let (readers, writer) = match &self.db {
            Backing::Sqlite { readers, conn } => (readers, conn),
            #[cfg(feature = "postgres")]
            Backing::Pg(pg) => return pg.snapshot(self, f),
        };
        match self.take_reader(readers) {
            Some(conn) => {
                let out = in_read_tx(&conn, || f(&self.sqlite_reader(&conn)));
                self.give_back(readers, conn);
                out.map_err(|e| E::from(sql_err(&self.dir, e)))?
            }
            // No reader connection (a read-only directory without the WAL
            // index, say): read on the writer's, behind its lock.
            None => {
                let conn = writer.lock().unwrap_or_else(|p| p.into_inner());
                in_read_tx(&conn, || f(&self.sqlite_reader(&conn)))
                    .map_err(|e| E::from(sql_err(&self.dir, e)))?
            }
        }
    }

    fn sqlite_reader<'a>(&'a self, conn: &'a Connection) -> Reader<'a> {
        Reader {
            db: Db::Sqlite(SqlReader { conn, store: self }),
            store: self,
        }
    }

    /// Runs `f` in one immediate transaction on the writer connection,
    /// committed (durably) only if it returns `Ok`.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Writer<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let writer = match &self.db {
            Backing::Sqlite { conn, .. } => conn,
            #[cfg(feature = "postgres")]
            Backing::Pg(pg) => return pg.transaction(self, f),
        };
        // A panic while holding the lock leaves SQLite consistent (the
        // transaction rolls back on drop), so a poisoned lock is still usable.
        let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| E::from(sql_err(&self.dir, e)))?;
        let out = f(&Writer {
            r: self.sqlite_reader(&tx),
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
        self.snapshot(|r| match r.db {
            Db::Sqlite(s) => f(s.conn).map_err(s.sql()),
            #[cfg(feature = "postgres")]
            Db::Pg(_) => Err(StoreError::Corrupt {
                what: "no SQLite connection".into(),
            }),
        })
    }

    /// Moves everything the WAL holds into the database file and empties
    /// the WAL (a clean stop of `fmp serve`: a backup of the file alone is
    /// then whole). Nothing to do on PostgreSQL.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        match &self.db {
            Backing::Sqlite { conn, .. } => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(|e| sql_err(&self.dir, e))
            }
            #[cfg(feature = "postgres")]
            Backing::Pg(_) => Ok(()),
        }
    }

    fn take_reader(&self, readers: &std::sync::Mutex<Vec<Connection>>) -> Option<Connection> {
        if let Some(c) = readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
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

    fn give_back(&self, readers: &std::sync::Mutex<Vec<Connection>>, conn: Connection) {
        let mut idle = readers.lock().unwrap_or_else(|p| p.into_inner());
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

// ------------------------------------------------------------ dispatch

/// Implements the reads of a trait on [`Reader`] by handing each call to
/// the backend it carries.
macro_rules! reads {
    ($tr:ident { $(fn $m:ident(&self $(, $a:ident: $t:ty)*) -> $ret:ty;)* }) => {
        impl $tr for Reader<'_> {
            $(fn $m(&self $(, $a: $t)*) -> $ret {
                match &self.db {
                    Db::Sqlite(r) => r.$m($($a),*),
                    #[cfg(feature = "postgres")]
                    Db::Pg(r) => r.$m($($a),*),
                }
            })*
        }
    };
}

/// Implements the writes of a trait on [`Writer`] likewise.
macro_rules! writes {
    ($tr:ident { $(fn $m:ident(&self $(, $a:ident: $t:ty)*) -> $ret:ty;)* }) => {
        impl $tr for Writer<'_> {
            $(fn $m(&self $(, $a: $t)*) -> $ret {
                match &self.r.db {
                    Db::Sqlite(r) => SqlWriter { r: *r }.$m($($a),*),
                    #[cfg(feature = "postgres")]
                    Db::Pg(r) => super::pg::PgWriter { r: *r }.$m($($a),*),
                }
            })*
        }
    };
}

reads!(LogReads {
    fn log_end(&self) -> Result<i64, StoreError>;
    fn changes_after(&self, after: i64, not_from: Uuid, raw_budget: usize, scope: Option<&[String]>) -> Result<(Vec<LogRow>, bool), StoreError>;
    fn changes_by_hash(&self, hashes: &[Hash], scope: Option<&[String]>) -> Result<Vec<LogRow>, StoreError>;
    fn change_keys(&self, scope: Option<&[String]>) -> Result<Vec<(i64, Hash)>, StoreError>;
    fn bundle(&self, id: &Hash) -> Result<Option<StoredBundle>, StoreError>;
    fn unsealed(&self) -> Result<bool, StoreError>;
    fn certificate(&self, device: Uuid) -> Result<Option<Vec<u8>>, StoreError>;
    fn peer_cursor(&self, peer: Uuid) -> Result<Option<PeerCursor>, StoreError>;
    fn change_document(&self, hash: &Hash) -> Result<Option<(String, String)>, StoreError>;
    fn logged(&self, hash: &Hash) -> Result<bool, StoreError>;
    fn document(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError>;
    fn document_stamp(&self, id: &str) -> Result<DocStamp, StoreError>;
    fn reference_stamp(&self) -> Result<Option<i64>, StoreError>;
    fn pending_for(&self, doc_id: &str) -> Result<Vec<PendingChange>, StoreError>;
    fn waiting(&self) -> Result<Waiting, StoreError>;
});

impl LogWrites for Writer<'_> {
    fn put_certificate(&self, device: Uuid, cert: &[u8]) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.put_certificate(device, cert),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.put_certificate(device, cert),
        }
    }
    fn store_bundle(&self, b: &StoredBundle) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.store_bundle(b),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.store_bundle(b),
        }
    }
    fn seal(
        &self,
        max: usize,
        budget: usize,
        sign: impl FnMut(Vec<Hash>) -> StoredBundle,
    ) -> Result<usize, StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.seal(max, budget, sign),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.seal(max, budget, sign),
        }
    }
    fn advance_peer(
        &self,
        peer: Uuid,
        pulled: Option<i64>,
        acked: Option<i64>,
    ) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.advance_peer(peer, pulled, acked),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.advance_peer(peer, pulled, acked),
        }
    }
    fn forget_peer(&self, peer: Uuid) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.forget_peer(peer),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.forget_peer(peer),
        }
    }
    fn hold(&self, p: &PendingChange) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.hold(p),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.hold(p),
        }
    }
    fn release(&self, hash: &Hash) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.release(hash),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.release(hash),
        }
    }
    fn save_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.save_document(kind, id, data, changes, state),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => {
                super::pg::PgWriter { r: *r }.save_document(kind, id, data, changes, state)
            }
        }
    }
    fn insert_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.insert_document(kind, id, data, changes, state),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => {
                super::pg::PgWriter { r: *r }.insert_document(kind, id, data, changes, state)
            }
        }
    }
}

reads!(RecordReads {
    fn list_rows(&self, filter: &Filter) -> Result<Vec<(StoredSubmission, bool)>, StoreError>;
    fn history_rows(&self, id: Uuid) -> Result<Vec<(HistoryEntry, Vec<u8>)>, StoreError>;
    fn to_correct_rows(&self) -> Result<Vec<ToCorrect>, StoreError>;
});

reads!(PeerReads {
    fn peer_progress(&self) -> Result<Vec<PeerProgress>, StoreError>;
    fn never_sent_to(&self, peer: Option<Uuid>) -> Result<i64, StoreError>;
});

reads!(SettingsReads {
    fn enrolled_fmps(&self) -> Result<Option<Vec<String>>, StoreError>;
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
});

writes!(SettingsWrites {
    fn set_enrolled_fmps(&self, fmps: Option<&[String]>) -> Result<(), StoreError>;
    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    fn delete_setting(&self, key: &str) -> Result<(), StoreError>;
});

reads!(RestoreReads {
    fn actor_epoch(&self) -> Result<u32, StoreError>;
    fn restore_state(&self) -> Result<RestoreState, StoreError>;
    fn wants_own_back(&self) -> Result<bool, StoreError>;
    fn needs_heal(&self) -> Result<bool, StoreError>;
    fn before_restore(&self, synced_at: Option<i64>) -> Result<bool, StoreError>;
    fn holds_from(&self, peer: Uuid) -> Result<bool, StoreError>;
    fn holds_received(&self) -> Result<bool, StoreError>;
    fn reoffer_until(&self, peer: Uuid) -> Result<i64, StoreError>;
});

writes!(RestoreWrites {
    fn mark_restored(&self, mark: Option<i64>) -> Result<bool, StoreError>;
    fn mark_taken_back(&self) -> Result<(), StoreError>;
    fn mark_healed(&self) -> Result<(), StoreError>;
    fn set_reoffer(&self, peer: Uuid, upto: i64) -> Result<(), StoreError>;
    fn reset_peer_cursor(&self, peer: Uuid, pulled: i64, acked: i64) -> Result<(), StoreError>;
});

reads!(RoleReads {
    fn role(&self) -> Result<Option<Role>, StoreError>;
    fn record_author(&self, id: Uuid) -> Result<Option<Uuid>, StoreError>;
    fn reference(&self) -> Result<(Registry, Forms), StoreError>;
    fn flagged(&self) -> Result<i64, StoreError>;
});

writes!(RoleWrites {
    fn set_role(&self, role: Option<Role>) -> Result<(), StoreError>;
});

reads!(AuthorityReads {
    fn pinned_authority(&self) -> Result<Option<Authority>, StoreError>;
    fn doc_changes(&self, doc_id: &str) -> Result<Vec<DocChange>, StoreError>;
});

reads!(HubReads {
    fn enrollment_code(&self, hash: &[u8]) -> Result<Option<CodeRow>, StoreError>;
    fn device_name(&self, device: &str) -> Result<Option<String>, StoreError>;
    fn unused_codes(&self, now_ms: i64) -> Result<Vec<UnusedCode>, StoreError>;
    fn enrolled_device(&self, device: Uuid) -> Result<Option<TrustRow>, StoreError>;
    fn trust_version(&self) -> Result<TrustVersion, StoreError>;
    fn trust_rows(&self) -> Result<Vec<TrustRow>, StoreError>;
    fn enrolled_devices(&self) -> Result<Vec<EnrolledDevice>, StoreError>;
    fn upstream(&self) -> Result<Option<Upstream>, StoreError>;
    fn hq_identity(&self) -> Result<Option<Authority>, StoreError>;
    fn quarantined(&self) -> Result<Vec<QuarantineEntry>, StoreError>;
});

impl HubWrites for Writer<'_> {
    fn add_enrollment_code(
        &self,
        hash: &[u8],
        fmps: &[String],
        may_enroll: bool,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => {
                SqlWriter { r: *r }.add_enrollment_code(hash, fmps, may_enroll, expires_at)
            }
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }
                .add_enrollment_code(hash, fmps, may_enroll, expires_at),
        }
    }
    fn cancel_enrollment_code(&self, hash: &[u8]) -> Result<bool, StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.cancel_enrollment_code(hash),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.cancel_enrollment_code(hash),
        }
    }
    fn use_enrollment_code(&self, hash: &[u8], device: Uuid) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.use_enrollment_code(hash, device),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.use_enrollment_code(hash, device),
        }
    }
    fn enroll_device(
        &self,
        device: Uuid,
        name: &str,
        public_key: &[u8],
        fmps: Option<&[String]>,
        may_enroll: bool,
    ) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => {
                SqlWriter { r: *r }.enroll_device(device, name, public_key, fmps, may_enroll)
            }
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }
                .enroll_device(device, name, public_key, fmps, may_enroll),
        }
    }
    fn revoke_device(&self, device: Uuid) -> Result<usize, StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.revoke_device(device),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.revoke_device(device),
        }
    }
    fn note_sync(&self, device: Uuid) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.note_sync(device),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.note_sync(device),
        }
    }
    fn set_upstream(&self, up: &Upstream) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.set_upstream(up),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.set_upstream(up),
        }
    }
    fn quarantine<'s>(
        &self,
        peer: Uuid,
        refused: impl IntoIterator<Item = ([u8; 32], &'s str)>,
    ) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.quarantine(peer, refused),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.quarantine(peer, refused),
        }
    }
    fn unquarantine(&self, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        match &self.r.db {
            Db::Sqlite(r) => SqlWriter { r: *r }.unquarantine(hashes),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => super::pg::PgWriter { r: *r }.unquarantine(hashes),
        }
    }
}

reads!(EnrollmentReads {
    fn upstream_may_enroll(&self) -> Result<Option<bool>, StoreError>;
    fn devices_matching(&self, who: &str) -> Result<Vec<DeviceMatch>, StoreError>;
    fn served_at(&self) -> Result<Vec<String>, StoreError>;
    fn active_named(&self, name: &str, except: Uuid) -> Result<Vec<DeviceMatch>, StoreError>;
});

writes!(EnrollmentWrites {
    fn set_upstream_may_enroll(&self, may_enroll: bool) -> Result<(), StoreError>;
    fn set_served_at(&self, urls: &[String]) -> Result<(), StoreError>;
    fn reinstate_device(&self, device: Uuid) -> Result<usize, StoreError>;
});

reads!(NonceReads {
    fn nonce_seen(&self, device: Uuid, nonce: &str) -> Result<bool, StoreError>;
});

writes!(NonceWrites {
    fn remember_nonce(&self, device: Uuid, nonce: &str, time: i64, forget_before: i64) -> Result<bool, StoreError>;
});

impl ReportReads for Reader<'_> {
    fn report_aggregates(
        &self,
        month: &str,
        previous: &str,
        counted: Counted,
    ) -> Result<ReportAggregates, StoreError> {
        match &self.db {
            Db::Sqlite(r) => r.report_aggregates(month, previous, counted),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => r.report_aggregates(month, previous, counted),
        }
    }
    fn records_by_month(&self) -> Result<Vec<(String, u64)>, StoreError> {
        match &self.db {
            Db::Sqlite(r) => r.records_by_month(),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => r.records_by_month(),
        }
    }
    fn for_each_export_row<E>(
        &self,
        sel: &ExportSelection,
        f: impl FnMut(&ExportRow) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        match &self.db {
            Db::Sqlite(r) => r.for_each_export_row(sel, f),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => r.for_each_export_row(sel, f),
        }
    }
}

impl CountReads for Reader<'_> {
    fn month_counts(
        &self,
        month: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<MonthCounts, StoreError> {
        match &self.db {
            Db::Sqlite(r) => r.month_counts(month, keep),
            #[cfg(feature = "postgres")]
            Db::Pg(r) => r.month_counts(month, keep),
        }
    }
}
