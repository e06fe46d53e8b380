//! The SQLite store: documents, the change log, materialized columns.

pub mod materialize;
pub mod schema;
