//! fmp-ffi: the Kotlin face of fmp, made with uniffi proc-macros (no UDL).
//! A thin layer: each export converts its arguments and delegates to fmp-core
//! or to the hub client (`fmp_hub::client`).
//!
//! - `store.rs`: `FmpStore`, the device's local store (record, edit, list…, join, sync).
//! - `hub.rs`: what joining and syncing return, the `SyncProgress` callback, the
//!   `SyncSettings` and `SyncCancel` of `syncWith`, sync status.
//! - `records.rs`: the records and enums that cross the FFI, and their conversions.
//! - `reference.rs`: pick lists (countries, movement types, transport, directions).
//! - `error.rs`: `FmpError`, and the one mapping from core and hub errors.
//! - `test_hooks.rs`: test-only exports, behind the `test-hooks` feature.
//!
//! Kotlin bindings are generated from the built library (library mode); see
//! `android-bindings/README.md`.

uniffi::setup_scaffolding!();

pub mod error;
pub mod hub;
pub mod records;
pub mod reference;
pub mod store;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;

pub use error::{FieldError, FmpError};
pub use hub::*;
pub use records::*;
pub use reference::*;
pub use store::FmpStore;
