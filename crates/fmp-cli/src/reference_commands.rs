//! `fmp registry` and `fmp form`: HQ edits the reference data (the FMP
//! registry, questionnaire versions); it reaches every replica by sync.

use crate::output::out;
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use fmp_core::store::Store;
use fmp_core::{Form, Registry};

use crate::commands::CliError;

/// What `fmp registry` does.
#[derive(Debug, Subcommand)]
pub enum RegistryAction {
    /// Replace the registry with a JSON file (`{"fmps": [...]}`, as `show --json`
    /// prints it); HQ only. Synced to every hub and phone.
    Set {
        /// The registry JSON file.
        file: std::path::PathBuf,
    },
    /// Print the registry in force (the latest synced, else the built-in one).
    Show {
        /// Print JSON (the form `set` reads) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// What `fmp form` does.
#[derive(Debug, Subcommand)]
pub enum FormAction {
    /// Publish a form version from a JSON file; HQ only. Synced everywhere.
    Add {
        /// The form JSON file.
        file: std::path::PathBuf,
    },
    /// List the forms known here, by id and version.
    List,
}

fn read(file: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(file).map_err(|source| CliError::Io {
        what: format!("reading {}", file.display()),
        source,
    })
}

/// `fmp registry`.
pub fn registry(store: &Path, action: RegistryAction) -> Result<ExitCode, CliError> {
    let store = Store::open(store)?;
    match action {
        RegistryAction::Set { file } => {
            let reg = Registry::from_json(&read(&file)?)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            let changed = store.set_registry(&reg)?;
            out!(
                "registry: {} FMPs{}",
                reg.fmps.len(),
                if changed {
                    "; it reaches hubs and phones at their next sync"
                } else {
                    " (unchanged)"
                }
            )?;
        }
        RegistryAction::Show { json } => {
            let reg = store.registry();
            if json {
                out!("{}", reg.to_json())?;
            } else {
                for f in &reg.fmps {
                    out!(
                        "{:<8} {:<14} {:<12} {} {:<10} since {}{}",
                        f.code,
                        f.name,
                        f.admin1,
                        f.country,
                        f.kind.as_str(),
                        f.active_since,
                        f.active_until
                            .map(|d| format!(" until {d}"))
                            .unwrap_or_default()
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `fmp form`.
pub fn form(store: &Path, action: FormAction) -> Result<ExitCode, CliError> {
    let store = Store::open(store)?;
    match action {
        FormAction::Add { file } => {
            let form = Form::from_json(&read(&file)?)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            let changed = store.add_form(&form)?;
            out!(
                "form {} version {}{}",
                form.id,
                form.version,
                if changed {
                    ": published; it reaches hubs and phones at their next sync"
                } else {
                    " is already published (unchanged)"
                }
            )?;
        }
        FormAction::List => {
            for f in store.forms().iter() {
                out!(
                    "{} v{}: {} fields, {}",
                    f.id,
                    f.version,
                    f.fields.len(),
                    f.title_en
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
