//! The SQLite schema of a store, its version in `user_version`, and the
//! forward migrations applied on open.
//!
//! Tables:
//! - `meta`: key/value facts about this store (device id, name, created_at;
//!   the actor epoch and restore facts of `restore.rs`).
//! - `documents`: one automerge document per record (`kind` = `submission`,
//!   later `registry` and `form`), saved whole after each write; the source
//!   of truth from which everything else can be rebuilt.
//! - `changes`: the append-only log of automerge changes, one row per change,
//!   content-addressed by `hash`; `seq` is this store's local order (the sync
//!   cursor), `author` the device whose key signs it, `op` what it did.
//! - `submissions`: materialized current state of each submission document,
//!   one column per field, for queries and the report's SQL aggregates.
//!   `review_status` is NULL until reviewed; `deleted` = 1 is a tombstone
//!   kept for sync; `conflicts` counts fields with concurrent values, plus
//!   one if the merged state fails validation (a record needing review).
//! - `submission_nationalities`: the `nationalities` map of each submission,
//!   one row per (submission, country), for the report's aggregates.
//!
//! Added in version 2, for sync (`fmp-sync`):
//! - `changes.origin`: the peer device a received change came from (NULL for
//!   a change made here), so a pull never echoes a change back to its sender;
//!   `changes.bundle`: id of the signed bundle that covers the change (NULL
//!   for a local change not sealed yet).
//! - `bundles`: signed batches of one author's change hashes, kept intact and
//!   forwarded as they are, so any replica can verify any change's author.
//! - `peers`: per peer, how far into the peer's log this store has consumed
//!   (`pulled`) and how far into this store's log the peer acknowledged
//!   (`acked`); written in the same transaction as the changes received.
//! - `devices`: certificates of devices' public keys learned from sync.
//! - `pending`: verified changes received before their dependencies, applied
//!   once those arrive.
//!
//! Added in version 3, for the hub (`fmp-hub`):
//! - `request_nonces`: (device, nonce, signed time) of each signed request a
//!   hub accepted within its time window, so a captured request is refused
//!   as a replay even after the hub restarts; expired rows are pruned.
//!
//! Version 4 takes in the hub's own tables (`fmp-hub` created them on open
//! before, outside the version; a store that has them keeps every row):
//! - `hub_codes`: enrollment codes, by SHA-256 of the code (the code itself
//!   is never stored), with the FMPs they grant, expiry and use.
//! - `hub_devices`: devices enrolled here: key, FMPs (`NULL`: any), whether
//!   they may enroll others (a supervisor's hub), revocation, last sync.
//! - `hub_upstream`: the hub this store joined (a phone's hub, a hub's HQ):
//!   address, device id and key, pinned TLS certificate, granted FMPs.
//! - `hub_quarantine`: this store's changes a hub refused, with its reason;
//!   set aside so they never block the rest.

//!
//! Version 5 changes no table: a document made of one change may be stored
//! with an empty `documents.data`, its bytes being that change's in
//! `changes` (kept once). A build of version 4 would read such a document
//! as empty, so it refuses the store as too new.

/// Schema version this build writes (`PRAGMA user_version`).
pub const VERSION: u32 = 5;

/// The sync tables of version 2, shared by `SCHEMA` and the 1 → 2 upgrade.
macro_rules! sync_tables {
    () => {
        r#"
CREATE INDEX changes_time ON changes(time, hash);
CREATE INDEX changes_unsealed ON changes(seq) WHERE bundle IS NULL;
CREATE TABLE bundles (
    id      BLOB PRIMARY KEY,
    author  TEXT NOT NULL,
    hashes  BLOB NOT NULL,
    sig     BLOB NOT NULL
);
CREATE TABLE peers (
    peer       TEXT PRIMARY KEY,
    pulled     INTEGER NOT NULL DEFAULT 0,
    acked      INTEGER NOT NULL DEFAULT 0,
    synced_at  INTEGER
);
CREATE TABLE devices (
    device  TEXT PRIMARY KEY,
    cert    BLOB NOT NULL
);
CREATE TABLE pending (
    hash    BLOB PRIMARY KEY,
    doc_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    author  TEXT NOT NULL,
    bundle  BLOB NOT NULL,
    origin  TEXT,
    bytes   BLOB NOT NULL
);
CREATE INDEX pending_doc ON pending(doc_id);
"#
    };
}

