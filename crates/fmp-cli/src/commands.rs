//! One function per `fmp` subcommand; each returns the exit code or a CliError.

use crate::output::out;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use chrono::NaiveDate;
use fmp_core::model::{Direction, ReviewStatus, StoredSubmission, Submission};
use fmp_core::store::ops::HubReads;
use fmp_core::store::{Filter, Store, StoreError};
use uuid::Uuid;

use crate::{ListFormat, StatusArg};

/// Largest accepted submission (one JSON object or one line), in bytes.
pub const MAX_SUBMISSION_BYTES: usize = 1 << 20;

/// Errors the CLI reports: one readable paragraph each.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the store.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Reading input or writing output.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command-line value is not usable.
    #[error("{0}")]
    Usage(String),
}

impl From<crate::output::StdoutError> for CliError {
    fn from(e: crate::output::StdoutError) -> CliError {
        CliError::Io {
            what: "writing to standard output".into(),
            source: e.0,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

fn parse_id(id: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(id).map_err(|_| {
        CliError::Usage(format!(
            "`{id}` is not a submission id (a UUID such as 0190a5c2-7c1e-7b3a-9f00-3c2d1e0f4a55)"
        ))
    })
}

/// Refuses a `--from` later than `--to`: such a range holds no day.
pub(crate) fn check_range(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<(), CliError> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(CliError::Usage(format!(
            "--from {f} is later than --to {t}: no day is in that range; give the earlier day as --from"
        ))),
        _ => Ok(()),
    }
}

fn parse_day(flag: &str, s: &str) -> Result<NaiveDate, CliError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        CliError::Usage(format!(
            "--{flag} `{s}` is not a date; write it as YYYY-MM-DD, e.g. 2020-06-01"
        ))
    })
}

/// `fmp init`.
pub fn init(dir: &Path, name: Option<&str>, database: Option<&str>) -> Result<ExitCode, CliError> {
    let default_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fmp".into());
    let name = name.unwrap_or(&default_name);
    let store = match database {
        Some(url) => Store::init_postgres(dir, name, url)?,
        None => Store::init(dir, name)?,
    };
    let id = store.identity();
    out!(
        "created store {} for device {} ({})",
        dir.display(),
        fmp_core::names::printable(&id.name),
        id.device_id
    )?;
    if let Some(url) = Store::postgres_url(dir)? {
        out!("data in PostgreSQL: {url}")?;
    }
    out!("public key {}", hex_encode(id.public_key()))?;
    Ok(ExitCode::SUCCESS)
}

