//! For tests and benches: inspect a store's tables, check its database
//! file, break a store on purpose (the hostile or broken set-ups tests
//! play) and measure the bare SQLite floors benches compare with, all
//! through the store's own code, so no SQL lives outside fmp-core.
//!
//! Nothing here is for the app: the functions that write bypass every
//! check of the store (validation, scope, role) and their names say so.
//! Functions given a directory open its database for one call only, so
//! they may be pointed at a store a running `fmp serve` is using.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params};
use uuid::Uuid;

use super::access::Db;
use super::{DB_FILE, Reader, Store, StoreError, Writer, materialize, sql_err, submission_doc};
use crate::doc::{DocError, Op};
use crate::model::StoredSubmission;

// ------------------------------------------------------------ backends

/// How a test suite creates a fresh store and opens it again: one value
/// per store backend, so the same suite runs over each
/// (`crates/fmp-core/tests/backend.rs`, fmp-sync's and fmp-hub's suites).
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    /// Its name, for test output.
    pub name: &'static str,
    /// Creates a fresh store in a directory.
    pub init: fn(&Path, &str) -> Result<Store, StoreError>,
    /// Opens the store of a directory again.
    pub open: fn(&Path) -> Result<Store, StoreError>,
    /// True (with a line saying so) when this backend cannot run here and
    /// the test named is skipped: PostgreSQL without a cluster given
    /// (`FMP_TEST_PG`), unless `FMP_REQUIRE_PG` says it must run.
    pub skip: fn(&str) -> bool,
}

/// The embedded SQLite backend (the default).
pub const SQLITE: Backend = Backend {
    name: "sqlite",
    init: Store::init,
    open: Store::open,
    skip: |_| false,
};

/// PostgreSQL (HQ at scale): each store on a fresh database of the tests'
/// throwaway cluster (`FMP_TEST_PG`), kept until the process ends (the
/// cluster is thrown away after the run).
#[cfg(feature = "postgres")]
pub const POSTGRES: Backend = Backend {
    name: "postgres",
    init: pg_init,
    open: Store::open,
    skip: pg_skip,
};

/// The backend the suites of other crates run on: `FMP_TEST_BACKEND=postgres`
/// picks PostgreSQL (with the `postgres` feature), anything else SQLite.
pub fn from_env() -> Backend {
    #[cfg(feature = "postgres")]
    if std::env::var("FMP_TEST_BACKEND").as_deref() == Ok("postgres") {
        return POSTGRES;
    }
    SQLITE
}

#[cfg(feature = "postgres")]
static PG_DATABASES: std::sync::Mutex<Vec<PgDatabase>> = std::sync::Mutex::new(Vec::new());

#[cfg(feature = "postgres")]
fn pg_init(dir: &Path, name: &str) -> Result<Store, StoreError> {
    let db = PgDatabase::create(name).ok_or(StoreError::NotOnBackend {
        op: "a test store (no cluster given: FMP_TEST_PG is unset)",
        backend: "postgres",
    })?;
    let store = Store::init_postgres(dir, name, &db.url)?;
    PG_DATABASES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(db);
    Ok(store)
}

#[cfg(feature = "postgres")]
fn pg_skip(test: &str) -> bool {
    if std::env::var_os("FMP_TEST_PG").is_some() {
        return false;
    }
    if std::env::var_os("FMP_REQUIRE_PG").is_some() {
        panic!("{test}: FMP_REQUIRE_PG is set but FMP_TEST_PG is not");
    }
    eprintln!("{test}: skipped: no PostgreSQL cluster (FMP_TEST_PG unset)");
    true
}

// ------------------------------------------------------------ inspecting

