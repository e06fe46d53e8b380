//! A submission as an automerge document, and back.
//!
//! Layout of a submission document's root map:
//! - `id`: the submission's UUID (string), set once by its creator;
//! - `data`: the canonical submission JSON without `id`, as nested maps
//!   (objects become maps, numbers `Int`, strings `Str`);
//! - `review`: `{status, comment, by, at}` once a supervisor reviewed it;
//! - `deleted`: `true` once deleted (a tombstone: the document stays for sync).
//!
//! Edits are written as the difference between the old and the new JSON,
//! leaf by leaf, so that concurrent edits of different fields both survive an
//! automerge merge; concurrent puts of the same field keep every value
//! (`get_all`), the deterministic winner shown, the others listed as conflicts.

use std::num::NonZeroU64;

use automerge::legacy::{Key, ObjectId, Op as ChangeOp, OpId, OpType, SortedVec};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, Change, ExpandedChange, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value,
};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::model::{Conflict, Review, StoredSubmission, Submission};

/// Errors reading or writing a document.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// automerge refused an operation or could not load bytes.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// The document does not hold a submission in the expected shape.
    #[error("document {id} is not a valid submission: {reason}")]
    Shape {
        /// Document id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a change did, recorded as its commit message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// First version of a submission.
    Record,
    /// Fields changed.
    Edit,
    /// Tombstoned.
    Delete,
    /// Reviewed by a supervisor.
    Review,
}

impl Op {
    /// The name stored in the change log.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Record => "record",
            Op::Edit => "edit",
            Op::Delete => "delete",
            Op::Review => "review",
        }
    }
}

/// The automerge actor id of a device: its UUID's 16 bytes.
pub fn actor_for(device: Uuid) -> ActorId {
    ActorId::from(device.as_bytes().as_slice())
}

/// The automerge actor id of a device at an actor epoch: the bare UUID for
/// epoch 0 (as [`actor_for`]), the UUID followed by the epoch (u32,
/// big-endian) after a restore, so a restored store never reuses a
/// sequence number of its older self.
pub fn actor_for_epoch(device: Uuid, epoch: u32) -> ActorId {
    if epoch == 0 {
        return actor_for(device);
    }
    let mut bytes = device.as_bytes().to_vec();
    bytes.extend_from_slice(&epoch.to_be_bytes());
    ActorId::from(bytes.as_slice())
}

/// The device and epoch an actor id names: `(Some(device), Some(epoch))`
/// for a 16-byte actor (epoch 0) or a 20-byte one with an epoch of at
/// least 1; `(None, None)` for anything else.
pub fn actor_parts(actor: &[u8]) -> (Option<Uuid>, Option<u32>) {
    let Some(device) = actor.get(..16).and_then(|b| Uuid::from_slice(b).ok()) else {
        return (None, None);
    };
    match actor.len() {
        16 => (Some(device), Some(0)),
        20 => {
            let mut e = [0u8; 4];
            e.copy_from_slice(&actor[16..20]);
            match u32::from_be_bytes(e) {
                0 => (None, None),
                epoch => (Some(device), Some(epoch)),
            }
        }
        _ => (None, None),
    }
}

/// Commits pending operations with the op as message and `time_ms` as timestamp.
pub fn commit(doc: &mut AutoCommit, op: Op, time_ms: i64) -> Option<automerge::ChangeHash> {
    doc.commit_with(
        CommitOptions::default()
            .with_message(op.as_str().to_string())
            .with_time(time_ms),
    )
}

/// Creates the document of a new submission (`sub.id` must be set).
pub fn new_submission(actor: ActorId, id: Uuid, sub: &Submission) -> Result<AutoCommit, DocError> {
    let mut doc = AutoCommit::new().with_actor(actor);
    doc.put(ROOT, "id", id.to_string())?;
    let data = doc.put_object(ROOT, "data", ObjType::Map)?;
    let mut json = sub.to_value();
    if let Json::Object(m) = &mut json {
        m.remove("id");
    }
    write_diff(&mut doc, &data, &Json::Object(Map::new()), &json)?;
    doc.put(ROOT, "deleted", false)?;
    Ok(doc)
}