/// `fmp rename`: a new device name, before the store joined a hub.
pub fn rename(dir: &Path, name: &str) -> Result<ExitCode, CliError> {
    Store::rename(dir, name)?;
    out!("renamed the device of {} to {name}", dir.display())?;
    Ok(ExitCode::SUCCESS)
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `fmp record`: one JSON object (possibly over several lines), or JSON
/// lines, each stored as soon as it is read and its id printed once committed.
pub fn record(dir: &Path, file: Option<&Path>) -> Result<ExitCode, CliError> {
    let store = Store::open(dir)?;
    let input: Box<dyn BufRead> = match file {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(io(format!("reading {}", p.display())))?,
        )),
    };
    let mut recorder = Recorder {
        store: &store,
        refused: 0,
        stored: 0,
        closed_after: None,
    };
    let mut lines = input.split(b'\n');
    let mut first: Option<(usize, Vec<u8>)> = None;
    let mut n = 0usize;
    // Find the first non-blank line.
    for line in lines.by_ref() {
        n += 1;
        let mut line = line.map_err(io("reading input"))?;
        // A UTF-8 byte order mark (Notepad writes one) is not part of the JSON.
        if n == 1 && line.starts_with(UTF8_BOM) {
            line.drain(..UTF8_BOM.len());
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            first = Some((n, line));
            break;
        }
    }
    let Some((first_n, first_line)) = first else {
        return Err(CliError::Usage(
            "no submission in the input: give one JSON object, or one per line".into(),
        ));
    };
    if first_line.len() > MAX_SUBMISSION_BYTES
        || serde_json::from_slice::<serde_json::Value>(&first_line).is_ok()
    {
        // JSON lines: each line on its own, as it arrives.
        recorder.one(&format!("line {first_n}"), &first_line)?;
        for line in lines {
            if recorder.closed_after.is_some() {
                break;
            }
            n += 1;
            let line = line.map_err(io("reading input"))?;
            if !line.iter().all(u8::is_ascii_whitespace) {
                recorder.one(&format!("line {n}"), &line)?;
            }
        }
    } else {
        // One object over several lines, or lines of which the first is broken.
        let mut all = first_line.clone();
        let mut rest: Vec<(usize, Vec<u8>)> = Vec::new();
        for line in lines {
            n += 1;
            let line = line.map_err(io("reading input"))?;
            all.push(b'\n');
            all.extend_from_slice(&line);
            if all.len() > MAX_SUBMISSION_BYTES * 4 {
                return Err(CliError::Usage(format!(
                    "the input is neither JSON lines nor one JSON object of at most {MAX_SUBMISSION_BYTES} bytes"
                )));
            }
            rest.push((n, line));
        }
        let whole = serde_json::from_slice::<serde_json::Value>(&all);
        if all.len() <= MAX_SUBMISSION_BYTES && whole.is_ok() {
            recorder.one("submission", &all)?;
        } else if let Err(e) = whole
            && first_line.trim_ascii_start().starts_with(b"{")
            && !rest.iter().any(|(_, l)| is_json_object(l))
        {
            // One object over several lines (pretty-printed) with a syntax
            // error: one error, where the JSON breaks in the file.
            recorder.refused_whole(&broken_json(&e, first_n));
        } else {
            recorder.one(&format!("line {first_n}"), &first_line)?;
            for (n, line) in rest {
                if recorder.closed_after.is_some() {
                    break;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    recorder.one(&format!("line {n}"), &line)?;
                }
            }
        }
    }
    if let Some(what) = &recorder.closed_after {
        eprintln!(
            "standard output was closed (broken pipe) after {what} was stored: {} submission(s) stored, \
             {} refused; nothing after {what} was read: record the input after it again",
            recorder.stored, recorder.refused
        );
        return Ok(ExitCode::FAILURE);
    }
    if recorder.refused > 0 {
        eprintln!(
            "error: {} submission(s) refused, {} stored; nothing of the refused ones was stored",
            recorder.refused, recorder.stored
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether a line holds one JSON object on its own (a JSON lines record).
fn is_json_object(line: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(line),
        Ok(serde_json::Value::Object(_))
    )
}

/// A syntax error in a document that starts at line `first_n` of the
/// input, with its line and column in the input.
fn broken_json(e: &serde_json::Error, first_n: usize) -> String {
    let msg = e.to_string();
    let what = msg.rfind(" at line ").map_or(msg.as_str(), |i| &msg[..i]);
    let line = e.line() + first_n.saturating_sub(1);
    format!(
        "malformed JSON at line {line} column {}: {what}; the input is one JSON object over \
         several lines (no line of it is a JSON object on its own), and it breaks there",
        e.column()
    )
}

struct Recorder<'a> {
    store: &'a Store,
    refused: usize,
    stored: usize,
    /// Standard output was closed (`| head`) once this line was stored:
    /// the run stops there, and says so.
    closed_after: Option<String>,
}

impl Recorder<'_> {
    /// Refuses the whole input as one submission that is not JSON.
    fn refused_whole(&mut self, why: &str) {
        self.refused += 1;
        eprintln!("submission refused: {why}");
    }

    /// Stores one submission, printing its id once committed, or reports why it was refused.
    fn one(&mut self, what: &str, bytes: &[u8]) -> Result<(), CliError> {
        let result = if bytes.len() > MAX_SUBMISSION_BYTES {
            Err(CliError::Usage(format!(
                "{} bytes, more than the {MAX_SUBMISSION_BYTES} bytes one submission may take",
                bytes.len()
            )))
        } else {
            match std::str::from_utf8(bytes) {
                Err(e) => Err(CliError::Usage(format!("not UTF-8 text ({e})"))),
                Ok(text) => Submission::from_json(text)
                    .map_err(StoreError::from)
                    .and_then(|s| self.store.record(s))
                    .map_err(CliError::from),
            }
        };
        match result {
            Ok(id) => {
                self.stored += 1;
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                match writeln!(out, "{id}").and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // The reader went away (`fmp record … | head`): what is
                    // stored stays stored; stop reading and say where.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        self.closed_after = Some(what.to_string());
                    }
                    Err(e) => return Err(io("writing output")(e)),
                }
            }
            // A store that cannot be written at all stops the whole run.
            Err(CliError::Store(
                e @ (StoreError::ReadOnly { .. }
                | StoreError::Io { .. }
                | StoreError::Sqlite { .. }
                | StoreError::Postgres { .. }),
            )) => {
                return Err(CliError::Store(e));
            }
            Err(e) => {
                self.refused += 1;
                eprintln!("{what} refused: {}", one_paragraph(&e.to_string()));
            }
        }
        Ok(())
    }
}