/// `table` quoted as an SQL identifier.
fn ident(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

/// Rows of a query as SQLite values (on PostgreSQL each column mapped to
/// the value SQLite would hold: integers, text, blobs, NULL), with the
/// column names. `pg_sql` is the statement on PostgreSQL, if it differs.
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn raw(
    r: &Reader<'_>,
    sql: &str,
    pg_sql: Option<&str>,
) -> Result<(Vec<String>, Vec<Vec<Value>>), StoreError> {
    match r.db {
        Db::Sqlite(s) => {
            let run = || -> rusqlite::Result<(Vec<String>, Vec<Vec<Value>>)> {
                let mut stmt = s.conn.prepare(sql)?;
                let cols: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
                let n = cols.len();
                let mut q = stmt.query([])?;
                let mut out = Vec::new();
                while let Some(row) = q.next()? {
                    out.push(
                        (0..n)
                            .map(|i| row.get::<_, Value>(i))
                            .collect::<rusqlite::Result<_>>()?,
                    );
                }
                Ok((cols, out))
            };
            run().map_err(s.sql())
        }
        #[cfg(feature = "postgres")]
        Db::Pg(p) => {
            use postgres::types::Type;
            let rows = p.query(pg_sql.unwrap_or(sql), &[])?;
            let mut cols = Vec::new();
            let mut out = Vec::new();
            for row in &rows {
                if cols.is_empty() {
                    cols = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                let mut vals = Vec::new();
                for (i, c) in row.columns().iter().enumerate() {
                    use super::pg::ops::get;
                    let v = match *c.type_() {
                        Type::INT8 => get::<Option<i64>>(row, i)?.map(Value::Integer),
                        Type::INT4 => get::<Option<i32>>(row, i)?.map(|v| Value::Integer(v.into())),
                        Type::BOOL => {
                            get::<Option<bool>>(row, i)?.map(|v| Value::Integer(v.into()))
                        }
                        Type::BYTEA => get::<Option<Vec<u8>>>(row, i)?.map(Value::Blob),
                        _ => get::<Option<String>>(row, i)?.map(Value::Text),
                    };
                    vals.push(v.unwrap_or(Value::Null));
                }
                out.push(vals);
            }
            Ok((cols, out))
        }
    }
}

/// Runs one writing statement with `params` in the write `w` (`pg_sql`:
/// the statement on PostgreSQL, if it differs); the rows it changed.
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn raw_exec(
    w: &Writer<'_>,
    sql: &str,
    pg_sql: Option<&str>,
    params: Vec<Value>,
) -> Result<usize, StoreError> {
    match w.db {
        Db::Sqlite(s) => s
            .conn
            .execute(sql, rusqlite::params_from_iter(params))
            .map_err(s.sql()),
        #[cfg(feature = "postgres")]
        Db::Pg(p) => {
            let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                .into_iter()
                .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
                    match v {
                        Value::Integer(i) => Box::new(i),
                        Value::Text(t) => Box::new(t),
                        Value::Blob(b) => Box::new(b),
                        Value::Real(f) => Box::new(f),
                        Value::Null => Box::new(None::<String>),
                    }
                })
                .collect();
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                owned.iter().map(|b| b.as_ref()).collect();
            let n = p.exec(pg_sql.unwrap_or(sql), &refs)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }
    }
}

fn table_names(r: &Reader<'_>) -> Result<Vec<String>, StoreError> {
    let (_, rows) = raw(
        r,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
        Some(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
             AND tablename <> 'fmp_schema' ORDER BY tablename COLLATE \"C\"",
        ),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|mut r| match r.pop() {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        })
        .collect())
}

/// The rows of `table` in stored order; each row its columns' values
/// (`Integer(3)`, `Text("x")`, `Blob([..])`, `Null`) without the columns
/// named in `skip`.
fn rows_of(r: &Reader<'_>, table: &str, skip: &[&str]) -> Result<Vec<Vec<String>>, StoreError> {
    let (cols, rows) = raw(r, &format!("SELECT * FROM {}", ident(table)), None)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            row.iter()
                .zip(&cols)
                .filter(|(_, n)| !skip.contains(&n.as_str()))
                .map(|(v, _)| format!("{v:?}"))
                .collect()
        })
        .collect())
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        _ => 0,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn blob(v: &Value) -> Vec<u8> {
    match v {
        Value::Blob(b) => b.clone(),
        _ => Vec::new(),
    }
}

/// The store's tables (the database's own left out), by name.
pub fn tables(store: &Store) -> Result<Vec<String>, StoreError> {
    store.snapshot(table_names)
}

