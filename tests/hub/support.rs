//! Test support for the hub's end-to-end tests: `fmp` processes (a hub
//! served on a loopback port, commands), submissions, and the fault proxy
//! of `fmp-testkit` (which cuts connections after N bytes, among others).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `fmp` binary under test.
pub fn fmp_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fmp"))
}

/// Runs `fmp ARGS` (stdin from `input`), returning its output.
pub fn fmp_in(args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new(fmp_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fmp");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(i) = input {
            stdin.write_all(i.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("fmp output")
}

/// Runs `fmp ARGS` and insists on success; its stdout.
pub fn fmp(args: &[&str]) -> String {
    let out = fmp_in(args, None);
    assert!(
        out.status.success(),
        "fmp {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `fmp init` of a store named `name` under `root`.
pub fn init(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    fmp(&["init", "--store", s(&dir), "--name", name]);
    dir
}

/// `fmp enroll-code` on `hub` for each of `fmps`, plus `extra` flags
/// (`--hub`, `--expires 1h`…): the code.
pub fn code(hub: &Path, fmps: &[&str], extra: &[&str]) -> String {
    let mut args = vec!["enroll-code", "--store", s(hub)];
    for f in fmps {
        args.extend(["--fmp", f]);
    }
    args.extend(extra);
    fmp(&args).trim().to_string()
}

/// A fresh code from `hub` (see [`code`]), then `fmp join` of `store` at
/// `url` with it: join's output.
pub fn enroll(hub: &Path, store: &Path, url: &str, fmps: &[&str], extra: &[&str]) -> String {
    let code = code(hub, fmps, extra);
    fmp(&["join", "--store", s(store), "--hub", url, "--code", &code])
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A running `fmp serve`; stopped with SIGTERM on drop.
pub struct Served {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Served {
    /// Starts `fmp serve --store DIR --listen 127.0.0.1:0 EXTRA` and reads its address.
    pub fn start(store: &Path, extra: &[&str]) -> Served {
        let mut args = vec!["serve", "--store", s(store), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = Command::new(fmp_bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fmp serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Served { child, url }
    }

    /// Sends SIGTERM and waits; true if it exited cleanly.
    pub fn stop(mut self) -> bool {
        self.term()
    }

    fn term(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.term();
        }
    }
}

/// `n` submissions for `fmp` as JSON lines, distinct by time and notes.
pub fn submissions(fmp: &str, n: usize, tag: &str) -> String {
    let mut out = String::new();
    for i in 0..n {
        let mut sub = fmp_core::example_submission();
        sub.fmp = fmp.to_string();
        sub.observed_at += chrono::Duration::minutes(i as i64 * 7);
        sub.notes = format!("{tag} #{i}");
        out.push_str(&serde_json::to_string(&sub.to_value()).expect("json"));
        out.push('\n');
    }
    out
}

/// The one fault-injecting proxy of the test suites (latency, bandwidth,
/// stalls, cuts, link drops; seeded): see `fmp_testkit::proxy`.
#[allow(unused_imports)]
pub use fmp_testkit::proxy::{FaultProxy, Faults};

/// `cmd` run with `input` on its standard input; its output, not checked.
pub fn run_with_input(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// The environment that runs a process `offset` off the real clock under
/// libfaketime (e.g. `-730d`), if the library is installed.
pub fn faketime(offset: &str) -> Option<Vec<(&'static str, String)>> {
    let lib = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())?;
    Some(vec![
        ("LD_PRELOAD", lib.to_string()),
        ("FAKETIME", offset.to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ("FAKETIME_DONT_RESET", "1".to_string()),
    ])
}

/// Copies the store directory `from` (flat) to `to`, replacing it.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("create the copy");
    for e in std::fs::read_dir(from).expect("read the store") {
        let e = e.expect("a store file");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a store file");
    }
}

/// Puts the copy in `backup` in the place of the store directory `dir`
/// (the replaced one is moved aside, as a restore tool keeps it).
pub fn restore(dir: &Path, backup: &Path) {
    let aside = dir.with_file_name(format!(
        "{}-replaced",
        dir.file_name()
            .expect("a store directory")
            .to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&aside);
    std::fs::rename(dir, &aside).expect("move the store aside");
    copy_dir(backup, dir);
}
