//! The hardened hub as a real `fmp serve` process, from outside: a forced
//! internal error is logged with its status and cause (JSON log file), and
//! a slowloris (hundreds of half-sent connections from several addresses,
//! more than the caps) neither starves a real phone's `fmp sync` nor grows
//! the hub's memory past a generous bound.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// A running `fmp serve`, its stderr read in a thread (so its log never
/// fills the pipe).
struct Hub {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

/// `fmp serve` with `extra` flags; the hub and its URL.
fn serve(store: &Path, extra: &[&str]) -> (Hub, String) {
    let mut args = vec!["serve", "--store", s(store), "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = Command::new(fmp_bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    let mut err = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    (Hub { child, stderr }, url)
}

fn stop(mut hub: Hub) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &hub.child.id().to_string()])
        .status();
    let status = hub.child.wait().expect("wait");
    assert!(status.success(), "the hub exits cleanly");
    hub.stderr.join().expect("stderr")
}

fn vm_rss_kib(pid: u32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    st.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn an_internal_error_is_logged_with_status_500_and_its_cause() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = init(tmp.path(), "hub");
    let phone = init(tmp.path(), "phone");
    let log = tmp.path().join("hub.log");
    let (child, url) = serve(&hub, &["--log-format", "json", "--log", s(&log)]);
    enroll(&hub, &phone, &url, &["ML-GOG"], &[]);
    fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-GOG", 2, "logged")),
    );
    // Break the hub's store under it: its replay cache is gone.
    let store = fmp_core::store::Store::open(&hub).expect("open");
    fmp_core::store::testing::drop_nonce_cache(&store).expect("drop");
    drop(store);
    let out = fmp_in(
        &[
            "sync",
            "--store",
            s(&phone),
            "--retries",
            "1",
            "--retry-delay-ms",
            "10",
        ],
        None,
    );
    assert!(!out.status.success(), "the sync fails on the hub's error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("500"), "{err}");
    let stderr = stop(child);
    assert!(
        stderr.contains(&format!("logging to {} (json)", log.display())),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&log).expect("log file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let failed: Vec<&serde_json::Value> = lines.iter().filter(|l| l["status"] == 500).collect();
    assert!(!failed.is_empty(), "a 500 is logged:\n{text}");
    for l in &failed {
        assert_eq!(l["level"], "ERROR", "{l}");
        assert_eq!(l["route"], "/v1/sync", "{l}");
        assert_eq!(l["error"], "internal", "{l}");
        let cause = l["cause"].as_str().unwrap_or_default();
        assert!(cause.contains("request_nonces"), "the cause is named: {l}");
        assert!(l["device"].as_str().unwrap_or_default().len() == 36, "{l}");
        assert!(l["ms"].is_u64() && l["bytes_in"].as_u64() > Some(0), "{l}");
    }
    // The join before it is logged too, as a success.
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == "/v1/join" && l["status"] == 200),
        "{text}"
    );
}

/// A connection to `to` from the loopback address `from`, with half a
/// request sent (headers never finished).
fn half_sent(rt: &tokio::runtime::Runtime, from: &str, to: SocketAddr) -> std::net::TcpStream {
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{from}:0").parse().expect("addr"))?;
            sock.connect(to).await
        })
        .expect("connect");
    let mut s = s.into_std().expect("std");
    s.set_nonblocking(false).expect("blocking");
    let _ = s.write_all(b"POST /v1/sync HTTP/1.1\r\nHost: hub\r\nX-Fmp-Dev");
    s
}

#[test]
fn a_slowloris_does_not_starve_a_phone_or_grow_the_hub() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = init(tmp.path(), "hub");
    let phone = init(tmp.path(), "phone");
    let (child, url) = serve(
        &hub,
        &[
            "--max-connections",
            "64",
            "--max-connections-per-ip",
            "16",
            "--header-timeout",
            "2",
        ],
    );
    enroll(&hub, &phone, &url, &["ML-GOG"], &[]);
    fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-GOG", 20, "slowloris")),
    );
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .expect("http")
        .parse()
        .expect("addr");
    let before = vm_rss_kib(child.child.id());

    // 400 connections from 10 addresses: 40 each, the caps are 16 per
    // address and 64 in all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut conns = Vec::new();
    for i in 0..400 {
        let from = format!("127.0.0.{}", 2 + i % 10);
        conns.push(half_sent(&rt, &from, addr));
    }
    let mut busy = 0;
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        if matches!(c.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 503")) {
            busy += 1;
        }
    }
    assert!(busy >= 300, "past the caps: 503 busy ({busy} of 400)");
    let during = vm_rss_kib(child.child.id());

    // The phone syncs through it (the half-sent ones are dropped after 2 s,
    // it retries on 503).
    let out = fmp(&[
        "sync",
        "--store",
        s(&phone),
        "--retries",
        "10",
        "--retry-delay-ms",
        "300",
    ]);
    assert!(out.contains("sent 20"), "{out}");
    let after = vm_rss_kib(child.child.id());
    eprintln!(
        "hub VmRSS: {before} KiB before, {during} KiB with 400 connections, {after} KiB after the sync"
    );
    assert!(
        during < before + 64 * 1024 && after < before + 64 * 1024,
        "the hub's memory stays bounded: {before} → {during} → {after} KiB"
    );
    drop(conns);
    stop(child);
}