/// The rows of `table` in stored order, each its columns' SQLite values
/// (`Integer(3)`, `Text("x")`, `Blob([..])`, `Null`) joined with `|`: for
/// "nothing stored is lost or changed" comparisons.
pub fn table_rows(store: &Store, table: &str) -> Result<Vec<String>, StoreError> {
    store.snapshot(|r| {
        Ok(rows_of(r, table, &[])?
            .into_iter()
            .map(|cols| cols.join("|"))
            .collect())
    })
}

/// How many rows `table` holds.
pub fn count_rows(store: &Store, table: &str) -> Result<i64, StoreError> {
    store.snapshot(|r| {
        let (_, rows) = raw(r, &format!("SELECT count(*) FROM {}", ident(table)), None)?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, int))
    })
}

/// The whole database's contents on one snapshot: every row of every
/// table as `table: v1|v2|…` (values as in [`table_rows`]), sorted within
/// its table, tables by name. Equal before and after: nothing changed.
pub fn dump(store: &Store) -> Result<Vec<String>, StoreError> {
    store.snapshot(|r| {
        let mut out = Vec::new();
        for t in table_names(r)? {
            let mut rows: Vec<String> = rows_of(r, &t, &[])?
                .into_iter()
                .map(|cols| format!("{t}: {}", cols.join("|")))
                .collect();
            rows.sort();
            out.extend(rows);
        }
        Ok(out)
    })
}

/// One change as this store logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// Position in this store's change log.
    pub seq: i64,
    /// Content hash of the automerge change.
    pub hash: [u8; 32],
    /// The document it changes.
    pub doc_id: String,
    /// That document's kind (`submission`, `registry`, `form`), if stored.
    pub doc_kind: Option<String>,
    /// The device that made it.
    pub author: String,
    /// What it did (`record`, `edit`, `review`…).
    pub op: String,
    /// The raw automerge change.
    pub bytes: Vec<u8>,
}

/// Every change in the log, oldest first (by `seq`).
pub fn changes(store: &Store) -> Result<Vec<LoggedChange>, StoreError> {
    store.snapshot(|r| {
        let (_, rows) = raw(
            r,
            "SELECT c.seq, c.hash, c.doc_id, d.kind, c.author, c.op, c.bytes
             FROM changes c LEFT JOIN documents d ON d.id = c.doc_id ORDER BY c.seq",
            None,
        )?;
        Ok(rows
            .iter()
            .map(|row| LoggedChange {
                seq: int(&row[0]),
                // A hash of another length never matches one of 32 bytes.
                hash: <[u8; 32]>::try_from(blob(&row[1])).unwrap_or([0; 32]),
                doc_id: text(&row[2]).unwrap_or_default(),
                doc_kind: text(&row[3]),
                author: text(&row[4]).unwrap_or_default(),
                op: text(&row[5]).unwrap_or_default(),
                bytes: blob(&row[6]),
            })
            .collect())
    })
}

/// Everything a replica holds that must converge with its peers: the
/// materialized rows (the local `updated_seq` left out) and nationalities,
/// each document's heads, and the set of change hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    /// `submissions` rows by id, then `submission_nationalities` rows as
    /// `id:country:count`.
    pub rows: Vec<String>,
    /// Each document's heads (sorted), by document id.
    pub heads: BTreeMap<String, Vec<String>>,
    /// Every change's hash (upper-case hex), sorted.
    pub changes: Vec<String>,
}

