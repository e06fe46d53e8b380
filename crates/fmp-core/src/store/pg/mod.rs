//! The PostgreSQL backend of the store, for HQ at scale (issue "HQ on
//! PostgreSQL"; behind the `postgres` feature):
//!
//! - `schema.rs`: the same tables as SQLite's schema, in PostgreSQL's
//!   types, versioned in the same numbered scheme (table `fmp_schema`),
//!   migrated forward on open, a newer database refused.
//! - `log.rs`: the change log's positions, which follow commit visibility
//!   so that several writers (connections, `fmp serve` processes) may
//!   commit at once and "everything after position c" still never skips a
//!   change (ADR 0005), with the append and the read after a cursor.
//!
//! - this file: [`PgStore`], a [`Store`]'s PostgreSQL database (a pool of
//!   clients), its snapshots (repeatable read, read only) and its writes
//!   (read committed, serialized per database by an advisory lock taken
//!   first: ADR 0006), and the read and write handles.
//! - `ops.rs`: every operation of `ops.rs` on those handles.

pub mod log;
pub(crate) mod ops;
pub mod schema;

use std::cell::RefCell;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::access::{Db, Reader, Writer};
use super::{Store, StoreError};

/// Key of the advisory lock every write transaction takes first: writes to
/// one database are serialized across connections and processes (ADR 0006).
pub const WRITE_LOCK: i64 = 0x0066_6d70_5f77_7269; // "fmp_wri"

/// Most clients (connections) one store keeps open at once, in use or
/// idle: a hub's many request threads wait for one rather than open more
/// than the server allows.
const MAX_OPEN: usize = 16;

/// A store's PostgreSQL database: its URL (as the store directory names
/// it, without password) and its clients.
pub(crate) struct PgStore {
    pub(crate) url: String,
    pool: Mutex<Pool>,
    freed: Condvar,
}

/// The clients of a store: idle ones, and how many are open in all.
struct Pool {
    idle: Vec<postgres::Client>,
    open: usize,
}

/// A client's place in the pool while it is out: given up (the client
/// dropped, closed or not ended cleanly, a panic) unless handed back.
struct Lease<'s> {
    store: &'s PgStore,
    out: bool,
}

std::thread_local! {
    /// Clients this thread holds now: a thread that holds one (a snapshot
    /// taken inside a write, say) never waits for another, or a full pool
    /// whose writers wait for the write lock would wait on itself.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Lease<'_> {
    fn new(store: &PgStore) -> Lease<'_> {
        HELD.with(|h| h.set(h.get() + 1));
        Lease { store, out: true }
    }

    /// Hands the client back (kept for reuse if it is still open).
    fn back(mut self, c: postgres::Client) {
        self.out = false;
        self.store.give_back(c);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
        if self.out {
            self.store.discard();
        }
    }
}

/// PostgreSQL's read handle: the client of one transaction.
#[derive(Clone, Copy)]
pub(crate) struct PgReader<'a> {
    pub(crate) c: &'a RefCell<postgres::Client>,
    pub(crate) store: &'a Store,
    pub(crate) url: &'a str,
}

/// PostgreSQL's write handle (the same client, inside the write).
pub(crate) struct PgWriter<'a> {
    pub(crate) r: PgReader<'a>,
}

impl<'a> std::ops::Deref for PgWriter<'a> {
    type Target = PgReader<'a>;
    fn deref(&self) -> &PgReader<'a> {
        &self.r
    }
}