/// The document of a new submission with its first change committed, and
/// that change: byte for byte what [`new_submission`] then [`commit`]
/// (`op` as message, `time_ms` as timestamp) produce, but written as one
/// change and applied in one batch rather than one op at a time, which
/// costs a fraction of the CPU. `sub.id` is ignored; `id` is stored.
pub fn new_submission_committed(
    actor: ActorId,
    id: Uuid,
    sub: &Submission,
    op: Op,
    time_ms: i64,
) -> Result<(AutoCommit, Change), DocError> {
    let change = first_change(&actor, id, sub, op, time_ms);
    let mut doc = AutoCommit::new();
    doc.apply_changes(std::iter::once(change.clone()))?;
    Ok((doc.with_actor(actor), change))
}

/// The ops of a new submission's first change, as one change.
fn first_change(actor: &ActorId, id: Uuid, sub: &Submission, op: Op, time_ms: i64) -> Change {
    let mut json = sub.to_value();
    if let Json::Object(m) = &mut json {
        m.remove("id");
    }
    // The ops in the order `new_submission` makes them: `id`, `data`
    // (then its fields, depth first, as `write_diff` from an empty map),
    // `deleted`.
    let mut ops = OpsBuilder {
        actor,
        ops: Vec::with_capacity(48),
    };
    ops.push(
        &ObjectId::Root,
        "id",
        OpType::Put(ScalarValue::Str(id.to_string().into())),
    );
    let data = ops.push(&ObjectId::Root, "data", OpType::Make(ObjType::Map));
    if let Json::Object(m) = &json {
        ops.write_new(&ObjectId::Id(data), m);
    }
    ops.push(
        &ObjectId::Root,
        "deleted",
        OpType::Put(ScalarValue::Boolean(false)),
    );
    Change::from(ExpandedChange {
        operations: ops.ops,
        actor_id: actor.clone(),
        hash: None,
        seq: 1,
        start_op: NonZeroU64::MIN,
        time: time_ms,
        message: Some(op.as_str().to_string()),
        deps: Vec::new(),
        extra_bytes: Vec::new(),
        author: None,
    })
}

/// The first change of a new submission document, as
/// [`new_submission_committed`] makes it, without building the document:
/// a document of one change is stored as that change's bytes, which
/// `AutoCommit::load` reads as it reads a saved document.
pub fn new_submission_change(
    actor: ActorId,
    id: Uuid,
    sub: &Submission,
    op: Op,
    time_ms: i64,
) -> Change {
    first_change(&actor, id, sub, op, time_ms)
}

/// The ops of a new document's first change, numbered from 1.
struct OpsBuilder<'a> {
    actor: &'a ActorId,
    ops: Vec<ChangeOp>,
}

impl OpsBuilder<'_> {
    /// Appends one op on a map key; returns its id.
    fn push(&mut self, obj: &ObjectId, key: &str, action: OpType) -> OpId {
        let counter = u64::try_from(self.ops.len()).unwrap_or(u64::MAX - 1) + 1;
        self.ops.push(ChangeOp {
            action,
            obj: obj.clone(),
            key: Key::from(key),
            pred: SortedVec::new(),
            insert: false,
        });
        OpId(counter, self.actor.clone())
    }

    /// The ops `write_diff` makes writing `new` into an empty map `obj`.
    fn write_new(&mut self, obj: &ObjectId, new: &Map<String, Json>) {
        for (key, nv) in new {
            match nv {
                Json::Object(m) => {
                    let child = self.push(obj, key, OpType::Make(ObjType::Map));
                    self.write_new(&ObjectId::Id(child), m);
                }
                Json::Null => {}
                other => {
                    self.push(obj, key, OpType::Put(json_to_scalar(other)));
                }
            }
        }
    }
}