/// What `store` holds that must converge (see [`Converged`]), on one snapshot.
pub fn converged(store: &Store) -> Result<Converged, StoreError> {
    store.snapshot(|r| {
        let mut subs = rows_of(r, "submissions", &["updated_seq"])?;
        // By id, the first column.
        subs.sort_by(|a, b| a.first().cmp(&b.first()));
        let mut rows: Vec<String> = subs.into_iter().map(|c| c.join("|")).collect();
        let (_, nat) = raw(
            r,
            "SELECT submission_id, country, count FROM submission_nationalities ORDER BY 1, 2",
            Some(
                "SELECT submission_id, country, count FROM submission_nationalities \
                 ORDER BY submission_id COLLATE \"C\", country COLLATE \"C\"",
            ),
        )?;
        rows.extend(nat.iter().map(|n| {
            format!(
                "{}:{}:{}",
                text(&n[0]).unwrap_or_default(),
                text(&n[1]).unwrap_or_default(),
                int(&n[2])
            )
        }));
        let (_, docs) = raw(
            r,
            concat!(
                "SELECT d.id, ",
                super::log::doc_data!(),
                " FROM documents d ORDER BY d.id"
            ),
            None,
        )?;
        let mut heads = BTreeMap::new();
        for doc in docs {
            let mut d = AutoCommit::load(&blob(&doc[1])).map_err(DocError::from)?;
            let mut h: Vec<String> = d.get_heads().iter().map(|h| h.to_string()).collect();
            h.sort();
            heads.insert(text(&doc[0]).unwrap_or_default(), h);
        }
        let (_, hashes) = raw(r, "SELECT hash FROM changes", None)?;
        let mut changes = hashes
            .iter()
            .map(|h| hex::encode_upper(blob(&h[0])))
            .collect::<Vec<_>>();
        changes.sort();
        Ok(Converged {
            rows,
            heads,
            changes,
        })
    })
}

/// SQLite's `PRAGMA integrity_check` of the store in `dir`, its database
/// opened for this check alone (the store may be in use by a running
/// `fmp serve`, or its last writer SIGKILLed): `"ok"` when sound, else
/// SQLite's findings, one per line. Writes nothing of the store's own.
pub fn integrity_check(dir: &Path) -> Result<String, StoreError> {
    let db = dir.join(DB_FILE);
    if !db.is_file() {
        return Err(StoreError::NotAStore(dir.to_path_buf()));
    }
    let sql = |e| sql_err(dir, e);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
    let found: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql)?;
    Ok(found.join("\n"))
}

// ---------------------------------------------------- breaking on purpose

/// Deletes every change held back (`pending`): plays an older hub that
/// dropped the changes it refused. Returns how many were held.
pub fn forget_pending(store: &Store) -> Result<usize, StoreError> {
    store.transaction(|w| raw_exec(w, "DELETE FROM pending", None, vec![]))
}

/// Drops the hub's replay cache table (`request_nonces`) under it: a broken
/// store, whose next signed request fails with an internal error.
pub fn drop_nonce_cache(store: &Store) -> Result<(), StoreError> {
    store.transaction(|w| raw_exec(w, "DROP TABLE request_nonces", None, vec![]).map(|_| ()))
}

/// Forgets the HQ this store pinned at join: plays a store that joined
/// before pins existed.
pub fn forget_hq_authority(store: &Store) -> Result<(), StoreError> {
    // The key of `authority.rs`'s pin.
    store.transaction(|w| {
        raw_exec(
            w,
            "DELETE FROM meta WHERE key = 'hq_authority'",
            None,
            vec![],
        )
        .map(|_| ())
    })
}

/// Gives every device enrolled at this hub the name `name`, unchecked:
/// plays an older store holding a shared name or an escape sequence.
pub fn rename_enrolled_devices(store: &Store, name: &str) -> Result<(), StoreError> {
    store.transaction(|w| {
        raw_exec(
            w,
            "UPDATE hub_devices SET name = ?1",
            Some("UPDATE hub_devices SET name = $1"),
            vec![Value::Text(name.into())],
        )
        .map(|_| ())
    })
}

/// Stores `blob` as `device`'s certificate as it is (not decoded): plays
/// an older store that kept certificates in an older format.
pub fn put_raw_certificate(store: &Store, device: Uuid, blob: &[u8]) -> Result<(), StoreError> {
    store.transaction(|w| {
        raw_exec(
            w,
            "INSERT OR REPLACE INTO devices (device, cert) VALUES (?1, ?2)",
            Some(
                "INSERT INTO devices (device, cert) VALUES ($1, $2)
                 ON CONFLICT (device) DO UPDATE SET cert = excluded.cert",
            ),
            vec![Value::Text(device.to_string()), Value::Blob(blob.to_vec())],
        )
        .map(|_| ())
    })
}

