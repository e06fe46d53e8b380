//! The report's and exports' reads: aggregates and rows over the materialized columns, on one snapshot.

#[allow(unused_imports)]
use super::{Reader, Store, StoreError, Writer};
