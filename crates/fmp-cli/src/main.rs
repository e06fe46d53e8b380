//! `fmp`: the command-line face of fmp — record, edit, review and list
//! Flow Monitoring Point submissions in a local store, and run the demo.
//!
//! - `main.rs`: argument parsing (clap) and error printing.
//! - `commands.rs`: one function per subcommand.
//! - `report_commands.rs`: `fmp report` and `fmp export`.
//! - `demo.rs`: `fmp demo`.
//! - `reference_commands.rs`: `fmp registry` and `fmp form` (HQ's reference data).

mod addresses;
mod commands;
mod demo;
mod hub_commands;
mod output;
mod reference_commands;
mod report_commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// fmp — offline-first data collection for migration Flow Monitoring Points.
///
/// Every command works on a local store (a directory) with no network. A
/// store is created once with `fmp init`; submissions are canonical JSON
/// objects, one per observed group (see `fmp record --help`).
#[derive(Debug, Parser)]
#[command(name = "fmp", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output formats of `fmp list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON array of canonical submissions, each with `id` and `review`.
    Json,
    /// One canonical submission per line.
    Jsonl,
}

/// Review statuses accepted on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Checked and accepted.
    Approved,
    /// Refused: left out of reports.
    Rejected,
    /// Needs a correction.
    #[value(name = "has_issues")]
    HasIssues,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new store with a fresh device identity (UUID and Ed25519 key).
    Init {
        /// Directory of the store (created if missing).
        #[arg(long)]
        store: PathBuf,
        /// Human name of this device, e.g. `gogui-phone-1`.
        #[arg(long)]
        name: Option<String>,
        /// Keep the data in this PostgreSQL database instead of SQLite
        /// inside the store (HQ at scale), e.g.
        /// `postgres://fmp@127.0.0.1:5432/fmp_hq`: an empty database. The
        /// store directory keeps the device key and the URL without its
        /// password; give a password in `PGPASSWORD` (never in the URL).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Rename this device, before it joined a hub (when a hub refused the
    /// name at `fmp join`: taken there, or not a plain name).
    Rename {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// The new name, e.g. `gogui-phone-2`.
        name: String,
    },
    /// Record submissions: one JSON object, or JSON lines (each line stored or refused on its own).
    ///
    /// Prints the id of each stored submission. Exits non-zero if any line was
    /// refused, naming the line and every failing field.
    ///
    /// Each object has these fields (see docs/submission-format.md):
    ///   form             "dtm-fmp-flow"            form_version   1
    ///   fmp              FMP code, e.g. ML-HER (`fmp registry show` lists them)
    ///   observed_at      RFC 3339, e.g. 2020-06-14T09:30:00Z (at most a day ahead)
    ///   direction        incoming | outgoing
    ///   transport        bus | truck | car | motorbike | tricycle | foot | other
    ///   departure, next_destination, final_destination
    ///                    {"country": ISO alpha-3, "place": optional text}
    ///   movement_type    economic_long_term | seasonal | short_term_local |
    ///                    tourism | forced | other
    ///   people           {"adult_male", "adult_female", "minor_male", "minor_female"}
    ///   vulnerable       {"under5", "elderly", "disability", "pregnant",
    ///                    optional "unaccompanied_children"}
    ///   nationalities    {"BFA": 31, "MLI": 2}: sums to the people's total
    ///   notes            optional text;  id  optional UUID (given on record)
    ///
    /// Example: examples/submission.json in the repository.
    #[command(verbatim_doc_comment)]
    Record {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// File to read, or `-` for standard input (the default).
        file: Option<PathBuf>,
    },
    /// Change fields of a submission with a JSON merge patch, e.g. '{"notes":"bus from Kayes"}'.
    ///
    /// The result is validated as a whole; if it is refused nothing changes.
    Edit {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Submission id.
        id: String,
        /// JSON object of the fields to change (`null` removes an optional field).
        patch: String,
    },
    /// Delete a submission (a tombstone is kept so the deletion syncs).
    Delete {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Submission id.
        id: String,
    },
    /// Review a submission as a supervisor.
    Review {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Submission id.
        id: String,
        /// The verdict.
        #[arg(long, value_enum)]
        status: StatusArg,
        /// A comment for the enumerator.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Show one submission as canonical JSON, with its review and any conflicts.
    Show {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Submission id.
        id: String,
    },
    /// List submissions, optionally filtered.
    List {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Only this FMP code, e.g. ML-HER.
        #[arg(long)]
        fmp: Option<String>,
        /// Observed on or after this day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Observed on or before this day (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        /// Only incoming or outgoing.
        #[arg(long)]
        direction: Option<String>,
        /// Only this review status (approved, rejected, has_issues, or none for not reviewed).
        #[arg(long)]
        review: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// The changes of one submission: who changed it, when, and how.
    History {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Submission id.
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// HQ's monthly FMP report (all submissions but rejected ones by default).
    Report {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Only the FMPs of this country (ISO 3166-1 alpha-3).
        #[arg(long)]
        country: Option<String>,
        /// Count only approved submissions.
        #[arg(long)]
        approved_only: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: report_commands::ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export submissions, one row each with every field.
    ///
    /// What the report counts by default: every submission but rejected
    /// (and deleted) ones; `--include-rejected` adds the rejected ones.
    Export {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: report_commands::ExportFormat,
        /// Observed on or after this day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Observed on or before this day (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        /// Only this FMP code.
        #[arg(long)]
        fmp: Option<String>,
        /// Leave rejected submissions out: the default, as the report counts
        /// (kept for scripts written when rejected ones were exported).
        #[arg(long, conflicts_with = "include_rejected")]
        exclude_rejected: bool,
        /// Export rejected submissions too (with their review status).
        #[arg(long)]
        include_rejected: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The whole chain on loopback, into ./fmp-demo: nine phones record May and June 2020
    /// offline for Mali's nine FMPs, sync to two regional hubs, which forward to HQ;
    /// HQ writes the June report (JSON, Markdown, HTML).
    Demo {
        /// Where to build the demo (replaced if it exists).
        #[arg(long, default_value = "fmp-demo")]
        dir: PathBuf,
    },
    /// The FMP registry: `show` it, or (HQ) `set` it from a JSON file; it reaches devices by sync.
    Registry {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        #[command(subcommand)]
        action: reference_commands::RegistryAction,
    },
    /// Questionnaire versions: `list` them, or (HQ) `add` one from a JSON file.
    Form {
        /// Directory of the store.
        #[arg(long)]
        store: PathBuf,
        #[command(subcommand)]
        action: reference_commands::FormAction,
    },
    #[command(flatten)]
    Hub(hub_commands::HubCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init {
            store,
            name,
            database,
        } => commands::init(&store, name.as_deref(), database.as_deref()),
        Command::Rename { store, name } => commands::rename(&store, &name),
        Command::Record { store, file } => commands::record(&store, file.as_deref()),
        Command::Edit { store, id, patch } => commands::edit(&store, &id, &patch),
        Command::Delete { store, id } => commands::delete(&store, &id),
        Command::Review {
            store,
            id,
            status,
            comment,
        } => commands::review(&store, &id, status, &comment),
        Command::Show { store, id } => commands::show(&store, &id),
        Command::List {
            store,
            fmp,
            from,
            to,
            direction,
            review,
            format,
        } => commands::list(
            &store,
            commands::ListArgs {
                fmp,
                from,
                to,
                direction,
                review,
                format,
            },
        ),
        Command::History { store, id, json } => commands::history(&store, &id, json),
        Command::Report {
            store,
            month,
            country,
            approved_only,
            format,
            out,
        } => report_commands::report(
            &store,
            &month,
            country,
            approved_only,
            format,
            out.as_deref(),
        ),
        Command::Export {
            store,
            format,
            from,
            to,
            fmp,
            exclude_rejected: _,
            include_rejected,
            out,
        } => report_commands::export(
            &store,
            report_commands::ExportArgs {
                format,
                from,
                to,
                fmp,
                include_rejected,
                out,
            },
        ),
        Command::Demo { dir } => demo::run(&dir),
        Command::Registry { store, action } => reference_commands::registry(&store, action),
        Command::Form { store, action } => reference_commands::form(&store, action),
        Command::Hub(cmd) => Ok(hub_commands::run(cmd)),
    };
    match result {
        Ok(code) => code,
        // The reader of standard output went away (`fmp list | head`).
        Err(commands::CliError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
