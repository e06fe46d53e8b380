//! The change log as sync sees it: rows after a cursor, by hash, bundles, per-peer cursors, certificates and pending (held) changes.

#[allow(unused_imports)]
use super::{Reader, Store, StoreError, Writer};
