//! TEMPORARY stand-in, replaced by the reference-data branch.
use crate::{form::Forms, model::Submission, reference::Registry};
use chrono::{DateTime, Utc};
/// A failing field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path.
    pub field: String,
    /// Message.
    pub message: String,
}
/// Validation errors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid")]
pub struct ValidationError {
    /// All errors.
    pub errors: Vec<FieldError>,
}
/// Validate.
pub fn validate(
    _s: &Submission,
    _r: &Registry,
    _f: &Forms,
    _now: DateTime<Utc>,
) -> Result<(), ValidationError> {
    Ok(())
}
