//! The one public error of the FFI, and the one place core errors map to it.
//!
//! Kotlin sees `FmpException` with one subclass per variant; only what the
//! app can act on gets its own variant (STYLE §3). A Rust panic is not an
//! `FmpException`: uniffi turns it into `InternalException`.

use fmp_core::ParseError;
use fmp_core::store::StoreError;
use fmp_core::validate::ValidationError;

/// One failing field of a refused submission, for the app to mark on screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldError {
    /// Field path in the canonical JSON, e.g. `people`, `vulnerable.under5`, `nationalities.XXX`.
    pub field: String,
    /// A sentence an enumerator understands.
    pub message: String,
}

/// Errors returned to Kotlin (`FmpException.Validation`, `.NotFound`, …).
///
/// Text fields are named `reason`, not `message`: Kotlin exceptions already
/// have a `message` (uniffi fills it with `reason=…`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FmpError {
    /// The submission was refused; every failing field is listed, nothing was stored.
    #[error("invalid submission: {}", describe(fields))]
    Validation {
        /// The failing fields, in the order of the form.
        fields: Vec<FieldError>,
    },
    /// No submission with this id in the store.
    #[error("no submission with id {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The network failed (hub unreachable, transfer cut); retrying later may work.
    /// Raised by hub operations (join, sync), which come with the hub client.
    #[error("network: {reason}")]
    Network {
        /// What failed.
        reason: String,
    },
    /// The hub refused this device (unknown, revoked, or writing outside its FMPs).
    /// Raised by hub operations (join, sync), which come with the hub client.
    #[error("not authorized: {reason}")]
    Auth {
        /// The hub's reason.
        reason: String,
    },
    /// Anything else (storage, a deleted submission, a malformed id or patch).
    #[error("{reason}")]
    Other {
        /// What went wrong, in words.
        reason: String,
    },
}

fn describe(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl FmpError {
    /// A refusal naming one field.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> FmpError {
        FmpError::Validation {
            fields: vec![FieldError {
                field: field.to_string(),
                message: message.into(),
            }],
        }
    }

    /// Any other failure.
    pub(crate) fn other(message: impl Into<String>) -> FmpError {
        FmpError::Other {
            reason: message.into(),
        }
    }
}

impl From<ValidationError> for FmpError {
    fn from(e: ValidationError) -> FmpError {
        FmpError::Validation {
            fields: e
                .errors
                .into_iter()
                .map(|f| FieldError {
                    field: f.field,
                    message: f.message,
                })
                .collect(),
        }
    }
}

impl From<ParseError> for FmpError {
    fn from(e: ParseError) -> FmpError {
        FmpError::field(&e.path, e.message)
    }
}

impl From<StoreError> for FmpError {
    fn from(e: StoreError) -> FmpError {
        match e {
            StoreError::Invalid(v) => v.into(),
            StoreError::Parse(p) => p.into(),
            StoreError::NotFound(id) => FmpError::NotFound { id },
            other => FmpError::other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_keeps_every_field() {
        let e = ValidationError {
            errors: vec![
                fmp_core::validate::FieldError {
                    field: "people".into(),
                    message: "a".into(),
                },
                fmp_core::validate::FieldError {
                    field: "nationalities".into(),
                    message: "b".into(),
                },
            ],
        };
        let FmpError::Validation { fields } = FmpError::from(StoreError::Invalid(e)) else {
            panic!("not a validation error");
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["people", "nationalities"]);
    }

    #[test]
    fn not_found_keeps_the_id() {
        assert_eq!(
            FmpError::from(StoreError::NotFound("x".into())),
            FmpError::NotFound { id: "x".into() }
        );
    }
}
