//! `fmp report` and `fmp export` through the binary: the JSON contract of
//! the report, the HXL row of the CSV, and the JSONL round trip
//! (export, `fmp record` into a fresh store, same report).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(args)
        .output()
        .expect("run fmp")
}

fn record(store: &str, input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(["record", "--store", store])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write");
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn report_json(store: &str) -> Value {
    let out = fmp(&[
        "report", "--store", store, "--month", "2020-06", "--format", "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report json")
}

#[test]
fn report_and_export_round_trip_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a");
    let a = a.to_str().expect("utf8");
    assert!(fmp(&["init", "--store", a]).status.success());
    let mut jsonl = Vec::new();
    for s in fmp_report::fixture::may_june_2020(11) {
        serde_json::to_writer(&mut jsonl, &s).expect("json");
        jsonl.push(b'\n');
    }
    let out = record(a, &jsonl);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = report_json(a);
    assert_eq!(r["month"], "2020-06");
    assert_eq!(r["national"]["incoming"], 7555);
    assert_eq!(r["national"]["outgoing"], 4859);
    assert_eq!(r["national"]["total"], 12414);
    assert_eq!(r["national"]["active_fmps"], 9);
    assert!(r["national"]["avg_per_day"].is_number());
    let fmps = r["fmps"].as_array().expect("fmps");
    assert_eq!(fmps.len(), 9);
    let her = fmps.iter().find(|f| f["code"] == "ML-HER").expect("ML-HER");
    assert_eq!(
        (her["incoming"].as_u64(), her["outgoing"].as_u64()),
        (Some(5924), Some(2584))
    );
    for key in ["name", "kind", "total", "days_observed", "avg_per_day"] {
        assert!(!her[key].is_null(), "fmps[].{key} present");
    }

    for format in ["md", "html"] {
        let out = fmp(&[
            "report", "--store", a, "--month", "2020-06", "--format", format,
        ]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("7,555"),
            "{format} shows the incoming total"
        );
    }

    let csv = fmp(&["export", "--store", a, "--format", "csv", "--fmp", "ML-GOG"]);
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8_lossy(&csv.stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let hxl = lines.next().expect("hxl row");
    assert!(header.contains("fmp"), "{header}");
    assert!(
        hxl.split(',').all(|c| c.is_empty() || c.starts_with('#')),
        "HXL row: {hxl}"
    );
    assert!(lines.all(|l| l.contains("ML-GOG")), "only ML-GOG rows");

    let xlsx = tmp.path().join("out.xlsx");
    let out = fmp(&[
        "export",
        "--store",
        a,
        "--format",
        "xlsx",
        "--out",
        xlsx.to_str().expect("utf8"),
    ]);
    assert!(out.status.success());
    assert_eq!(
        &std::fs::read(&xlsx).expect("xlsx")[..2],
        b"PK",
        "an xlsx is a zip"
    );

    let jsonl = fmp(&["export", "--store", a, "--format", "jsonl"]);
    assert!(jsonl.status.success());
    let b = tmp.path().join("b");
    let b = b.to_str().expect("utf8");
    assert!(fmp(&["init", "--store", b]).status.success());
    let out = record(b, &jsonl.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report_json(b), r, "same report after export and import");

    let bad = fmp(&[
        "report", "--store", a, "--month", "June", "--format", "json",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("June"));
}
