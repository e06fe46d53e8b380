//! Findings of an outside tester, each reproduced from outside with the
//! real `fmp` binary: a wrong key file, broken or BOM-prefixed JSON,
//! duplicated keys, JSONL export of rejected records, reviews of deleted
//! records, inverted date ranges and enrollment code limits.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{SAMPLE, fmp, fmp_stdin, text};

fn init(dir: &Path, name: &str) -> String {
    let store = dir.join(name);
    let s = store.to_str().expect("utf8");
    let out = fmp(&["init", "--store", s, "--name", name]);
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    s.to_string()
}

fn record(store: &str, json: &[u8]) -> String {
    let out = fmp_stdin(&["record", "--store", store], json);
    assert!(out.status.success(), "record failed: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The submissions a store lists (deleted ones too).
fn count(store: &str) -> usize {
    let out = fmp(&["list", "--store", store, "--format", "json"]);
    assert!(out.status.success(), "list failed: {}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array().expect("array").len()
}

fn refused(out: &Output, needles: &[&str]) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal, got success: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`:\n{err}");
    }
    err
}

#[test]
fn a_store_holding_another_devices_key_is_refused_before_anything_is_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let p1 = init(dir.path(), "p1");
    let p2 = init(dir.path(), "p2");
    let own = std::fs::read(Path::new(&p1).join("device.key")).expect("key");
    std::fs::copy(
        Path::new(&p2).join("device.key"),
        Path::new(&p1).join("device.key"),
    )
    .expect("copy key");
    let out = fmp_stdin(&["record", "--store", &p1], SAMPLE.as_bytes());
    refused(
        &out,
        &["device.key", "not this store's key", "nothing was changed"],
    );
    assert!(text(&out.stdout).trim().is_empty(), "no id printed");
    let out = fmp(&["list", "--store", &p1]);
    refused(&out, &["device.key", "not this store's key"]);
    // With its own key back, the store is as it was: nothing recorded.
    std::fs::write(Path::new(&p1).join("device.key"), own).expect("restore key");
    assert_eq!(count(&p1), 0);
    record(&p1, SAMPLE.as_bytes());
    assert_eq!(count(&p1), 1);
}

#[test]
fn a_missing_device_key_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let p1 = init(dir.path(), "p1");
    std::fs::remove_file(Path::new(&p1).join("device.key")).expect("rm key");
    let out = fmp(&["list", "--store", &p1]);
    refused(&out, &["device.key", "is missing", "backup"]);
}

fn pretty() -> String {
    let v: Value = serde_json::from_str(SAMPLE).expect("sample");
    serde_json::to_string_pretty(&v).expect("pretty")
}

#[test]
fn a_pretty_printed_object_with_one_syntax_error_gets_one_error_naming_where() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path(), "p1");
    let good = pretty();
    // Drop the comma after `"form_version": 1`: the JSON breaks at the
    // next line, where the next key comes without it.
    let broken = good.replacen("\"form_version\": 1,", "\"form_version\": 1", 1);
    assert_ne!(broken, good);
    let at = 2 + good
        .lines()
        .position(|l| l.contains("\"form_version\""))
        .expect("line");
    let where_ = format!("malformed JSON at line {at} column");
    let file = dir.path().join("submission.json");
    std::fs::write(&file, &broken).expect("write");
    let out = fmp(&["record", "--store", &store, file.to_str().expect("utf8")]);
    let err = refused(&out, &[&where_]);
    assert_eq!(
        err.matches("refused:").count(),
        1,
        "one error for one broken object:\n{err}"
    );
    assert!(!err.contains("trailing characters"), "{err}");
    assert_eq!(count(&store), 0);
}

#[test]
fn a_byte_order_mark_is_accepted_pretty_printed_or_as_json_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path(), "p1");
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(pretty().as_bytes());
    let file = dir.path().join("notepad.json");
    std::fs::write(&file, &bom).expect("write");
    let out = fmp(&["record", "--store", &store, file.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines = b"\xEF\xBB\xBF".to_vec();
    lines.extend_from_slice(SAMPLE.as_bytes());
    lines.push(b'\n');
    lines.extend_from_slice(SAMPLE.as_bytes());
    record(&store, &lines);
    assert_eq!(count(&store), 3);
}

#[test]
fn duplicated_keys_are_refused_naming_each_with_the_other_problems() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path(), "p1");
    let dup = SAMPLE.replacen(r#""notes":"""#, r#""notes":"","notes":"dup""#, 1);
    let dup = dup.replacen(
        r#""adult_female":2"#,
        r#""adult_female":2,"adult_female":3"#,
        1,
    );
    let out = fmp_stdin(&["record", "--store", &store], dup.as_bytes());
    refused(
        &out,
        &[
            "notes: duplicated key",
            "people.adult_female: duplicated key",
        ],
    );
    // With an unknown field too: every problem at once.
    let both = dup.replacen(r#""notes":"dup""#, r#""notes":"dup","colour":"red""#, 1);
    let out = fmp_stdin(&["record", "--store", &store], both.as_bytes());
    refused(&out, &["notes: duplicated key", "colour"]);
    assert_eq!(count(&store), 0);
}

#[test]
fn jsonl_export_with_rejected_ones_says_it_carries_no_review_and_still_reimports() {
    let dir = tempfile::tempdir().expect("tmp");
    let hq = init(dir.path(), "hq");
    let id = record(&hq, SAMPLE.as_bytes());
    let out = fmp(&["review", "--store", &hq, &id, "--status", "rejected"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fmp(&[
        "export",
        "--store",
        &hq,
        "--format",
        "jsonl",
        "--include-rejected",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not their review status"),
        "{}",
        text(&out.stderr)
    );
    let other = init(dir.path(), "other");
    record(&other, &out.stdout);
    assert_eq!(count(&other), 1);
    // Without --include-rejected there is nothing to say (and nothing to export).
    let out = fmp(&[
        "export",
        "--store",
        &hq,
        "--format",
        "csv",
        "--include-rejected",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("review status"));
}

#[test]
fn a_deleted_submission_cannot_be_reviewed() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path(), "hq");
    let id = record(&store, SAMPLE.as_bytes());
    let out = fmp(&["delete", "--store", &store, &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = text(&fmp(&["history", "--store", &store, &id, "--json"]).stdout);
    let out = fmp(&["review", "--store", &store, &id, "--status", "approved"]);
    refused(&out, &["is deleted; it cannot be changed"]);
    let after = text(&fmp(&["history", "--store", &store, &id, "--json"]).stdout);
    assert_eq!(before, after, "nothing written");
}

#[test]
fn from_later_than_to_is_refused_naming_both_days() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path(), "hq");
    record(&store, SAMPLE.as_bytes());
    let range = ["--from", "2020-06-30", "--to", "2020-06-01"];
    let mut list = vec!["list", "--store", &store];
    list.extend(range);
    refused(&fmp(&list), &["--from 2020-06-30", "--to 2020-06-01"]);
    let mut export = vec!["export", "--store", &store, "--format", "csv"];
    export.extend(range);
    let err = refused(&fmp(&export), &["--from 2020-06-30", "--to 2020-06-01"]);
    assert!(!err.contains("nothing to export"), "{err}");
}

fn codes(store: &str) -> Vec<Value> {
    let out = fmp(&["codes", "--store", store, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array().expect("array").clone()
}

#[test]
fn enrollment_codes_have_a_sane_longest_life_and_fmps_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let hq = init(dir.path(), "hq");
    for long in ["99999999999d", "1000000d", "366d", "8785h"] {
        let out = fmp(&[
            "enroll-code",
            "--store",
            &hq,
            "--fmp",
            "ML-GOG",
            "--expires",
            long,
        ]);
        refused(&out, &["too long", "365d"]);
    }
    assert!(codes(&hq).is_empty(), "no code made");
    let out = fmp(&[
        "enroll-code",
        "--store",
        &hq,
        "--fmp",
        "ML-GOG",
        "--fmp",
        "ML-GOG",
        "--expires",
        "365d",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = codes(&hq);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["fmps"], serde_json::json!(["ML-GOG"]));
}

#[test]
fn the_printed_expiry_of_a_code_is_never_earlier_than_the_stored_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let hq = init(dir.path(), "hq");
    let out = fmp(&[
        "enroll-code",
        "--store",
        &hq,
        "--fmp",
        "ML-GOG",
        "--expires",
        "1m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let at = err.find("until ").expect("until") + "until ".len();
    let printed = chrono::NaiveDateTime::parse_from_str(&err[at..at + 16], "%Y-%m-%d %H:%M")
        .expect("printed time")
        .and_utc();
    let list = codes(&hq);
    let stored = chrono::DateTime::parse_from_rfc3339(list[0]["expires_at"].as_str().expect("s"))
        .expect("rfc3339");
    assert!(
        printed >= stored,
        "printed {printed} is earlier than the code's expiry {stored}"
    );
}

#[test]
fn a_certificate_without_its_key_is_one_readable_sentence() {
    let dir = tempfile::tempdir().expect("tmp");
    let hq = init(dir.path(), "hq");
    let cert = dir.path().join("hq.crt");
    std::fs::write(&cert, "not used").expect("write");
    let key = dir.path().join("hq.key");
    let out = fmp(&[
        "serve",
        "--store",
        &hq,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("utf8"),
        "--tls-key",
        key.to_str().expect("utf8"),
    ]);
    let err = refused(&out, &["hq.key does not", "or neither (`fmp serve`"]);
    assert!(!err.contains("  "), "no run of spaces:\n{err}");
}

#[test]
fn an_edit_patch_with_a_duplicated_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path(), "p1");
    let id = record(&store, SAMPLE.as_bytes());
    let before = text(&fmp(&["show", "--store", &store, &id]).stdout);
    let out = fmp(&[
        "edit",
        "--store",
        &store,
        &id,
        r#"{"notes":"a","notes":"b"}"#,
    ]);
    refused(&out, &["notes: duplicated key", "nothing was changed"]);
    assert_eq!(before, text(&fmp(&["show", "--store", &store, &id]).stdout));
}
