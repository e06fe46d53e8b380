//! A newcomer's first hour: the repository stands alone (the example files
//! are taken by `fmp record` as they are, `fmp record --help` names every
//! field, no file points outside the repository), refusals name every
//! problem, and report filters that match nothing say so.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{fmp, text};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh store `name` under `dir`, as `fmp init` makes it; its path.
fn new_store(dir: &tempfile::TempDir, name: &str) -> String {
    let store = dir.path().join(name);
    let store = store.to_str().expect("utf8").to_string();
    let out = fmp(&["init", "--store", &store, "--name", name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    store
}

#[test]
fn the_example_files_are_recorded_as_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store(&dir, "phone");
    let store = store.as_str();
    let mut ids = Vec::new();
    for file in ["examples/submission.json", "examples/gogui-week.jsonl"] {
        let path = repo().join(file);
        let out = fmp(&["record", "--store", store, path.to_str().expect("utf8")]);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        ids.extend(text(&out.stdout).lines().map(str::to_string));
    }
    assert_eq!(ids.len(), 4, "one id per example submission: {ids:?}");
    let out = fmp(&["list", "--store", store, "--format", "jsonl"]);
    let listed: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(listed.len(), 4);
    let fmps: Vec<&str> = listed.iter().filter_map(|s| s["fmp"].as_str()).collect();
    assert_eq!(fmps.iter().filter(|f| **f == "ML-GOG").count(), 3);
    assert_eq!(fmps.iter().filter(|f| **f == "ML-HER").count(), 1);
}

#[test]
fn record_help_names_every_field_and_its_values() {
    let out = fmp(&["record", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "form_version",
        "observed_at",
        "direction",
        "incoming",
        "transport",
        "motorbike",
        "departure",
        "next_destination",
        "final_destination",
        "movement_type",
        "economic_long_term",
        "adult_female",
        "minor_male",
        "under5",
        "pregnant",
        "unaccompanied_children",
        "nationalities",
        "notes",
        "examples/submission.json",
    ] {
        assert!(
            help.contains(word),
            "`fmp record --help` names {word}:\n{help}"
        );
    }
}

/// Text files of the repository (what a clone holds), outside build output.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | ".git" | "node_modules" | "build" | ".gradle"
            ) {
                files(&p, out);
            }
        } else if [
            ".md", ".rs", ".toml", ".sh", ".kt", ".kts", ".json", ".jsonl",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
        {
            out.push(p);
        }
    }
}

#[test]
fn no_file_points_outside_the_repository() {
    let mut all = Vec::new();
    files(&repo(), &mut all);
    assert!(
        all.len() > 50,
        "found the repository's files: {}",
        all.len()
    );
    // Spelled in two pieces so this file does not match itself.
    let outside = format!("../{}", "shared");
    let offenders: Vec<String> = all
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.contains(&outside) || t.contains(&format!("{}/seed/", "shared")))
                .unwrap_or(false)
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "files pointing outside the repository: {offenders:?}"
    );
}

#[test]
fn a_refused_line_names_every_structural_problem_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store(&dir, "phone");
    let store = store.as_str();
    let example =
        std::fs::read_to_string(repo().join("examples/submission.json")).expect("example");
    let mut v: serde_json::Value = serde_json::from_str(&example).expect("json");
    let o = v.as_object_mut().expect("object");
    o.remove("form_version");
    o.insert("colour".into(), "red".into());
    o.insert("direction".into(), "sideways".into());
    o.insert("transport".into(), "camel".into());
    o["people"]["adult_male"] = "thirty".into();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, v.to_string()).expect("write");
    let out = fmp(&["record", "--store", store, file.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for needle in [
        "form_version: missing",
        "direction: \"sideways\" is not one of incoming, outgoing",
        "transport: \"camel\" is not one of",
        "people.adult_male: expected a whole number",
        "colour: unknown field",
    ] {
        assert!(err.contains(needle), "names {needle:?}: {err}");
    }
    assert!(
        !err.contains(".:") && !err.contains("?:"),
        "no odd paths: {err}"
    );
    let out = fmp(&["list", "--store", store, "--format", "jsonl"]);
    assert_eq!(text(&out.stdout).trim(), "", "nothing stored");
}

#[test]
fn report_filters_that_match_nothing_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store(&dir, "hq");
    let store = store.as_str();
    let example = repo().join("examples/submission.json");
    assert!(
        fmp(&["record", "--store", store, example.to_str().expect("utf8")])
            .status
            .success()
    );
    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--store", store, "--format", "json"];
        args.extend_from_slice(extra);
        fmp(&args)
    };
    // The month that holds the example: a report, exit 0.
    let ok = report(&["--month", "2020-06"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(json["national"]["total"], 33);
    // Lower case, unknown: named, with the registry's countries.
    let lower = report(&["--month", "2020-06", "--country", "mli"]);
    assert!(!lower.status.success());
    let err = text(&lower.stderr);
    assert!(
        err.contains("`mli`") && err.contains("--country MLI"),
        "{err}"
    );
    let unknown = report(&["--month", "2020-06", "--country", "XXX"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("its countries: MLI"));
    // A month with nothing, and no approved submission: said, exit non-zero, no report.
    let empty = report(&["--month", "2020-07"]);
    assert!(!empty.status.success());
    assert!(
        text(&empty.stderr).contains("nothing to report"),
        "{}",
        text(&empty.stderr)
    );
    assert!(empty.stdout.is_empty());
    let approved = report(&["--month", "2020-06", "--approved-only"]);
    assert!(!approved.status.success());
    assert!(text(&approved.stderr).contains("no approved submission"));
}

#[test]
fn a_closed_standard_output_ends_record_cleanly_saying_what_was_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store(&dir, "phone");
    let store = store.as_str();
    let week = repo().join("examples/gogui-week.jsonl");
    // The reader is gone before the first id is written (`| head -0`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(["record", "--store", store, week.to_str().expect("utf8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("broken pipe")
            && err.contains("after line 1 was stored: 1 submission(s) stored"),
        "{err}"
    );
    assert!(!err.contains("error: writing output"), "{err}");
    let listed = fmp(&["list", "--store", store, "--format", "jsonl"]);
    assert_eq!(
        text(&listed.stdout).lines().count(),
        1,
        "exactly what it said"
    );
}

