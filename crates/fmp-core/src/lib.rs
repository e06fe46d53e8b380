//! fmp-core: the questionnaire model, its validation, the reference data,
//! the automerge documents that hold each record, and the SQLite store.
//!
//! - `model.rs`: the canonical submission JSON as Rust types.
//! - `shape.rs`: the JSON's structure checked first, every misplaced field named at once.
//! - `reference.rs`: the FMP registry and the code lists (countries, movement types, transport).
//! - `form.rs`: versioned questionnaire definitions (`dtm-fmp-flow` v1).
//! - `validate.rs`: the validation rules, reporting every failing field at once.
//! - `doc.rs`: a submission as an automerge document, and back.
//! - `refdoc.rs`: the registry and forms as automerge documents, synced like records.
//! - `role.rs`: what a device is (enumerator, supervisor, HQ) and what it may do.
//! - `store/`: the SQLite store (schema and migrations, identity, operations).

pub mod doc;
pub mod form;
pub mod model;
pub mod names;
pub mod refdoc;
pub mod reference;
pub mod role;
pub mod shape;
pub mod store;
pub mod validate;

pub use form::{FieldDef, FieldKind, Form, Forms, example_submission};
pub use model::*;
pub use reference::{Country, Fmp, FmpKind, Lang, Registry, countries, country};
pub use role::Role;
pub use validate::{FieldError, ValidationError, validate};
