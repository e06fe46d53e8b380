//! The PostgreSQL backend of the store, for HQ at scale (issue "HQ on
//! PostgreSQL"; behind the `postgres` feature). Being built in steps; what
//! stands:
//!
//! - `schema.rs`: the same tables as SQLite's schema, in PostgreSQL's
//!   types, versioned in the same numbered scheme (table `fmp_schema`),
//!   migrated forward on open, a newer database refused.
//! - `log.rs`: the change log's positions, which follow commit visibility
//!   so that several writers (connections, `fmp serve` processes) may
//!   commit at once and "everything after position c" still never skips a
//!   change (ADR 0005), with the append and the read after a cursor.
//!
//! Not yet: the rest of `ops.rs`'s operations and `Store` over this
//! backend (`fmp init --database`).

pub mod log;
pub mod schema;

use super::StoreError;

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