impl PgStore {
    /// Connects to `url` and brings its schema to this build's version.
    pub(crate) fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut c = connect(url)?;
        schema::migrate(&mut c, url)?;
        Ok(PgStore {
            url: url.to_string(),
            pool: Mutex::new(Pool {
                idle: vec![c],
                open: 1,
            }),
            freed: Condvar::new(),
        })
    }

    /// The device id and name the database's store was created with.
    pub(crate) fn meta_identity(
        &self,
        dir: &std::path::Path,
    ) -> Result<(uuid::Uuid, String), StoreError> {
        let (mut c, lease) = self.take()?;
        let rows = c
            .query(
                "SELECT key, value FROM meta WHERE key IN ('device_id', 'name')",
                &[],
            )
            .map_err(|e| pg_err(&self.url, e))?;
        lease.back(c);
        let (mut id, mut name) = (None, None);
        for r in rows {
            let (k, v): (String, String) = (ops::get(&r, 0)?, ops::get(&r, 1)?);
            match k.as_str() {
                "device_id" => id = Some(v),
                _ => name = Some(v),
            }
        }
        let (Some(id), Some(name)) = (id, name) else {
            return Err(StoreError::NotAStore(dir.to_path_buf()));
        };
        let id = uuid::Uuid::parse_str(&id)
            .map_err(|e| StoreError::Crypto(format!("bad device id in store: {e}")))?;
        Ok((id, name))
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle client, or a new one while fewer than [`MAX_OPEN`] are
    /// open, else waits for one to come back.
    fn take(&self) -> Result<(postgres::Client, Lease<'_>), StoreError> {
        let mut p = self.pool();
        loop {
            while let Some(c) = p.idle.pop() {
                if !c.is_closed() {
                    return Ok((c, Lease::new(self)));
                }
                p.open -= 1;
            }
            if p.open < MAX_OPEN || HELD.with(|h| h.get()) > 0 {
                p.open += 1;
                drop(p);
                let lease = Lease::new(self);
                return Ok((connect(&self.url)?, lease));
            }
            p = self.freed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, c: postgres::Client) {
        let mut p = self.pool();
        // One opened past the bound (for a thread that held one) closes.
        if c.is_closed() || p.open > MAX_OPEN {
            p.open -= 1;
        } else {
            p.idle.push(c);
        }
        self.freed.notify_one();
    }

    fn discard(&self) {
        self.pool().open -= 1;
        self.freed.notify_one();
    }

    /// Runs `f` in one repeatable-read, read-only transaction.
    pub(crate) fn snapshot<T, E>(
        &self,
        store: &Store,
        f: impl FnOnce(&Reader<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let (mut c, lease) = self.take()?;
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| pg_err(&self.url, e))?;
        let cell = RefCell::new(c);
        let out = f(&Reader {
            db: Db::Pg(PgReader {
                c: &cell,
                store,
                url: &self.url,
            }),
            store,
        });
        let mut c = cell.into_inner();
        // Nothing was written: ending the read cannot lose anything.
        if c.batch_execute("COMMIT").is_ok() {
            lease.back(c);
        }
        out
    }

    /// Runs `f` in one write transaction, after every write to this
    /// database committed before it (the write lock), committed only if
    /// it returns `Ok`.
    pub(crate) fn transaction<T, E>(
        &self,
        store: &Store,
        f: impl FnOnce(&Writer<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let (mut c, lease) = self.take()?;
        c.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .and_then(|_| c.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]))
            .map_err(|e| pg_err(&self.url, e))?;
        let cell = RefCell::new(c);
        let out = f(&Writer {
            r: Reader {
                db: Db::Pg(PgReader {
                    c: &cell,
                    store,
                    url: &self.url,
                }),
                store,
            },
        });
        let mut c = cell.into_inner();
        match out {
            Ok(v) => {
                c.batch_execute("COMMIT")
                    .map_err(|e| E::from(pg_err(&self.url, e)))?;
                lease.back(c);
                Ok(v)
            }
            Err(e) => {
                if c.batch_execute("ROLLBACK").is_ok() {
                    lease.back(c);
                }
                Err(e)
            }
        }
    }
}

/// Connects to the database at `url` (a `postgres://` URL; a password, if
/// any, from the URL or `PGPASSWORD`).
pub fn connect(url: &str) -> Result<postgres::Client, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| pg_err(url, e))?;
    if config.get_password().is_none()
        && let Ok(pw) = std::env::var("PGPASSWORD")
    {
        config.password(pw);
    }
    config.connect(postgres::NoTls).map_err(|e| pg_err(url, e))
}

/// `url` with its password, if any, left out (for messages).
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(u, _)| u);
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// A PostgreSQL error naming the database (its URL without password).
pub(crate) fn pg_err(url: &str, source: postgres::Error) -> StoreError {
    StoreError::Postgres {
        database: redact(url),
        source,
    }
}