fn one_paragraph(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `fmp edit`.
pub fn edit(dir: &Path, id: &str, patch_text: &str) -> Result<ExitCode, CliError> {
    let id = parse_id(id)?;
    let patch: serde_json::Value = serde_json::from_str(patch_text).map_err(|e| {
        CliError::Usage(format!(
            "the patch is not JSON ({e}); give an object such as '{{\"notes\":\"...\"}}'"
        ))
    })?;
    // A value keeps the last of a duplicated key; a patch is strict too.
    let dups = fmp_core::shape::duplicate_keys(patch_text);
    if !dups.is_empty() {
        let named: Vec<String> = dups.iter().map(|(p, m)| format!("{p}: {m}")).collect();
        return Err(CliError::Usage(format!(
            "the patch gives a key twice: {}; nothing was changed",
            named.join("; ")
        )));
    }
    let store = Store::open(dir)?;
    let s = store.edit(id, &patch)?;
    print_json(&s)?;
    Ok(ExitCode::SUCCESS)
}

/// `fmp delete`.
pub fn delete(dir: &Path, id: &str) -> Result<ExitCode, CliError> {
    let id = parse_id(id)?;
    Store::open(dir)?.delete(id)?;
    out!("deleted {id}")?;
    Ok(ExitCode::SUCCESS)
}

/// `fmp review`.
pub fn review(
    dir: &Path,
    id: &str,
    status: StatusArg,
    comment: &str,
) -> Result<ExitCode, CliError> {
    let id = parse_id(id)?;
    let status = match status {
        StatusArg::Approved => ReviewStatus::Approved,
        StatusArg::Rejected => ReviewStatus::Rejected,
        StatusArg::HasIssues => ReviewStatus::HasIssues,
    };
    let s = Store::open(dir)?.review(id, status, comment)?;
    print_json(&s)?;
    Ok(ExitCode::SUCCESS)
}

/// `fmp show`.
pub fn show(dir: &Path, id: &str) -> Result<ExitCode, CliError> {
    let id = parse_id(id)?;
    let store = Store::open(dir)?;
    let s = store.get(id)?;
    // A merge of valid concurrent edits that breaks a rule: shown with the
    // failing rules, one line each, under `invalid`.
    let invalid = store
        .check_received(&s)
        .err()
        .map(|e| e.errors.iter().map(|f| f.to_string()).collect());
    // The reviewer's name beside its id, where this store knows it.
    let review = match &s.review {
        Some(r) => Some(ShownReview {
            review: r,
            by_name: store.snapshot(|q| q.device_name(&r.by))?,
        }),
        None => None,
    };
    // Edited after its review: the reviewer has not seen the edit yet.
    let edited_since_review = review.is_some() && {
        let h = store.history(id)?;
        let last = |op: &str| h.iter().filter(|e| e.op == op).map(|e| e.seq).max();
        last("edit") > last("review")
    };
    print_json(&Shown {
        submission: &s.submission,
        review,
        edited_since_review,
        deleted: s.deleted,
        conflicts: &s.conflicts,
        invalid,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `fmp show`'s JSON: the stored submission in its own order, the
/// reviewer's name beside its id, and the rules a merged record breaks.
#[derive(serde::Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    submission: &'a Submission,
    review: Option<ShownReview<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    edited_since_review: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    conflicts: &'a [fmp_core::model::Conflict],
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<Vec<String>>,
}

/// A review with its reviewer's name, where known.
#[derive(serde::Serialize)]
struct ShownReview<'a> {
    #[serde(flatten)]
    review: &'a fmp_core::model::Review,
    #[serde(skip_serializing_if = "Option::is_none")]
    by_name: Option<String>,
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
    out!("{text}")?;
    Ok(())
}

/// Arguments of `fmp list`.
#[derive(Debug)]
pub struct ListArgs {
    /// FMP code.
    pub fmp: Option<String>,
    /// First day.
    pub from: Option<String>,
    /// Last day.
    pub to: Option<String>,
    /// Direction.
    pub direction: Option<String>,
    /// Review status.
    pub review: Option<String>,
    /// Output format.
    pub format: ListFormat,
}

/// `fmp list`.
pub fn list(dir: &Path, a: ListArgs) -> Result<ExitCode, CliError> {
    let store = Store::open(dir)?;
    let mut filter = Filter {
        fmp: a.fmp.clone(),
        ..Filter::default()
    };
    if let Some(code) = &a.fmp
        && store.registry().get(code).is_none()
    {
        return Err(CliError::Usage(format!(
            "--fmp `{code}` is not a known FMP code (e.g. ML-HER)"
        )));
    }
    filter.from = a
        .from
        .as_deref()
        .map(|s| parse_day("from", s))
        .transpose()?;
    filter.to = a.to.as_deref().map(|s| parse_day("to", s)).transpose()?;
    check_range(filter.from, filter.to)?;
    filter.direction = a
        .direction
        .as_deref()
        .map(|s| {
            s.parse::<Direction>()
                .map_err(|e| CliError::Usage(format!("--direction {e}")))
        })
        .transpose()?;
    filter.review = match a.review.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(s) => {
            Some(Some(s.parse::<ReviewStatus>().map_err(|e| {
                CliError::Usage(format!("--review {e}, or none"))
            })?))
        }
    };
    let rows = store.list(&filter)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match a.format {
        ListFormat::Json => {
            let text =
                serde_json::to_string_pretty(&rows).map_err(|e| CliError::Usage(e.to_string()))?;
            writeln!(out, "{text}").map_err(io("writing output"))?;
        }
        ListFormat::Jsonl => {
            for r in &rows {
                let text = serde_json::to_string(r).map_err(|e| CliError::Usage(e.to_string()))?;
                writeln!(out, "{text}").map_err(io("writing output"))?;
            }
        }
        ListFormat::Table => write_table(&mut out, &rows).map_err(io("writing output"))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write, rows: &[StoredSubmission]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<36}  {:<7}  {:<20}  {:<8}  {:>5}  {:<10}",
        "id", "fmp", "observed_at", "dir", "total", "review"
    )?;
    for r in rows {
        let s = &r.submission;
        writeln!(
            out,
            "{:<36}  {:<7}  {:<20}  {:<8}  {:>5}  {:<10}",
            s.id.map(|u| u.to_string()).unwrap_or_default(),
            s.fmp,
            s.observed_at.format("%Y-%m-%dT%H:%M:%SZ"),
            s.direction.as_str(),
            s.people.total(),
            r.review.as_ref().map(|r| r.status.as_str()).unwrap_or("-"),
        )?;
    }
    writeln!(out, "{} submission(s)", rows.len())
}

/// `fmp history`.
pub fn history(dir: &Path, id: &str, json: bool) -> Result<ExitCode, CliError> {
    let id = parse_id(id)?;
    let h = Store::open(dir)?.history(id)?;
    if json {
        print_json(&h)?;
    } else {
        out!(
            "{:>6}  {:<24}  {:<7}  {:<36}  {:<16}  fields",
            "seq",
            "time",
            "op",
            "author",
            "hash"
        )?;
        for e in h {
            // A name this store knows, with the id's first 8 characters;
            // else the id (`--json` has both).
            let author = match &e.author_name {
                Some(n) => format!(
                    "{} ({})",
                    fmp_hub::db::printable(n),
                    e.author.get(..8).unwrap_or(&e.author)
                ),
                None => e.author.clone(),
            };
            out!(
                "{:>6}  {:<24}  {:<7}  {:<36}  {:<16}  {}",
                e.seq,
                e.time.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                e.op,
                author,
                e.hash.get(..16).unwrap_or(&e.hash),
                e.fields.join(", ")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
