//! The SQLite schema of a store, its version in `user_version`, and the
//! forward migrations applied on open.
//!
//! Tables:
//! - `meta`: key/value facts about this store (device id, name, created_at).
//! - `documents`: one automerge document per record (`kind` = `submission`,
//!   later `registry` and `form`), saved whole after each write; the source
//!   of truth from which everything else can be rebuilt.
//! - `changes`: the append-only log of automerge changes, one row per change,
//!   content-addressed by `hash`; `seq` is this store's local order (the sync
//!   cursor), `author` the device whose key signs it, `op` what it did.
//! - `submissions`: materialized current state of each submission document,
//!   one column per field, for queries and the report's SQL aggregates.
//!   `review_status` is NULL until reviewed; `deleted` = 1 is a tombstone
//!   kept for sync; `conflicts` counts fields with concurrent values.
//! - `submission_nationalities`: the `nationalities` map of each submission,
//!   one row per (submission, country), for the report's aggregates.

/// Schema version this build writes (`PRAGMA user_version`).
pub const VERSION: u32 = 1;

/// The current schema, as a fresh store gets it.
pub const SCHEMA: &str = r#"
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
    bytes   BLOB NOT NULL
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
"#;

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
fn upgrade(_tx: &rusqlite::Transaction<'_>, from: u32) -> rusqlite::Result<()> {
    // Version 1 is the first schema; each later version adds a `match from` arm here.
    debug_assert!(from < VERSION);
    Ok(())
}