/// Submission `id`'s automerge document as stored, for a change forged
/// by hand (see [`forge_change`]).
pub fn forged_document(r: &Reader<'_>, id: Uuid) -> Result<AutoCommit, StoreError> {
    submission_doc(r, id)
}

/// Stores a change of submission `id` made by hand, past every check of
/// the store (validation, scope, role): plays a modified app. The document
/// is saved as `doc` (the bytes of `AutoCommit::save`), `change` appended
/// to the log as this device's (`op`, at `time_ms`), and the materialized
/// row rewritten from `state`. Returns the change's `seq`.
#[cfg_attr(
    not(feature = "postgres"),
    allow(clippy::infallible_destructuring_match)
)]
pub fn forge_change(
    w: &Writer<'_>,
    id: Uuid,
    doc: &[u8],
    change: &automerge::Change,
    op: Op,
    time_ms: i64,
    state: &StoredSubmission,
) -> Result<i64, StoreError> {
    let s = match w.db {
        Db::Sqlite(s) => s,
        #[cfg(feature = "postgres")]
        Db::Pg(p) => {
            let pw = super::pg::PgWriter { r: p };
            let id = id.to_string();
            pw.exec(
                "INSERT INTO documents (id, kind, data) VALUES ($1, 'submission', $2)
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                &[&id, &doc],
            )?;
            let seq = pw
                .append(
                    &id,
                    &super::log::NewChange {
                        hash: change.hash().0,
                        author: w.store.identity.device_id,
                        time: time_ms,
                        op: op.as_str(),
                        bytes: change.raw_bytes(),
                        origin: None,
                        bundle: None,
                    },
                )?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "a forged change already logged".into(),
                })?;
            pw.write_row(state, seq, false)?;
            return Ok(seq);
        }
    };
    let sql = s.sql();
    let id = id.to_string();
    s.conn
        .execute(
            "INSERT INTO documents (id, kind, data) VALUES (?1, 'submission', ?2)
             ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            params![id, doc],
        )
        .map_err(&sql)?;
    s.conn
        .execute(
            "INSERT INTO changes (hash, doc_id, author, time, op, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                change.hash().0.as_slice(),
                id,
                w.store.identity.device_id.to_string(),
                time_ms,
                op.as_str(),
                change.raw_bytes()
            ],
        )
        .map_err(&sql)?;
    let seq = s.conn.last_insert_rowid();
    materialize::write_row(s.conn, state, seq).map_err(&sql)?;
    Ok(seq)
}

// ------------------------------------------------------------ bench floors