/// Writes the fields of `new` that differ from the document's current data.
pub fn edit_submission(doc: &mut AutoCommit, new: &Submission) -> Result<(), DocError> {
    let data = data_obj(doc)?;
    let (old, _) = read_json(doc, &data, "");
    let mut json = new.to_value();
    if let Json::Object(m) = &mut json {
        m.remove("id");
    }
    write_diff(doc, &data, &old, &json)
}

/// Sets the review of a submission: a new map each time, so two concurrent
/// reviews merge to one whole review (its status with its own reviewer),
/// never to one reviewer's status under the other's name.
pub fn set_review(doc: &mut AutoCommit, review: &Review) -> Result<(), DocError> {
    let obj = doc.put_object(ROOT, "review", ObjType::Map)?;
    doc.put(&obj, "status", review.status.as_str())?;
    doc.put(&obj, "comment", review.comment.as_str())?;
    doc.put(&obj, "by", review.by.as_str())?;
    doc.put(
        &obj,
        "at",
        review.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )?;
    Ok(())
}

/// Marks a submission deleted.
pub fn set_deleted(doc: &mut AutoCommit) -> Result<(), DocError> {
    doc.put(ROOT, "deleted", true)?;
    Ok(())
}

/// Settles every conflicting field on the value currently shown, so the
/// other values stop being listed (used by edits and reviews).
pub fn resolve_conflicts(doc: &mut AutoCommit) -> Result<(), DocError> {
    settle(doc, true)
}

/// [`resolve_conflicts`] for the submission's data only: the review's
/// conflicting values stay until a review settles them (an edit writes no
/// review field: a review's fields are written by its reviewer only).
pub fn resolve_data_conflicts(doc: &mut AutoCommit) -> Result<(), DocError> {
    settle(doc, false)
}

fn settle(doc: &mut AutoCommit, review_too: bool) -> Result<(), DocError> {
    let state = read_submission(doc)?;
    let data = data_obj(doc)?;
    for c in state.conflicts {
        if c.field == "review" {
            // Whole reviews: only a new review settles them (see `set_review`).
            continue;
        }
        let (start, rel) = match c.field.strip_prefix("review.") {
            Some(_) if !review_too => continue,
            Some(rest) => match doc.get(ROOT, "review")? {
                Some((Value::Object(ObjType::Map), id)) => (id, rest.to_string()),
                _ => continue,
            },
            None => (data.clone(), c.field.clone()),
        };
        let mut obj = start;
        let mut parts: Vec<&str> = rel.split('.').collect();
        let Some(last) = parts.pop() else { continue };
        let mut found = true;
        for p in parts {
            match doc.get(&obj, p)? {
                Some((Value::Object(ObjType::Map), id)) => obj = id,
                _ => {
                    found = false;
                    break;
                }
            }
        }
        if found && !c.winner.is_object() {
            doc.put(&obj, last, json_to_scalar(&c.winner))?;
        }
    }
    Ok(())
}

fn data_obj(doc: &AutoCommit) -> Result<ObjId, DocError> {
    match doc.get(ROOT, "data")? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(DocError::Shape {
            id: doc_id(doc),
            reason: "no `data` map".into(),
        }),
    }
}

fn doc_id(doc: &AutoCommit) -> String {
    match doc.get(ROOT, "id") {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            _ => "?".into(),
        },
        _ => "?".into(),
    }
}

