//! The PostgreSQL schema of a store: the tables of SQLite's schema
//! (`store/schema.rs`, whose module docs say what each table holds) in
//! PostgreSQL's types, at the same version number. The version lives in a
//! one-row table `fmp_schema`; `migrate` brings a database to `VERSION`
//! in one transaction under an advisory lock, so several `fmp serve`
//! processes opening one database at once migrate it once.
//!
//! What differs from SQLite: `changes.seq` is no sequence but the
//! position of ADR 0005 (the writing transaction's id, then the change's
//! ordinal in it: `log.rs`); blobs are `bytea`; `WITHOUT ROWID` has no
//! counterpart.

use postgres::GenericClient;

use super::pg_err;
use crate::store::StoreError;

/// Schema version this build writes: the same number as SQLite's schema
/// of the same tables (PostgreSQL stores start at 5, the first version
/// this backend was built at).
pub const VERSION: u32 = 5;

/// The lowest version a PostgreSQL store may have been written at.
const FIRST: u32 = 5;

/// Key of the advisory lock migrations take.
const MIGRATION_LOCK: i64 = 0x0066_6d70_5f6d_6967; // "fmp_mig"

/// The current schema, as a fresh database gets it.
pub const SCHEMA: &str = r#"
CREATE TABLE fmp_schema (
    version integer NOT NULL
);
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE documents (
    id    text PRIMARY KEY,
    kind  text NOT NULL,
    data  bytea NOT NULL
);
CREATE TABLE changes (
    seq     bigint PRIMARY KEY,
    hash    bytea NOT NULL UNIQUE,
    doc_id  text NOT NULL,
    author  text NOT NULL,
    time    bigint NOT NULL,
    op      text NOT NULL,
    bytes   bytea NOT NULL,
    origin  text,
    bundle  bytea
);
CREATE INDEX changes_doc ON changes(doc_id, seq);
CREATE INDEX changes_time ON changes(time, hash);
CREATE INDEX changes_unsealed ON changes(seq) WHERE bundle IS NULL;
CREATE TABLE submissions (
    id                  text PRIMARY KEY,
    form                text NOT NULL,
    form_version        bigint NOT NULL,
    fmp                 text NOT NULL,
    observed_at         text NOT NULL,
    day                 text NOT NULL,
    month               text NOT NULL,
    direction           text NOT NULL,
    transport           text NOT NULL,
    movement_type       text NOT NULL,
    departure_country   text NOT NULL,
    departure_place     text,
    next_country        text NOT NULL,
    next_place          text,
    final_country       text NOT NULL,
    final_place         text,
    adult_male          bigint NOT NULL,
    adult_female        bigint NOT NULL,
    minor_male          bigint NOT NULL,
    minor_female        bigint NOT NULL,
    total               bigint NOT NULL,
    under5              bigint NOT NULL,
    elderly             bigint NOT NULL,
    disability          bigint NOT NULL,
    pregnant            bigint NOT NULL,
    unaccompanied       bigint,
    notes               text NOT NULL,
    review_status       text,
    review_comment      text,
    review_by           text,
    review_at           text,
    deleted             bigint NOT NULL DEFAULT 0,
    conflicts           bigint NOT NULL DEFAULT 0,
    updated_seq         bigint NOT NULL
);
CREATE INDEX submissions_fmp_day ON submissions(fmp, day);
CREATE INDEX submissions_month ON submissions(month, fmp);
CREATE TABLE submission_nationalities (
    submission_id text NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    country       text NOT NULL,
    count         bigint NOT NULL,
    PRIMARY KEY (submission_id, country)
);
CREATE TABLE bundles (
    id      bytea PRIMARY KEY,
    author  text NOT NULL,
    hashes  bytea NOT NULL,
    sig     bytea NOT NULL
);
CREATE TABLE peers (
    peer       text PRIMARY KEY,
    pulled     bigint NOT NULL DEFAULT 0,
    acked      bigint NOT NULL DEFAULT 0,
    synced_at  bigint
);
CREATE TABLE devices (
    device  text PRIMARY KEY,
    cert    bytea NOT NULL
);
CREATE TABLE pending (
    hash    bytea PRIMARY KEY,
    doc_id  text NOT NULL,
    kind    text NOT NULL,
    author  text NOT NULL,
    bundle  bytea NOT NULL,
    origin  text,
    bytes   bytea NOT NULL
);
CREATE INDEX pending_doc ON pending(doc_id);
CREATE TABLE request_nonces (
    device  text NOT NULL,
    nonce   text NOT NULL,
    time    bigint NOT NULL,
    PRIMARY KEY (device, nonce)
);
CREATE INDEX request_nonces_time ON request_nonces(time);
CREATE TABLE hub_codes (
    hash        bytea PRIMARY KEY,
    fmps        text NOT NULL,
    may_enroll  bigint NOT NULL DEFAULT 0,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    used_by     text,
    used_at     bigint
);
CREATE TABLE hub_devices (
    device       text PRIMARY KEY,
    name         text NOT NULL,
    public_key   bytea NOT NULL,
    fmps         text,
    may_enroll   bigint NOT NULL DEFAULT 0,
    enrolled_at  bigint NOT NULL,
    revoked_at   bigint,
    last_sync    bigint
);
CREATE TABLE hub_upstream (
    hub          text PRIMARY KEY,
    url          text NOT NULL,
    name         text NOT NULL,
    public_key   bytea NOT NULL,
    fmps         text,
    tls_cert     bytea,
    joined_at    bigint NOT NULL
);
CREATE TABLE hub_quarantine (
    hash    bytea PRIMARY KEY,
    doc_id  text NOT NULL,
    peer    text NOT NULL,
    reason  text NOT NULL,
    at      bigint NOT NULL
);
"#;