/// The floor of a local record: each of `rows` (JSON text) inserted alone,
/// durably, into a fresh bare SQLite database at `path` with the store's
/// pragmas (WAL, synchronous=FULL) and one table; each insert's time.
pub fn bare_insert_timings(
    path: &Path,
    rows: impl IntoIterator<Item = String>,
) -> Result<Vec<Duration>, StoreError> {
    let sql = |e| sql_err(path, e);
    let conn = Connection::open(path).map_err(sql)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, json TEXT)", [])
        .map_err(sql)?;
    let mut out = Vec::new();
    for json in rows {
        let t = Instant::now();
        conn.execute("INSERT INTO t (json) VALUES (?1)", [json])
            .map_err(sql)?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// The floor of a month's report: the time of one SQL aggregate (rows by
/// FMP and direction, their totals summed) over `month`'s (`YYYY-MM`)
/// materialized rows in the database file `db` (a store's [`DB_FILE`], or
/// a bench's database in the store's schema), opened for it alone; it
/// writes nothing.
pub fn month_aggregate_time(db: &Path, month: &str) -> Result<Duration, StoreError> {
    let sql = |e| sql_err(db, e);
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
    let t = Instant::now();
    let _: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT fmp, direction, sum(total) FROM submissions \
             WHERE month = ?1 GROUP BY fmp, direction)",
            [month],
            |r| r.get(0),
        )
        .map_err(sql)?;
    Ok(t.elapsed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::doc;

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::init(&tmp.path().join("s"), "phone").unwrap();
        (tmp, store)
    }

    #[test]
    fn inspection_sees_what_a_record_wrote() {
        let (_tmp, store) = store();
        let before = dump(&store).unwrap();
        assert!(tables(&store).unwrap().contains(&"changes".to_string()));
        assert_eq!(count_rows(&store, "submissions").unwrap(), 0);
        let id = store.record(crate::example_submission()).unwrap();
        assert_eq!(count_rows(&store, "submissions").unwrap(), 1);
        assert_eq!(table_rows(&store, "submissions").unwrap().len(), 1);
        assert_ne!(dump(&store).unwrap(), before);
        let logged = changes(&store).unwrap();
        assert_eq!(logged.len(), 1);
        let c = &logged[0];
        assert_eq!(c.doc_id, id.to_string());
        assert_eq!(c.doc_kind.as_deref(), Some("submission"));
        assert_eq!(c.author, store.identity().device_id.to_string());
        assert_eq!(c.op, "record");
        assert_eq!(hex::encode(c.hash), store.history(id).unwrap()[0].hash);
        let conv = converged(&store).unwrap();
        assert_eq!(conv.changes, vec![hex::encode_upper(c.hash)]);
        assert!(conv.rows[0].starts_with(&format!("Text({:?})", id.to_string())));
        assert!(!conv.rows[0].ends_with(&format!("Integer({})", c.seq)));
        assert_eq!(conv.heads.len(), 1);
        assert_eq!(integrity_check(store.dir()).unwrap(), "ok");
        assert!(count_rows(&store, "no such\" table").is_err());
    }

    #[test]
    fn tampering_breaks_what_it_says() {
        let (tmp, store) = store();
        forget_pending(&store).unwrap();
        store
            .pin_authority(&crate::store::Authority {
                device_id: Uuid::now_v7(),
                public_key: vec![7; 32],
            })
            .unwrap();
        forget_hq_authority(&store).unwrap();
        assert_eq!(store.pinned_authority().unwrap(), None);
        let device = Uuid::now_v7();
        put_raw_certificate(&store, device, b"old").unwrap();
        assert_eq!(
            table_rows(&store, "devices").unwrap(),
            vec![format!(
                "Text({:?})|Blob([111, 108, 100])",
                device.to_string()
            )]
        );
        rename_enrolled_devices(&store, "x").unwrap();
        drop_nonce_cache(&store).unwrap();
        assert!(count_rows(&store, "request_nonces").is_err());
        assert!(matches!(
            integrity_check(&tmp.path().join("none")),
            Err(StoreError::NotAStore(_))
        ));
    }

    #[test]
    fn a_forged_change_is_stored_past_every_check() {
        let (_tmp, store) = store();
        let me = store.identity().device_id;
        let mut sub = crate::example_submission();
        sub.people.adult_male += 3; // the sums no longer match
        let id = Uuid::now_v7();
        sub.id = Some(id);
        let (mut d, change) =
            doc::new_submission_committed(doc::actor_for(me), id, &sub, Op::Record, 1).unwrap();
        let state = StoredSubmission {
            submission: sub,
            review: None,
            deleted: false,
            conflicts: Vec::new(),
        };
        let seq = store
            .transaction(|w| forge_change(w, id, &d.save(), &change, Op::Record, 1, &state))
            .unwrap();
        assert_eq!(store.get(id).unwrap().submission, state.submission);
        store
            .transaction(|w| -> Result<(), StoreError> {
                let mut d = forged_document(w, id)?.with_actor(doc::actor_for(me));
                doc::set_deleted(&mut d)?;
                doc::commit(&mut d, Op::Delete, 2).unwrap();
                let change = d.get_last_local_change().unwrap().clone();
                let state = doc::read_submission(&d)?;
                let next = forge_change(w, id, &d.save(), &change, Op::Delete, 2, &state)?;
                assert!(next > seq);
                Ok(())
            })
            .unwrap();
        assert!(store.get(id).unwrap().deleted);
        assert_eq!(changes(&store).unwrap().len(), 2);
    }

    #[test]
    fn the_floors_measure() {
        let tmp = tempfile::tempdir().unwrap();
        let t = bare_insert_timings(
            &tmp.path().join("floor.sqlite3"),
            (0..3).map(|i| format!("{{\"n\":{i}}}")),
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        let (_tmp, store) = store();
        store.record(crate::example_submission()).unwrap();
        month_aggregate_time(&store.dir().join(DB_FILE), "2020-06").unwrap();
    }
}

