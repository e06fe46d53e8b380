//! The `fmp` binary driven as a user would: commands, output shapes, and bad
//! input that must get a clear error and leave the store unchanged.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{SAMPLE, fmp, fmp_stdin, text};

fn init(dir: &Path) -> String {
    let store = dir.join("store");
    let out = fmp(&[
        "init",
        "--store",
        store.to_str().expect("utf8"),
        "--name",
        "test-phone",
    ]);
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    store.to_str().expect("utf8").to_string()
}

fn record(store: &str, json: &str) -> String {
    let out = fmp_stdin(&["record", "--store", store], json.as_bytes());
    assert!(out.status.success(), "record failed: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// Everything a user can see of a store: the JSON listing with deleted and
/// the history of each submission.
fn snapshot(store: &str) -> String {
    let out = fmp(&["list", "--store", store, "--format", "json"]);
    assert!(out.status.success(), "list failed: {}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).expect("list json");
    let mut s = serde_json::to_string(&list).expect("json");
    for item in list.as_array().expect("array") {
        let id = item["id"].as_str().expect("id");
        let h = fmp(&["history", "--store", store, id, "--json"]);
        s.push_str(&text(&h.stdout));
    }
    s
}

fn assert_refused(out: &Output, needles: &[&str]) {
    assert!(
        !out.status.success(),
        "expected a failure, got success: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`:\n{err}");
    }
    assert!(
        !err.contains("panicked"),
        "a panic reached the user:\n{err}"
    );
    assert!(
        !err.contains("RUST_BACKTRACE"),
        "a backtrace hint reached the user:\n{err}"
    );
}

#[test]
fn record_show_edit_review_list_history_delete() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    let id = record(&store, SAMPLE);
    assert_eq!(id.len(), 36, "one uuid printed: {id}");

    let out = fmp(&["show", "--store", &store, &id]);
    assert!(out.status.success());
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["people"]["adult_male"], 30);
    assert_eq!(shown["review"], Value::Null);

    let out = fmp(&[
        "edit",
        "--store",
        &store,
        &id,
        r#"{"notes":"bus from Bobo","people":{"adult_male":29},"nationalities":{"BFA":30}}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let edited: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(edited["notes"], "bus from Bobo");
    assert_eq!(edited["people"]["adult_male"], 29);

    let out = fmp(&[
        "review",
        "--store",
        &store,
        &id,
        "--status",
        "has_issues",
        "--comment",
        "check the count",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = fmp(&[
        "list",
        "--store",
        &store,
        "--fmp",
        "ML-HER",
        "--from",
        "2020-06-01",
        "--to",
        "2020-06-30",
        "--format",
        "json",
    ]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let arr = list.as_array().expect("array");
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["id"], id.as_str());
    assert_eq!(arr[0]["review"]["status"], "has_issues");
    assert_eq!(arr[0]["review"]["comment"], "check the count");
    assert_eq!(arr[0]["notes"], "bus from Bobo");

    let out = fmp(&[
        "list", "--store", &store, "--fmp", "ML-GOG", "--format", "json",
    ]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).expect("json"),
        Value::Array(vec![])
    );
    let out = fmp(&[
        "list",
        "--store",
        &store,
        "--to",
        "2020-06-13",
        "--format",
        "jsonl",
    ]);
    assert!(
        text(&out.stdout).trim().is_empty(),
        "date filter excludes the 14th"
    );
    let out = fmp(&["list", "--store", &store]);
    assert!(text(&out.stdout).contains(&id), "table lists the id");

    let out = fmp(&["history", "--store", &store, &id, "--json"]);
    let h: Value = serde_json::from_slice(&out.stdout).expect("json");
    let ops: Vec<&str> = h
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["op"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, ["record", "edit", "review"]);

    let out = fmp(&["delete", "--store", &store, &id]);
    assert!(out.status.success());
    let out = fmp(&["list", "--store", &store, "--format", "jsonl"]);
    assert!(
        text(&out.stdout).trim().is_empty(),
        "deleted submissions are not listed"
    );
    let out = fmp(&["edit", "--store", &store, &id, r#"{"notes":"x"}"#]);
    assert_refused(&out, &["deleted"]);
}

#[test]
fn json_lines_store_each_line_or_refuse_it_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    let bad = SAMPLE.replace(r#""adult_male":30"#, r#""adult_male":40"#);
    let input = format!("{SAMPLE}\n{bad}\n\n{SAMPLE}\n");
    let out = fmp_stdin(&["record", "--store", &store], input.as_bytes());
    assert!(
        !out.status.success(),
        "a refused line makes the exit non-zero"
    );
    let ids: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 2, "lines 1 and 4 stored: {ids:?}");
    let err = text(&out.stderr);
    assert!(err.contains("line 2"), "names the line: {err}");
    assert!(err.contains("nationalities"), "names the field: {err}");
    let out = fmp(&["list", "--store", &store, "--format", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().expect("array").len(), 2);
}

#[test]
fn a_record_too_large_for_a_sync_message_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    let id = record(&store, SAMPLE);
    let before = snapshot(&store);
    let long = "n".repeat(5000);
    let input = SAMPLE.replace(r#""notes":"""#, &format!(r#""notes":"{long}""#));
    let out = fmp_stdin(&["record", "--store", &store], input.as_bytes());
    assert_refused(
        &out,
        &["notes", "5000 bytes", "at most 800", "sync message"],
    );
    let input = SAMPLE.replace("Bobo-Dioulasso", &"B".repeat(101));
    let out = fmp_stdin(&["record", "--store", &store], input.as_bytes());
    assert_refused(&out, &["departure.place", "at most 100"]);
    let patch = format!(r#"{{"notes":"{long}"}}"#);
    let out = fmp_stdin(&["edit", "--store", &store, &id, &patch], b"");
    assert_refused(&out, &["notes", "at most 800"]);
    assert_eq!(snapshot(&store), before, "nothing stored or changed");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    let id = record(&store, SAMPLE);
    let before = snapshot(&store);

    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "{\"form\": \"dtm-fmp-flow\", ".to_string(),
            vec!["malformed JSON"],
        ),
        (
            SAMPLE.replace(r#""notes":"""#, r#""notes":"","colour":"red""#),
            vec!["colour", "unknown field"],
        ),
        (
            SAMPLE.replace(r#""adult_male":30"#, r#""adult_male":"thirty""#),
            vec!["people.adult_male"],
        ),
        (
            SAMPLE.replace(r#""direction":"incoming""#, r#""direction":"sideways""#),
            vec!["direction", "sideways"],
        ),
        (
            SAMPLE.replace(
                r#""observed_at":"2020-06-14T09:30:00Z""#,
                r#""observed_at":"yesterday""#,
            ),
            vec!["observed_at"],
        ),
        (
            SAMPLE.replace(r#""fmp":"ML-HER""#, r#""fmp":"ML-XXX""#),
            vec!["fmp", "ML-XXX"],
        ),
    ];
    for (input, needles) in &cases {
        let out = fmp_stdin(&["record", "--store", &store], input.as_bytes());
        assert_refused(&out, needles);
    }

    // A 50 MB line.
    let mut huge = String::with_capacity(50 << 20);
    huge.push_str(r#"{"notes":""#);
    while huge.len() < 50 << 20 {
        huge.push_str("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    }
    huge.push_str("\"}\n");
    let out = fmp_stdin(&["record", "--store", &store], huge.as_bytes());
    assert_refused(&out, &["bytes"]);

    // Bad edits: not JSON, unknown field, invalid result, unknown id, bad id.
    for (args, needles) in [
        (
            vec!["edit", "--store", &store, &id, "{not json"],
            vec!["not JSON"],
        ),
        (
            vec!["edit", "--store", &store, &id, r#"{"colour":"red"}"#],
            vec!["colour"],
        ),
        (
            vec![
                "edit",
                "--store",
                &store,
                &id,
                r#"{"people":{"adult_male":1}}"#,
            ],
            vec!["nationalities"],
        ),
        (
            vec![
                "edit",
                "--store",
                &store,
                "0190a5c2-7c1e-7b3a-9f00-3c2d1e0f4a55",
                r#"{"notes":"x"}"#,
            ],
            vec!["no submission"],
        ),
        (
            vec!["show", "--store", &store, "42"],
            vec!["not a submission id"],
        ),
        (
            vec!["list", "--store", &store, "--from", "June"],
            vec!["--from", "YYYY-MM-DD"],
        ),
        (
            vec!["list", "--store", &store, "--fmp", "ML-NOPE"],
            vec!["ML-NOPE"],
        ),
    ] {
        let out = fmp(&args);
        assert_refused(&out, &needles);
    }
    assert_eq!(snapshot(&store), before, "refused input changed the store");
}

#[test]
fn not_a_store_and_double_init_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = fmp_stdin(
        &["record", "--store", empty.to_str().expect("utf8")],
        SAMPLE.as_bytes(),
    );
    assert_refused(&out, &["not an fmp store", "fmp init"]);
    assert_eq!(
        std::fs::read_dir(&empty).expect("ls").count(),
        0,
        "nothing created in a non-store"
    );

    let store = init(tmp.path());
    let id = record(&store, SAMPLE);
    let before = snapshot(&store);
    let out = fmp(&["init", "--store", &store]);
    assert_refused(&out, &["already holds an fmp store"]);
    assert_eq!(snapshot(&store), before);
    assert!(snapshot(&store).contains(&id));
}

#[test]
fn device_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    let mode = std::fs::metadata(Path::new(&store).join("device.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn read_only_store_is_refused_clearly_and_unchanged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    record(&store, SAMPLE);
    let before = snapshot(&store);
    let bin = env!("CARGO_BIN_EXE_fmp");
    // Root ignores permission bits, so run fmp in a private mount namespace
    // where the store directory is bind-mounted read-only.
    let out = if unsafe_is_root() {
        let script = format!(
            "mount --bind '{store}' '{store}' && mount -o remount,bind,ro '{store}' && echo '{SAMPLE}' | '{bin}' record --store '{store}'"
        );
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .output()
            .expect("unshare")
    } else {
        use std::os::unix::fs::PermissionsExt;
        for f in std::fs::read_dir(&store).expect("ls") {
            let p = f.expect("entry").path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        }
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let out = fmp_stdin(&["record", "--store", &store], SAMPLE.as_bytes());
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        out
    };
    assert_refused(&out, &["read-only"]);
    assert_eq!(snapshot(&store), before);
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn help_explains_every_command() {
    let out = fmp(&["--help"]);
    let help = text(&out.stdout);
    for cmd in [
        "init", "record", "edit", "delete", "review", "show", "list", "history", "demo",
    ] {
        assert!(help.contains(cmd), "--help lists {cmd}");
        let sub = fmp(&[cmd, "--help"]);
        assert!(sub.status.success(), "{cmd} --help");
        assert!(text(&sub.stdout).len() > 80, "{cmd} --help says something");
    }
}

/// `fmp status | head -1` and the like: a reader that goes away before
/// the command prints ends it quietly (exit 0, no panic), the store as it was.
#[test]
fn a_closed_standard_output_ends_a_printing_command_quietly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = init(tmp.path());
    let id = record(&store, SAMPLE);
    let before = snapshot(&store);
    for args in [
        vec!["status", "--store", &store],
        vec!["devices", "--store", &store],
        vec!["list", "--store", &store],
        vec!["show", "--store", &store, &id],
        vec!["history", "--store", &store, &id],
    ] {
        // The read end is closed before fmp starts: its first write fails.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_fmp"))
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run fmp");
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
    assert_eq!(snapshot(&store), before);
}
