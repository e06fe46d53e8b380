//! The hub's tables: enrolled devices, enrollment codes, the upstream hub, trust rows and the quarantine.

#[allow(unused_imports)]
use super::{Reader, Store, StoreError, Writer};