/// The version a database is at: 0 when it holds no store yet.
pub fn version(client: &mut impl GenericClient, url: &str) -> Result<u32, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('fmp_schema') IS NOT NULL", &[])
        .map_err(|e| pg_err(url, e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client
        .query_opt("SELECT version FROM fmp_schema", &[])
        .map_err(|e| pg_err(url, e))?
        .map(|r| r.get(0));
    Ok(v.map_or(0, |v| u32::try_from(v).unwrap_or(0)))
}

/// Brings the database at `url` to `VERSION`: an empty one gets `SCHEMA`,
/// an older one each upgrade in turn, all in one transaction; a newer one
/// is refused with nothing changed.
pub fn migrate(client: &mut postgres::Client, url: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(|e| pg_err(url, e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| pg_err(url, e))?;
    let found = version(&mut tx, url)?;
    if found == VERSION {
        return Ok(());
    }
    if found > VERSION {
        return Err(StoreError::TooNew {
            path: super::redact(url).into(),
            found,
            supported: VERSION,
        });
    }
    if found == 0 {
        tx.batch_execute(SCHEMA).map_err(|e| pg_err(url, e))?;
        tx.execute(
            "INSERT INTO fmp_schema (version) VALUES ($1)",
            &[&(VERSION as i32)],
        )
        .map_err(|e| pg_err(url, e))?;
    } else {
        for from in found..VERSION {
            upgrade(&mut tx, from, url)?;
        }
        tx.execute("UPDATE fmp_schema SET version = $1", &[&(VERSION as i32)])
            .map_err(|e| pg_err(url, e))?;
    }
    tx.commit().map_err(|e| pg_err(url, e))
}

/// One forward step: the schema of version `from` to `from + 1` (one arm
/// per upgrade, as SQLite's; none yet, the backend starts at `FIRST`).
fn upgrade(_tx: &mut postgres::Transaction<'_>, from: u32, url: &str) -> Result<(), StoreError> {
    match from {
        f if f < FIRST => Err(StoreError::UnknownSchema {
            database: super::redact(url),
            found: f,
        }),
        _ => Ok(()),
    }
}