/// The table version 3 added (`request_nonces`), shared by `SCHEMA` and
/// the 2 → 3 upgrade.
macro_rules! nonce_tables {
    () => {
        r#"
CREATE TABLE request_nonces (
    device  TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    time    INTEGER NOT NULL,
    PRIMARY KEY (device, nonce)
) WITHOUT ROWID;
CREATE INDEX request_nonces_time ON request_nonces(time);
"#
    };
}

/// The hub's tables of version 4 (`IF NOT EXISTS`: stores of earlier
/// versions may have them already).
macro_rules! hub_tables {
    () => {
        r#"
CREATE TABLE IF NOT EXISTS hub_codes (
    hash        BLOB PRIMARY KEY,
    fmps        TEXT NOT NULL,
    may_enroll  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_by     TEXT,
    used_at     INTEGER
);
CREATE TABLE IF NOT EXISTS hub_devices (
    device       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    public_key   BLOB NOT NULL,
    fmps         TEXT,
    may_enroll   INTEGER NOT NULL DEFAULT 0,
    enrolled_at  INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_sync    INTEGER
);
CREATE TABLE IF NOT EXISTS hub_upstream (
    hub          TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    name         TEXT NOT NULL,
    public_key   BLOB NOT NULL,
    fmps         TEXT,
    tls_cert     BLOB,
    joined_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_quarantine (
    hash    BLOB PRIMARY KEY,
    doc_id  TEXT NOT NULL,
    peer    TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
"#
    };
}

/// The current schema, as a fresh store gets it.
pub const SCHEMA: &str = concat!(
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE documents (
    id    TEXT PRIMARY KEY,
    kind  TEXT NOT NULL,
    data  BLOB NOT NULL
);
CREATE TABLE changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    hash    BLOB NOT NULL UNIQUE,
    doc_id  TEXT NOT NULL,
    author  TEXT NOT NULL,
    time    INTEGER NOT NULL,
    op      TEXT NOT NULL,
    bytes   BLOB NOT NULL,
    origin  TEXT,
    bundle  BLOB
);
CREATE INDEX changes_doc ON changes(doc_id, seq);
CREATE TABLE submissions (
    id                  TEXT PRIMARY KEY,
    form                TEXT NOT NULL,
    form_version        INTEGER NOT NULL,
    fmp                 TEXT NOT NULL,
    observed_at         TEXT NOT NULL,
    day                 TEXT NOT NULL,
    month               TEXT NOT NULL,
    direction           TEXT NOT NULL,
    transport           TEXT NOT NULL,
    movement_type       TEXT NOT NULL,
    departure_country   TEXT NOT NULL,
    departure_place     TEXT,
    next_country        TEXT NOT NULL,
    next_place          TEXT,
    final_country       TEXT NOT NULL,
    final_place         TEXT,
    adult_male          INTEGER NOT NULL,
    adult_female        INTEGER NOT NULL,
    minor_male          INTEGER NOT NULL,
    minor_female        INTEGER NOT NULL,
    total               INTEGER NOT NULL,
    under5              INTEGER NOT NULL,
    elderly             INTEGER NOT NULL,
    disability          INTEGER NOT NULL,
    pregnant            INTEGER NOT NULL,
    unaccompanied       INTEGER,
    notes               TEXT NOT NULL,
    review_status       TEXT,
    review_comment      TEXT,
    review_by           TEXT,
    review_at           TEXT,
    deleted             INTEGER NOT NULL DEFAULT 0,
    conflicts           INTEGER NOT NULL DEFAULT 0,
    updated_seq         INTEGER NOT NULL
);
CREATE INDEX submissions_fmp_day ON submissions(fmp, day);
CREATE INDEX submissions_month ON submissions(month, fmp);
CREATE TABLE submission_nationalities (
    submission_id TEXT NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    country       TEXT NOT NULL,
    count         INTEGER NOT NULL,
    PRIMARY KEY (submission_id, country)
) WITHOUT ROWID;
"#,
    sync_tables!(),
    nonce_tables!(),
    hub_tables!()
);

/// The tables and indexes version 2 added for sync (part of `SCHEMA` too).
pub const SYNC_TABLES: &str = sync_tables!();

/// The table version 3 added for the hub's replay cache (part of `SCHEMA` too).
pub const NONCE_TABLES: &str = nonce_tables!();

/// The hub's tables, taken into the schema in version 4 (part of `SCHEMA` too).
pub const HUB_TABLES: &str = hub_tables!();

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, sql_err};