/// Reads the current state of a submission document.
pub fn read_submission(doc: &AutoCommit) -> Result<StoredSubmission, DocError> {
    let id_str = doc_id(doc);
    let id = Uuid::parse_str(&id_str).map_err(|e| DocError::Shape {
        id: id_str.clone(),
        reason: format!("bad id: {e}"),
    })?;
    let data = data_obj(doc)?;
    let mut conflicts = Vec::new();
    let (json, c) = read_json(doc, &data, "");
    conflicts.extend(c);
    let mut submission = Submission::from_value(json).map_err(|e| DocError::Shape {
        id: id_str.clone(),
        reason: e.to_string(),
    })?;
    submission.id = Some(id);
    let review = match doc.get(ROOT, "review")? {
        Some((Value::Object(ObjType::Map), obj)) => {
            let (json, c) = read_json(doc, &obj, "review");
            conflicts.extend(c);
            // Concurrent reviews are whole maps under one key: one is
            // shown, the others stay listed as a conflict of `review`
            // until a later review (which replaces them all) settles it.
            let others: Vec<Json> = doc
                .get_all(ROOT, "review")?
                .into_iter()
                .filter(|(v, id)| *id != obj && matches!(v, Value::Object(ObjType::Map)))
                .map(|(_, id)| read_json(doc, &id, "review").0)
                .filter(|other| *other != json)
                .collect();
            if !others.is_empty() {
                conflicts.push(Conflict {
                    field: "review".into(),
                    winner: json.clone(),
                    others,
                });
            }
            serde_json::from_value::<Review>(json).ok()
        }
        _ => None,
    };
    let deleted = matches!(
        doc.get(ROOT, "deleted")?,
        Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Boolean(true))
    );
    Ok(StoredSubmission {
        submission,
        review,
        deleted,
        conflicts,
    })
}

fn scalar_to_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
    }
}

fn json_to_scalar(v: &Json) -> ScalarValue {
    match v {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        // Arrays are not part of the submission form.
        Json::Array(_) | Json::Object(_) => ScalarValue::Null,
    }
}

fn value_to_json(doc: &AutoCommit, v: &Value<'_>, id: &ObjId, path: &str) -> (Json, Vec<Conflict>) {
    match v {
        Value::Object(ObjType::Map) => read_json(doc, id, path),
        Value::Object(_) => (Json::Null, Vec::new()),
        Value::Scalar(s) => (scalar_to_json(s), Vec::new()),
    }
}

/// Reads a map as JSON, collecting the fields that hold concurrent values.
/// One pass over the map's visible entries (winners); only a key that holds
/// concurrent values is looked up again for all of them.
fn read_json(doc: &AutoCommit, obj: &ObjId, path: &str) -> (Json, Vec<Conflict>) {
    let mut out = Map::new();
    let mut conflicts = Vec::new();
    for item in doc.map_range(obj, ..) {
        let key = item.key.to_string();
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let wid = item.id();
        let winner = item.value.clone().into_value();
        let (wjson, c) = value_to_json(doc, &winner, &wid, &field);
        conflicts.extend(c);
        if item.conflict {
            let others: Vec<Json> = doc
                .get_all(obj, key.as_str())
                .unwrap_or_default()
                .iter()
                .filter(|(_, id)| *id != wid)
                .map(|(v, id)| value_to_json(doc, v, id, &field).0)
                .filter(|v| *v != wjson)
                .collect();
            if !others.is_empty() {
                conflicts.push(Conflict {
                    field: field.clone(),
                    winner: wjson.clone(),
                    others,
                });
            }
        }
        if !wjson.is_null() {
            out.insert(key, wjson);
        }
    }
    (Json::Object(out), conflicts)
}

/// Puts into `obj` the leaves of `new` that differ from `old`, deletes the
/// keys `new` lacks, and recurses into nested maps.
fn write_diff(doc: &mut AutoCommit, obj: &ObjId, old: &Json, new: &Json) -> Result<(), DocError> {
    let empty = Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let Some(new_map) = new.as_object() else {
        return Ok(());
    };
    for key in old_map.keys() {
        if !new_map.contains_key(key) {
            doc.delete(obj, key.as_str())?;
        }
    }
    for (key, nv) in new_map {
        let ov = old_map.get(key);
        if ov == Some(nv) {
            continue;
        }
        match nv {
            Json::Object(_) => {
                let child = match (ov, doc.get(obj, key.as_str())?) {
                    (Some(Json::Object(_)), Some((Value::Object(ObjType::Map), id))) => id,
                    _ => doc.put_object(obj, key.as_str(), ObjType::Map)?,
                };
                let old_child = match ov {
                    Some(o @ Json::Object(_)) => o.clone(),
                    _ => Json::Object(Map::new()),
                };
                write_diff(doc, &child, &old_child, nv)?;
            }
            Json::Null => {
                if ov.is_some() {
                    doc.delete(obj, key.as_str())?;
                }
            }
            other => doc.put(obj, key.as_str(), json_to_scalar(other))?,
        }
    }
    Ok(())
}

