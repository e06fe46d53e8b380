//! The error type of fmp-report.

/// What can go wrong while computing, rendering or exporting a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The month is not of the form `YYYY-MM`.
    #[error("invalid month `{0}`: expected YYYY-MM")]
    InvalidMonth(String),
    /// A read of the store failed.
    #[error("store query failed: {0}")]
    Store(#[from] fmp_core::store::StoreError),
    /// A stored value does not parse back into the model.
    #[error("stored submission {id} is malformed: {message}")]
    Malformed {
        /// Submission id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// Writing the output failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// JSON serialization failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The XLSX writer failed.
    #[error("XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}
