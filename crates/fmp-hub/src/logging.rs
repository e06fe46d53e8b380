//! The hub's log (the `tracing` crate): one line per request (target
//! `fmp_hub::request`, see [`crate::server::log_request`]) and the
//! server's own events (`fmp_hub::server`: listening, connections refused
//! as busy, accept failures), as text or JSON lines, to stderr or a file.

use std::path::{Path, PathBuf};

use crate::error::HubError;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (fields flattened beside `level`,
    /// `target`, `timestamp` and `message`).
    Json,
}

impl LogFormat {
    /// Its name: `text` or `json`.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Installs the process-wide logger (INFO and above): to `file` (appended
/// to, created if missing) or to stderr. Returns where it logs, e.g.
/// `stderr (text)`. Fails if the file cannot be opened or a logger is set.
pub fn init(format: LogFormat, file: Option<&Path>) -> Result<String, HubError> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_target(true);
    let (r, place) = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| HubError::Io {
                    path: PathBuf::from(path),
                    source,
                })?;
            let w = std::sync::Arc::new(f);
            let r = match format {
                LogFormat::Text => builder.with_writer(w).try_init(),
                LogFormat::Json => builder.json().flatten_event(true).with_writer(w).try_init(),
            };
            (r, path.display().to_string())
        }
        None => {
            let r = match format {
                LogFormat::Text => builder.with_writer(std::io::stderr).try_init(),
                LogFormat::Json => builder
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    .try_init(),
            };
            (r, "stderr".to_string())
        }
    };
    r.map_err(|e| HubError::Usage(format!("cannot set up the log: {e}")))?;
    Ok(format!("{place} ({})", format.name()))
}
