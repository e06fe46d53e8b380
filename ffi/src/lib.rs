//! fmp-ffi: the Kotlin face of fmp, made with uniffi proc-macros (no UDL).
//! A thin layer: each export converts its arguments and delegates to fmp-core.
//!
//! - `store.rs`: `FmpStore`, the device's local store (record, edit, list…).
//! - `records.rs`: the records and enums that cross the FFI, and their conversions.
//! - `reference.rs`: pick lists (countries, movement types, transport, directions).
//! - `error.rs`: `FmpError`, and the one mapping from core errors.
//! - `test_hooks.rs`: test-only exports, behind the `test-hooks` feature.
//!
//! Kotlin bindings are generated from the built library (library mode); see
//! `android-bindings/README.md`. Joining a hub and syncing come with the hub client.

uniffi::setup_scaffolding!();

pub mod error;
pub mod records;
pub mod reference;
pub mod store;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;

pub use error::{FieldError, FmpError};
pub use records::*;
pub use reference::*;
pub use store::FmpStore;