// ------------------------------------------------------------ PostgreSQL

/// A fresh database on the tests' throwaway PostgreSQL cluster
/// (`scripts/pg-cluster.sh`, started by `scripts/test-all.sh`, which sets
/// `FMP_TEST_PG` to its maintenance database), dropped when this is.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct PgDatabase {
    admin: String,
    name: String,
    /// The URL of the fresh database.
    pub url: String,
}

#[cfg(feature = "postgres")]
impl PgDatabase {
    /// Creates a fresh, empty database; `None` (with a line saying so on
    /// stderr) when no cluster is given and `FMP_REQUIRE_PG` is not set; a
    /// panic when it is (CI must not skip these tests).
    pub fn create(test: &str) -> Option<PgDatabase> {
        let Ok(admin) = std::env::var("FMP_TEST_PG") else {
            if std::env::var_os("FMP_REQUIRE_PG").is_some() {
                panic!(
                    "{test}: FMP_REQUIRE_PG is set but FMP_TEST_PG is not: run the tests through scripts/test-all.sh, which starts a throwaway PostgreSQL cluster"
                );
            }
            eprintln!(
                "{test}: skipped: no PostgreSQL cluster (FMP_TEST_PG unset; scripts/test-all.sh starts one)"
            );
            return None;
        };
        let name = format!("fmp_t_{}", Uuid::new_v4().simple());
        let mut c = super::pg::connect(&admin).unwrap_or_else(|e| panic!("{test}: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{test}: create database: {e}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(PgDatabase { admin, name, url })
    }

    /// A new connection to the database.
    pub fn connect(&self) -> postgres::Client {
        super::pg::connect(&self.url).unwrap_or_else(|e| panic!("connect: {e}"))
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = super::pg::connect(&self.admin) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Each table of a schema with its columns as `name:not-null`, in order
/// (tables by name): two backends' schemas compare equal when they hold
/// the same tables and columns.
pub type TableShapes = Vec<(String, Vec<String>)>;

/// The tables and columns of SQLite's current schema.
pub fn sqlite_table_shapes() -> Result<TableShapes, StoreError> {
    let dir = Path::new(":memory:");
    let conn = Connection::open_in_memory().map_err(|e| sql_err(dir, e))?;
    conn.execute_batch(super::schema::SCHEMA)
        .map_err(|e| sql_err(dir, e))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| sql_err(dir, e))?;
    tables
        .into_iter()
        .map(|t| {
            let cols = conn
                .prepare(&format!("PRAGMA table_info({t})"))
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        // A primary key column is NOT NULL on PostgreSQL.
                        let not_null = r.get::<_, i64>(3)? == 1 || r.get::<_, i64>(5)? > 0;
                        Ok(format!("{}:{not_null}", r.get::<_, String>(1)?))
                    })?
                    .collect()
                })
                .map_err(|e| sql_err(dir, e))?;
            Ok((t, cols))
        })
        .collect()
}

/// The tables and columns of a PostgreSQL store's schema (its version
/// table left out).
#[cfg(feature = "postgres")]
pub fn pg_table_shapes(url: &str) -> Result<TableShapes, StoreError> {
    let mut c = super::pg::connect(url)?;
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text, is_nullable = 'NO'
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'fmp_schema'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .map_err(|e| super::pg::pg_err(url, e))?;
    let mut out: TableShapes = Vec::new();
    for r in rows {
        let (t, col, nn): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        match out.last_mut() {
            Some((last, cols)) if *last == t => cols.push(format!("{col}:{nn}")),
            _ => out.push((t, vec![format!("{col}:{nn}")])),
        }
    }
    Ok(out)
}

/// The schema version SQLite stores are written at.
pub fn sqlite_schema_version() -> u32 {
    super::schema::VERSION
}
