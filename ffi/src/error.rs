//! The one public error of the FFI, and the one place core errors map to it.
//!
//! Kotlin sees `FmpException` with one subclass per variant; only what the
//! app can act on gets its own variant (STYLE §3). A Rust panic is not an
//! `FmpException`: uniffi turns it into `InternalException`.

use fmp_core::ParseError;
use fmp_core::store::StoreError;
use fmp_core::validate::ValidationError;
use fmp_hub::HubError;

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
    /// The network failed (hub unreachable, timed out, transfer cut, hub busy);
    /// retrying later may work. Raised by `join` and `sync`.
    #[error("network: {reason}")]
    Network {
        /// What failed.
        reason: String,
    },
    /// The hub refused this device or its code (code unknown, used or expired;
    /// device unknown or revoked; a bad signature), or the store has not
    /// joined a hub: ask for a new enrollment code and `join`. Raised by
    /// `join` and `sync`.
    #[error("not authorized: {reason}")]
    Auth {
        /// The hub's reason.
        reason: String,
    },
    /// The sync was stopped with `SyncCancel.cancel()`; what was received
    /// before is kept and the next sync resumes. Raised by `syncWith`.
    #[error("{reason}")]
    Cancelled {
        /// What happened, in words.
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
        FmpError::Validation {
            fields: e
                .problems()
                .map(|(field, message)| FieldError {
                    field: field.to_string(),
                    message: message.to_string(),
                })
                .collect(),
        }
    }
}

impl From<StoreError> for FmpError {
    fn from(e: StoreError) -> FmpError {
        match e {
            StoreError::Invalid(v) => v.into(),
            StoreError::Parse(p) => p.into(),
            StoreError::NotFound(id) => FmpError::NotFound { id },
            // After `join`: the app marks the FMP field, like any refused field.
            e @ StoreError::OutOfScope { .. } => FmpError::field("fmp", e.to_string()),
            other => FmpError::other(other.to_string()),
        }
    }
}

impl From<HubError> for FmpError {
    fn from(e: HubError) -> FmpError {
        match e {
            HubError::Store(s) => (*s).into(),
            HubError::Network { .. } => FmpError::Network {
                reason: e.to_string(),
            },
            // Transient on the hub's side: timeouts, rate limits, overload.
            HubError::Refused { status, .. } if status == 408 || status == 429 || status >= 500 => {
                FmpError::Network {
                    reason: e.to_string(),
                }
            }
            HubError::Refused {
                status: 401 | 403, ..
            }
            | HubError::NotJoined
            // Not an outage: the app says so and does not retry.
            | HubError::CertificateChanged { .. } => FmpError::Auth {
                reason: e.to_string(),
            },
            HubError::Cancelled => FmpError::Cancelled {
                reason: e.to_string(),
            },
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

    fn refused(status: u16, error: &str) -> HubError {
        HubError::Refused {
            status,
            error: error.into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn hub_errors_map_to_what_the_app_can_do() {
        let net = |e: HubError| matches!(FmpError::from(e), FmpError::Network { .. });
        let auth = |e: HubError| matches!(FmpError::from(e), FmpError::Auth { .. });
        let other = |e: HubError| matches!(FmpError::from(e), FmpError::Other { .. });
        assert!(net(HubError::Network {
            url: "http://x".into(),
            detail: "connection refused".into()
        }));
        for (status, code) in [(408, "timeout"), (429, "rate_limited"), (503, "timeout")] {
            assert!(net(refused(status, code)), "{code}");
        }
        for code in [
            "unknown_code",
            "code_used",
            "unknown_device",
            "revoked_device",
        ] {
            assert!(auth(refused(403, code)), "{code}");
        }
        assert!(auth(refused(401, "bad_signature")));
        assert!(auth(HubError::NotJoined));
        assert!(auth(HubError::CertificateChanged {
            url: "https://hub:8443".into(),
            pinned: "AA".into(),
            presented: "BB".into(),
        }));
        assert!(other(refused(400, "bad_message")));
        assert!(other(HubError::Usage("not a hub address".into())));
        let FmpError::Cancelled { reason } = FmpError::from(HubError::Cancelled) else {
            panic!("a cancelled sync is not Cancelled");
        };
        assert!(
            reason.contains("cancelled") && reason.contains("resumes"),
            "{reason}"
        );
        assert!(matches!(
            FmpError::from(HubError::Store(Box::new(StoreError::NotFound("x".into())))),
            FmpError::NotFound { .. }
        ));
    }
}