/// Brings a database to `VERSION`: a fresh one gets `SCHEMA`, an older one
/// each upgrade in turn, all in one immediate transaction; a newer one is refused.
pub fn migrate(conn: &mut Connection, dir: &Path) -> Result<(), StoreError> {
    let found: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| sql_err(dir, e))?;
    if found == VERSION {
        return Ok(());
    }
    if found > VERSION {
        return Err(StoreError::TooNew {
            path: dir.to_path_buf(),
            found,
            supported: VERSION,
        });
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err(dir, e))?;
    if found == 0 {
        tx.execute_batch(SCHEMA).map_err(|e| sql_err(dir, e))?;
    } else {
        for from in found..VERSION {
            upgrade(&tx, from).map_err(|e| sql_err(dir, e))?;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(|e| sql_err(dir, e))?;
    tx.commit().map_err(|e| sql_err(dir, e))
}

/// One forward step: the schema of version `from` to `from + 1`.
fn upgrade(tx: &rusqlite::Transaction<'_>, from: u32) -> rusqlite::Result<()> {
    match from {
        1 => {
            tx.execute_batch(
                "ALTER TABLE changes ADD COLUMN origin TEXT;
                 ALTER TABLE changes ADD COLUMN bundle BLOB;",
            )?;
            tx.execute_batch(SYNC_TABLES)
        }
        2 => tx.execute_batch(NONCE_TABLES),
        3 => tx.execute_batch(HUB_TABLES),
        // 4 → 5: nothing to rewrite (documents stored whole stay valid).
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's columns and every index's definition, comparable
    /// across a fresh and a migrated database (ALTER TABLE rewrites the
    /// stored SQL text, so the text itself is not compared for tables).
    fn shape(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .expect("prepare");
        let rows: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        for (ty, name, tbl, sql) in rows {
            if ty == "table" {
                let mut cols = conn
                    .prepare(&format!("PRAGMA table_xinfo({name})"))
                    .expect("pragma");
                let cols: Vec<String> = cols
                    .query_map([], |r| {
                        Ok(format!(
                            "{}:{}:{}:{:?}:{}",
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?
                        ))
                    })
                    .expect("cols")
                    .collect::<rusqlite::Result<_>>()
                    .expect("cols");
                out.push(format!("table {name}: {}", cols.join(", ")));
            } else {
                let sql = sql
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(format!("{ty} {name} on {tbl}: {sql}"));
            }
        }
        out
    }

    #[test]
    fn v1_upgraded_matches_a_fresh_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut old = Connection::open(dir.path().join("old.sqlite3")).expect("open");
        old.execute_batch(include_str!("fixtures/schema_v1.sql"))
            .expect("v1 schema");
        old.pragma_update(None, "user_version", 1).expect("version");
        old.execute(
            "INSERT INTO changes (hash, doc_id, author, time, op, bytes) VALUES (x'01', 'd', 'a', 1, 'record', x'00')",
            [],
        )
        .expect("a v1 change");
        migrate(&mut old, dir.path()).expect("upgrade");
        let mut fresh = Connection::open(dir.path().join("new.sqlite3")).expect("open");
        migrate(&mut fresh, dir.path()).expect("fresh");
        assert_eq!(shape(&old), shape(&fresh));
        let v: u32 = old
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, VERSION);
        let kept: i64 = old
            .query_row(
                "SELECT count(*) FROM changes WHERE bundle IS NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(kept, 1, "the v1 change is kept, unsealed");
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_v2_hub_store_upgraded_keeps_everything_and_matches_a_fresh_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut old = Connection::open(dir.path().join("old.sqlite3")).expect("open");
        old.execute_batch(include_str!("fixtures/store_v2.sql"))
            .expect("v2 store");
        old.pragma_update(None, "user_version", 2).expect("version");
        let tables = [
            "meta",
            "documents",
            "changes",
            "submissions",
            "submission_nationalities",
            "bundles",
            "peers",
            "devices",
            "pending",
            "hub_codes",
            "hub_devices",
            "hub_upstream",
            "hub_quarantine",
        ];
        let before: Vec<(String, i64)> = tables
            .iter()
            .map(|t| (t.to_string(), count(&old, t)))
            .collect();
        let dump = |c: &Connection, sql: &str| -> Vec<String> {
            let mut stmt = c.prepare(sql).expect("prepare");
            stmt.query_map([], |r| r.get::<_, String>(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        let devices_sql =
            "SELECT device || name || hex(public_key) || fmps || enrolled_at FROM hub_devices";
        let codes_sql = "SELECT hex(hash) || fmps || expires_at || coalesce(used_by, '-') FROM hub_codes ORDER BY hash";
        let quarantine_sql = "SELECT hex(hash) || doc_id || reason FROM hub_quarantine";
        let changes_sql = "SELECT seq || hex(hash) || author || hex(bytes) || coalesce(hex(bundle), '-') FROM changes ORDER BY seq";
        let kept = |c: &Connection| {
            [devices_sql, codes_sql, quarantine_sql, changes_sql].map(|q| dump(c, q))
        };
        let rows_before = kept(&old);
        assert_eq!(
            rows_before[0].len(),
            1,
            "the fixture has its enrolled phone"
        );
        assert_eq!(rows_before[1].len(), 2, "and two codes");
        assert_eq!(rows_before[2].len(), 1, "and a quarantined change");
        assert_eq!(rows_before[3].len(), 2, "and two changes");

        migrate(&mut old, dir.path()).expect("upgrade");

        let v: u32 = old
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, VERSION);
        let after: Vec<(String, i64)> = tables
            .iter()
            .map(|t| (t.to_string(), count(&old, t)))
            .collect();
        assert_eq!(before, after, "every row of every table is kept");
        assert_eq!(
            rows_before,
            kept(&old),
            "devices, codes, quarantine, changes"
        );
        assert_eq!(count(&old, "request_nonces"), 0);
        let mut fresh = Connection::open(dir.path().join("new.sqlite3")).expect("open");
        migrate(&mut fresh, dir.path()).expect("fresh");
        assert_eq!(shape(&old), shape(&fresh), "hub tables too");
    }

    #[test]
    fn a_store_without_hub_tables_gets_them_empty_and_matches_a_fresh_database() {
        // A phone's store of an earlier version (no hub tables: fmp-hub
        // created them on first use).
        let dir = tempfile::tempdir().expect("tempdir");
        let mut old = Connection::open(dir.path().join("old.sqlite3")).expect("open");
        old.execute_batch(include_str!("fixtures/store_v2.sql"))
            .expect("v2 store");
        old.execute_batch(
            "DROP TABLE hub_codes; DROP TABLE hub_devices; DROP TABLE hub_upstream;
             DROP TABLE hub_quarantine;",
        )
        .expect("drop");
        old.pragma_update(None, "user_version", 2).expect("version");
        let changes = count(&old, "changes");
        migrate(&mut old, dir.path()).expect("upgrade");
        for t in ["hub_codes", "hub_devices", "hub_upstream", "hub_quarantine"] {
            assert_eq!(count(&old, t), 0, "{t}");
        }
        assert_eq!(count(&old, "changes"), changes);
        let mut fresh = Connection::open(dir.path().join("new.sqlite3")).expect("open");
        migrate(&mut fresh, dir.path()).expect("fresh");
        assert_eq!(shape(&old), shape(&fresh));
    }
}
