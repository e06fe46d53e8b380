//! `fmp demo`: a realistic month of submissions for Mali's nine FMPs.

use std::path::Path;
use std::process::ExitCode;

use crate::commands::CliError;

/// Runs the demo into `dir`.
pub fn run(_dir: &Path) -> Result<ExitCode, CliError> {
    Err(CliError::Usage("demo: not built yet".into()))
}
