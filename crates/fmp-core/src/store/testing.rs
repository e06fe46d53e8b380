//! For tests and benches: inspect a store's tables and break a store on purpose, through the store's own code.

#[allow(unused_imports)]
use super::{Reader, Store, StoreError, Writer};