#[test]
fn an_enrollment_code_shorter_than_a_minute_is_refused_and_a_good_one_says_until_when() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store(&dir, "hq");
    let code = |expires: &str| {
        fmp(&[
            "enroll-code",
            "--store",
            &store,
            "--fmp",
            "ML-GOG",
            "--expires",
            expires,
        ])
    };
    for short in ["0m", "30s", "59s"] {
        let out = code(short);
        assert!(!out.status.success(), "--expires {short} was accepted");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("--expires {short}")) && err.contains("at least 1m"),
            "{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "no code printed: {}",
            text(&out.stdout)
        );
    }
    let out = code("1m");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim().len(), 11, "XXXXX-XXXXX");
    let err = text(&out.stderr);
    assert!(
        err.contains("ML-GOG") && err.contains("valid 1m (until ") && err.contains(" UTC)"),
        "{err}"
    );
    assert!(
        err.contains(text(&out.stdout).trim()),
        "the code beside its FMPs and expiry: {err}"
    );
}

/// Export counts what the report counts by default (rejected ones left
/// out); `--include-rejected` adds them; a selection matching nothing and
/// an unknown FMP are said.
#[test]
fn export_leaves_rejected_records_out_as_the_report_does_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store(&dir, "hq");
    let store = store.as_str();
    let week = repo().join("examples/gogui-week.jsonl");
    let out = fmp(&["record", "--store", store, week.to_str().expect("utf8")]);
    let ids: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 3);
    let r = fmp(&[
        "review",
        "--store",
        store,
        &ids[0],
        "--status",
        "rejected",
        "--comment",
        "duplicate",
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let rows = |extra: &[&str]| {
        let mut args = vec!["export", "--store", store, "--format", "jsonl"];
        args.extend_from_slice(extra);
        let out = fmp(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    assert_eq!(rows(&[]), 2, "the report's default");
    assert_eq!(rows(&["--exclude-rejected"]), 2, "kept, the default now");
    assert_eq!(rows(&["--include-rejected"]), 3);
    let report = fmp(&[
        "report", "--store", store, "--month", "2020-06", "--format", "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    assert_eq!(json["records"]["counted"], 2, "{}", json["records"]);
    let both = fmp(&[
        "export",
        "--store",
        store,
        "--format",
        "csv",
        "--include-rejected",
        "--exclude-rejected",
    ]);
    assert!(!both.status.success());
    let none = fmp(&[
        "export",
        "--store",
        store,
        "--format",
        "csv",
        "--from",
        "2021-01-01",
    ]);
    assert!(!none.status.success());
    assert!(
        text(&none.stderr).contains("nothing to export"),
        "{}",
        text(&none.stderr)
    );
    assert!(none.stdout.is_empty());
    let unknown = fmp(&[
        "export", "--store", store, "--format", "csv", "--fmp", "ML-XXX",
    ]);
    assert!(!unknown.status.success());
    let err = text(&unknown.stderr);
    assert!(
        err.contains("ML-XXX") && err.contains("ML-GOG") && err.contains("ML-HER"),
        "{err}"
    );
}

/// The README's hub examples grant a hub only FMPs of its own region (a
/// "Gao hub" granted Kayes and Sikasso FMPs misled a supervisor once).
#[test]
fn the_readme_hub_examples_grant_fmps_of_the_hub_s_region() {
    let registry = fmp_core::Registry::mali_default();
    let mut checked = 0;
    for file in ["README.md", "crates/fmp-hub/README.md"] {
        let body = std::fs::read_to_string(repo().join(file)).expect("readme");
        for line in body
            .lines()
            .filter(|l| l.trim_start().starts_with("fmp enroll-code"))
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            let fmps: Vec<&str> = words
                .windows(2)
                .filter(|w| w[0] == "--fmp")
                .map(|w| w[1])
                .collect();
            assert!(!fmps.is_empty(), "{file}: {line}");
            for code in &fmps {
                assert!(
                    registry.get(code).is_some(),
                    "{file}: unknown {code} in {line}"
                );
            }
            let Some(region) = line.split("# for the ").nth(1) else {
                continue;
            };
            let region = region.split(" hub").next().expect("region");
            for code in &fmps {
                let fmp = registry.get(code).expect("known");
                assert_eq!(
                    fmp.admin1, region,
                    "{file}: {code} is not in {region}: {line}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "the READMEs name the hub each code is for");
}
