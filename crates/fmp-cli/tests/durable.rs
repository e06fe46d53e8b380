//! A durable `fmp record` syncs its data with fdatasync(2), never fsync(2):
//! the bundled SQLite is built with HAVE_FDATASYNC (.cargo/config.toml),
//! and a build that lost the flag falls back to fsync silently. Counted
//! with strace (installed by scripts/install-deps.sh).

use std::process::{Command, Stdio};

#[test]
fn a_durable_record_syncs_with_fdatasync_not_fsync() {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("FMP_REQUIRE_FIELD").is_none(),
            "strace is missing: scripts/install-deps.sh installs it"
        );
        eprintln!("skipped: strace is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("phone");
    let bin = env!("CARGO_BIN_EXE_fmp");
    let init = Command::new(bin)
        .args(["init", "--store"])
        .arg(&store)
        .output()
        .expect("init");
    assert!(init.status.success(), "{init:?}");
    let trace = tmp.path().join("trace");
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(bin)
        .args(["record", "--store"])
        .arg(&store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("strace fmp record");
    let example = include_str!("../../../examples/submission.json");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), example.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let calls = std::fs::read_to_string(&trace).expect("trace");
    let count = |name: &str| {
        calls
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|c| c.starts_with(&format!("{name}(")))
            })
            .count()
    };
    assert!(
        count("fdatasync") > 0,
        "the record was made durable: {calls}"
    );
    assert_eq!(count("fsync"), 0, "no fsync: {calls}");
}