/// The fields a change (`bytes`, as logged) wrote in `doc` (a document
/// holding it), as a person reads them: `people.adult_male`, `notes`,
/// `review`, `deleted`; sorted, each once. Ops on objects no longer in the
/// document (a review replaced since) name the key alone.
pub fn fields_touched(doc: &AutoCommit, bytes: &[u8]) -> Vec<String> {
    let Ok(change) = automerge::Change::try_from(bytes) else {
        return Vec::new();
    };
    // Every map object reachable from the root: its id in the change's
    // terms, its id in the document's, its path.
    let mut maps: Vec<(ObjectId, ObjId, String)> = vec![(ObjectId::Root, ROOT, String::new())];
    let mut i = 0;
    while i < maps.len() {
        let (at, path) = (maps[i].1.clone(), maps[i].2.clone());
        i += 1;
        for key in doc.keys(&at) {
            for (v, id) in doc.get_all(&at, key.as_str()).unwrap_or_default() {
                if let (Value::Object(ObjType::Map), ObjId::Id(ctr, actor, _)) = (v, &id) {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    maps.push((ObjectId::Id(OpId(*ctr, actor.clone())), id.clone(), child));
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for op in change.decode().operations {
        let Key::Map(key) = &op.key else { continue };
        let full = match maps.iter().find(|(o, _, _)| *o == op.obj) {
            Some((_, _, p)) if !p.is_empty() => format!("{p}.{key}"),
            _ => key.to_string(),
        };
        // Submission fields live under `data`; a review is one field.
        let shown = match full.strip_prefix("data.") {
            Some(f) => f.to_string(),
            None if full.starts_with("review") => "review".to_string(),
            None => full,
        };
        if !out.contains(&shown) {
            out.push(shown);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One record on two replicas (devices 1 and 2), before either edits it.
    fn two_replicas(sub: &Submission) -> (AutoCommit, AutoCommit) {
        let mut a = new_submission(device(1), Uuid::now_v7(), sub).expect("doc");
        commit(&mut a, Op::Record, 0);
        let b = AutoCommit::load(&a.save())
            .expect("load")
            .with_actor(device(2));
        (a, b)
    }

    fn sample() -> Submission {
        Submission::from_json(
            r#"{"form":"dtm-fmp-flow","form_version":1,"fmp":"ML-HER",
            "observed_at":"2020-06-14T09:30:00Z","direction":"incoming","transport":"bus",
            "departure":{"country":"BFA","place":"Bobo-Dioulasso"},
            "next_destination":{"country":"MLI","place":"Sikasso"},
            "final_destination":{"country":"MLI"},"movement_type":"seasonal",
            "people":{"adult_male":30,"adult_female":2,"minor_male":1,"minor_female":0},
            "vulnerable":{"under5":0,"elderly":0,"disability":0,"pregnant":0},
            "nationalities":{"BFA":31,"MLI":2},"notes":""}"#,
        )
        .expect("sample parses")
    }

    fn device(n: u8) -> ActorId {
        actor_for(Uuid::from_bytes([n; 16]))
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let sub = sample();
        let id = Uuid::now_v7();
        let mut doc = new_submission(device(1), id, &sub).expect("doc");
        commit(&mut doc, Op::Record, 0);
        let back = read_submission(&doc).expect("read");
        let mut expected = sub.clone();
        expected.id = Some(id);
        assert_eq!(back.submission, expected);
        assert!(back.conflicts.is_empty());
        assert!(!back.deleted);
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        let sub = sample();
        let (mut a, mut b) = two_replicas(&sub);
        let mut ea = sub.clone();
        ea.notes = "bus from Bobo".into();
        edit_submission(&mut a, &ea).expect("edit a");
        commit(&mut a, Op::Edit, 1);
        let mut eb = sub.clone();
        eb.transport = crate::model::Transport::Truck;
        edit_submission(&mut b, &eb).expect("edit b");
        commit(&mut b, Op::Edit, 1);
        a.merge(&mut b).expect("merge");
        let merged = read_submission(&a).expect("read").submission;
        assert_eq!(merged.notes, "bus from Bobo");
        assert_eq!(merged.transport, crate::model::Transport::Truck);
    }

    #[test]
    fn concurrent_reviews_show_one_and_list_the_other_until_a_review_settles_them() {
        let sub = sample();
        let (mut a, mut b) = two_replicas(&sub);
        let review = |status, by: &str| Review {
            status,
            comment: format!("by {by}"),
            by: by.into(),
            at: chrono::DateTime::from_timestamp(1_600_000_000, 0).expect("time"),
        };
        set_review(
            &mut a,
            &review(crate::model::ReviewStatus::Approved, "sup1"),
        )
        .expect("review a");
        commit(&mut a, Op::Review, 1);
        set_review(
            &mut b,
            &review(crate::model::ReviewStatus::Rejected, "sup2"),
        )
        .expect("review b");
        commit(&mut b, Op::Review, 1);
        let mut a2 = a.fork();
        a.merge(&mut b).expect("merge ab");
        b.merge(&mut a2).expect("merge ba");
        let (ra, rb) = (
            read_submission(&a).expect("a"),
            read_submission(&b).expect("b"),
        );
        assert_eq!(ra.review, rb.review, "one winner everywhere");
        assert_eq!(ra.conflicts, rb.conflicts);
        let c = ra
            .conflicts
            .iter()
            .find(|c| c.field == "review")
            .expect("the losing review is listed");
        let statuses: Vec<&str> = std::iter::once(&c.winner)
            .chain(&c.others)
            .filter_map(|r| r["status"].as_str())
            .collect();
        assert_eq!(statuses.len(), 2, "{c:?}");
        assert!(statuses.contains(&"approved") && statuses.contains(&"rejected"));
        // An edit leaves it; a new review settles it.
        resolve_data_conflicts(&mut a).expect("edit-side settle");
        assert!(
            read_submission(&a)
                .expect("a")
                .conflicts
                .iter()
                .any(|c| c.field == "review")
        );
        set_review(&mut a, &review(crate::model::ReviewStatus::Approved, "hq")).expect("settle");
        resolve_conflicts(&mut a).expect("settle");
        commit(&mut a, Op::Review, 2);
        let settled = read_submission(&a).expect("a");
        assert!(settled.conflicts.is_empty(), "{:?}", settled.conflicts);
        assert_eq!(settled.review.expect("review").by, "hq");
    }

    #[test]
    fn concurrent_edits_of_one_field_converge_and_show_a_conflict() {
        let sub = sample();
        let (mut a, mut b) = two_replicas(&sub);
        let mut ea = sub.clone();
        ea.people.adult_male = 29;
        ea.nationalities.insert("BFA".into(), 30);
        edit_submission(&mut a, &ea).expect("edit a");
        commit(&mut a, Op::Edit, 1);
        let mut eb = sub.clone();
        eb.people.adult_male = 28;
        eb.nationalities.insert("BFA".into(), 29);
        edit_submission(&mut b, &eb).expect("edit b");
        commit(&mut b, Op::Edit, 1);
        let mut a2 = a.fork();
        a.merge(&mut b).expect("merge ab");
        b.merge(&mut a2).expect("merge ba");
        let ra = read_submission(&a).expect("read a");
        let rb = read_submission(&b).expect("read b");
        assert_eq!(ra.submission, rb.submission);
        assert_eq!(ra.conflicts, rb.conflicts);
        let c = ra
            .conflicts
            .iter()
            .find(|c| c.field == "people.adult_male")
            .expect("conflict");
        assert_eq!(c.others.len(), 1);
    }

    /// The reference way to create a record: op by op, then commit.
    fn op_by_op(actor: ActorId, id: Uuid, sub: &Submission, time_ms: i64) -> (Vec<u8>, Change) {
        let mut doc = new_submission(actor, id, sub).expect("doc");
        commit(&mut doc, Op::Record, time_ms).expect("a change");
        let change = doc.get_last_local_change().expect("change");
        (doc.save(), change)
    }

    /// Asserts the batch build gives the same change and document bytes.
    fn assert_same_as_op_by_op(sub: &Submission, time_ms: i64) {
        let id = Uuid::now_v7();
        let (saved, change) = op_by_op(device(1), id, sub, time_ms);
        let (mut doc, fast) =
            new_submission_committed(device(1), id, sub, Op::Record, time_ms).expect("fast");
        assert_eq!(fast.hash(), change.hash());
        assert_eq!(fast.raw_bytes(), change.raw_bytes());
        assert_eq!(doc.save(), saved);
        assert_eq!(doc.get_actor(), &device(1));
        let mut expected = sub.clone();
        expected.id = Some(id);
        let back = read_submission(&doc).expect("read");
        assert_eq!(back.submission, expected);
        assert!(back.conflicts.is_empty() && back.review.is_none() && !back.deleted);
    }

    #[test]
    fn committed_record_is_byte_identical_to_op_by_op() {
        let sub = sample();
        assert_same_as_op_by_op(&sub, 0);
        let mut other = sub.clone();
        other.id = Some(Uuid::now_v7()); // ignored: the `id` argument is stored
        other.departure.place = None;
        other.final_destination.place = Some(String::new());
        other.vulnerable.unaccompanied_children = Some(1);
        other.notes = "pas de bus à Sévaré; \"quotes\"\n\u{1F68C}".into();
        other.nationalities = (0..40).map(|i| (format!("C{i:02}"), i)).collect();
        other.people.adult_male = u32::MAX;
        assert_same_as_op_by_op(&other, 1_592_127_000_123);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn committed_record_matches_op_by_op_for_any_submission(
            fmp in "[A-Z]{2}-[A-Z]{3}",
            secs in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
            place in proptest::option::of(".{0,40}"),
            counts in proptest::array::uniform4(proptest::num::u32::ANY),
            unaccompanied in proptest::option::of(proptest::num::u32::ANY),
            nationalities in proptest::collection::btree_map("[A-Z]{3}", proptest::num::u32::ANY, 0..6),
            notes in ".{0,80}",
            time_ms in proptest::num::i64::ANY,
        ) {
            let mut sub = sample();
            sub.fmp = fmp;
            sub.observed_at = chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default();
            sub.next_destination.place = place;
            sub.people.adult_male = counts[0];
            sub.people.adult_female = counts[1];
            sub.people.minor_male = counts[2];
            sub.vulnerable.elderly = counts[3];
            sub.vulnerable.unaccompanied_children = unaccompanied;
            sub.nationalities = nationalities;
            sub.notes = notes;
            assert_same_as_op_by_op(&sub, time_ms);
        }
    }

    #[test]
    fn removing_a_nationality_deletes_its_key() {
        let sub = sample();
        let id = Uuid::now_v7();
        let mut doc = new_submission(device(1), id, &sub).expect("doc");
        let mut e = sub.clone();
        e.nationalities.remove("MLI");
        e.nationalities.insert("BFA".into(), 33);
        edit_submission(&mut doc, &e).expect("edit");
        let back = read_submission(&doc).expect("read").submission;
        assert_eq!(back.nationalities.len(), 1);
        assert_eq!(back.nationalities.get("BFA"), Some(&33));
    }
}
