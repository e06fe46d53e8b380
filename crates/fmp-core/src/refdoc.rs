//! The reference data as automerge documents, so it reaches every replica by
//! sync like any record (DESIGN.md: the registry "is data, not code").
//!
//! - The FMP registry is one document, `documents.id` = [`REGISTRY_ID`],
//!   `kind` = [`REGISTRY_KIND`]. Its root map holds one key per FMP,
//!   `fmp:<code>`, whose value is the JSON text `{"pos": n, "fmp": {...}}`
//!   (the FMP as in `Registry::to_json`, and its position in the list).
//!   Concurrent edits of different FMPs both survive a merge; concurrent
//!   edits of one FMP end with the same winner everywhere.
//! - Each form version is one document, `documents.id` =
//!   [`form_doc_id`]`(id, version)`, `kind` = [`FORM_KIND`], whose root
//!   key `form` holds the form's JSON text. A form version never changes
//!   once published (a different one under the same id and version is
//!   refused), so a whole-text value is enough.
//!
//! Only authors with no FMP restriction (HQ) may write these documents;
//! every receiver refuses others' changes to them (`fmp-sync`).

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::form::Form;
use crate::reference::{Fmp, Registry};

/// `documents.kind` of the FMP registry.
pub const REGISTRY_KIND: &str = "registry";
/// `documents.id` of the FMP registry (there is one).
pub const REGISTRY_ID: &str = "registry";
/// `documents.kind` of a form version.
pub const FORM_KIND: &str = "form";
/// Commit message (the log's `op`) of a registry change.
pub const REGISTRY_OP: &str = "registry";
/// Commit message (the log's `op`) of a form's publication.
pub const FORM_OP: &str = "form";

const FMP_PREFIX: &str = "fmp:";

/// Why a reference document cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RefDocError {
    /// automerge refused an operation.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// The document does not hold what it should.
    #[error("the {kind} document is not valid: {reason}")]
    Shape {
        /// `registry` or `form`.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn shape(kind: &'static str, reason: impl Into<String>) -> RefDocError {
    RefDocError::Shape {
        kind,
        reason: reason.into(),
    }
}

/// `documents.id` of a form version.
pub fn form_doc_id(id: &str, version: u32) -> String {
    format!("form:{id}:{version}")
}

#[derive(Serialize, Deserialize)]
struct Entry {
    pos: usize,
    fmp: Fmp,
}

fn str_at(doc: &AutoCommit, key: &str) -> Result<Option<String>, RefDocError> {
    match doc.get(ROOT, key)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Ok(Some(s.to_string())),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Writes `registry` into the document as the difference with what it
/// holds (changed FMPs put, removed ones deleted). Does not commit.
pub fn write_registry(doc: &mut AutoCommit, registry: &Registry) -> Result<(), RefDocError> {
    let mut wanted = std::collections::BTreeMap::new();
    for (pos, fmp) in registry.fmps.iter().enumerate() {
        let text = serde_json::to_string(&Entry {
            pos,
            fmp: fmp.clone(),
        })
        .map_err(|e| shape("registry", e.to_string()))?;
        wanted.insert(format!("{FMP_PREFIX}{}", fmp.code), text);
    }
    let present: Vec<String> = doc
        .keys(ROOT)
        .filter(|k| k.starts_with(FMP_PREFIX))
        .collect();
    for k in present {
        if !wanted.contains_key(&k) {
            doc.delete(ROOT, k.as_str())?;
        }
    }
    for (k, text) in wanted {
        // Compare parsed values: the text of an equal entry may differ.
        let same = str_at(doc, &k)?
            .and_then(|old| serde_json::from_str::<serde_json::Value>(&old).ok())
            == serde_json::from_str::<serde_json::Value>(&text).ok();
        if !same {
            doc.put(ROOT, k.as_str(), text)?;
        }
    }
    Ok(())
}

/// Reads the registry a document holds, checked (`Registry::check`).
pub fn read_registry(doc: &AutoCommit) -> Result<Registry, RefDocError> {
    let mut entries: Vec<Entry> = Vec::new();
    for k in doc.keys(ROOT).filter(|k| k.starts_with(FMP_PREFIX)) {
        let text = str_at(doc, &k)?.ok_or_else(|| shape("registry", format!("{k} is not text")))?;
        let e: Entry =
            serde_json::from_str(&text).map_err(|e| shape("registry", format!("{k}: {e}")))?;
        if format!("{FMP_PREFIX}{}", e.fmp.code) != k {
            return Err(shape("registry", format!("{k} holds FMP {}", e.fmp.code)));
        }
        entries.push(e);
    }
    if entries.is_empty() {
        return Err(shape("registry", "it lists no FMP"));
    }
    entries.sort_by(|a, b| (a.pos, &a.fmp.code).cmp(&(b.pos, &b.fmp.code)));
    let registry = Registry {
        fmps: entries.into_iter().map(|e| e.fmp).collect(),
    };
    registry
        .check()
        .map_err(|e| shape("registry", e.to_string()))?;
    Ok(registry)
}

/// Writes a form version into its (new) document. Does not commit.
pub fn write_form(doc: &mut AutoCommit, form: &Form) -> Result<(), RefDocError> {
    doc.put(ROOT, "form", form.to_json())?;
    Ok(())
}

/// Reads the form a document holds, checked (`Form::from_json`).
pub fn read_form(doc: &AutoCommit) -> Result<Form, RefDocError> {
    let text = str_at(doc, "form")?.ok_or_else(|| shape("form", "it holds no form"))?;
    Form::from_json(&text).map_err(|e| shape("form", e.to_string()))
}

/// Checks a reference document received by sync, as it would be after a
/// change: `Ok` if it is a valid registry (or form, under its own id).
pub fn check(kind: &str, id: &str, doc: &AutoCommit) -> Result<(), RefDocError> {
    match kind {
        REGISTRY_KIND => {
            if id != REGISTRY_ID {
                return Err(shape(
                    "registry",
                    format!("its id is {id}, not {REGISTRY_ID}"),
                ));
            }
            read_registry(doc).map(|_| ())
        }
        FORM_KIND => {
            let form = read_form(doc)?;
            let expected = form_doc_id(&form.id, form.version);
            if id != expected {
                return Err(shape("form", format!("its id is {id}, not {expected}")));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Commits pending operations with `op` as message and `time_ms` as time.
pub fn commit(doc: &mut AutoCommit, op: &str, time_ms: i64) -> Option<automerge::ChangeHash> {
    doc.commit_with(
        CommitOptions::default()
            .with_message(op.to_string())
            .with_time(time_ms),
    )
}
