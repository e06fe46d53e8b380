//! Bandwidth shaping in the kernel: two network namespaces of our own
//! joined by a veth pair, each end shaped by a `tbf` qdisc (no `netem`
//! on these machines, so no latency here: the proxy models that).
//!
//! The host's own interfaces and routes are never touched: both ends live
//! in namespaces this module creates (`fmpt<pid>a`, `fmpt<pid>b`) and
//! deletes on drop, addressed as 10.231.0.1 and 10.231.0.2. Where
//! `ip netns` is not permitted (no root, no CAP_NET_ADMIN, no `ip`),
//! [`ShapedLink::create`] returns `None` and the caller skips.

use std::process::{Command, Output};

/// Two namespaces joined by a veth pair shaped with `tbf`.
#[derive(Debug)]
pub struct ShapedLink {
    /// The namespace of side A (e.g. the phone), address [`ShapedLink::A_ADDR`].
    pub a: String,
    /// The namespace of side B (e.g. the hub), address [`ShapedLink::B_ADDR`].
    pub b: String,
}

fn ip(args: &[&str]) -> Option<Output> {
    Command::new("ip").args(args).output().ok()
}

fn ok(args: &[&str]) -> bool {
    ip(args).is_some_and(|o| o.status.success())
}

impl ShapedLink {
    /// Address of side A.
    pub const A_ADDR: &'static str = "10.231.0.1";
    /// Address of side B.
    pub const B_ADDR: &'static str = "10.231.0.2";

    /// Creates the pair shaped at `kbit` kilobits per second each way, or
    /// `None` (with the reason on stderr) where namespaces are not permitted.
    pub fn create(kbit: u32) -> Option<ShapedLink> {
        let pid = std::process::id();
        let (a, b) = (format!("fmpt{pid}a"), format!("fmpt{pid}b"));
        let (va, vb) = (format!("fv{pid}a"), format!("fv{pid}b"));
        if !ok(&["netns", "add", &a]) {
            eprintln!("skipping the namespace part: `ip netns add` is not permitted here");
            return None;
        }
        let link = ShapedLink { a, b };
        let rate = format!("{kbit}kbit");
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &link.b],
            vec![
                "link", "add", &va, "netns", &link.a, "type", "veth", "peer", "name", &vb, "netns",
                &link.b,
            ],
            vec!["-n", &link.a, "addr", "add", "10.231.0.1/30", "dev", &va],
            vec!["-n", &link.b, "addr", "add", "10.231.0.2/30", "dev", &vb],
            vec!["-n", &link.a, "link", "set", &va, "up"],
            vec!["-n", &link.b, "link", "set", &vb, "up"],
            vec!["-n", &link.a, "link", "set", "lo", "up"],
            vec!["-n", &link.b, "link", "set", "lo", "up"],
        ];
        for s in &steps {
            if !ok(s) {
                eprintln!("skipping the namespace part: `ip {}` failed", s.join(" "));
                return None;
            }
        }
        for (ns, dev) in [(&link.a, &va), (&link.b, &vb)] {
            let tc = Command::new("ip")
                .args([
                    "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                ])
                .args(["rate", &rate, "burst", "4kb", "latency", "400ms"])
                .output();
            if !tc.is_ok_and(|o| o.status.success()) {
                eprintln!("skipping the namespace part: tc tbf is not available");
                return None;
            }
        }
        Some(link)
    }

    /// A command run inside namespace `ns` (`ip netns exec NS PROGRAM`).
    pub fn command(ns: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.arg("netns").arg("exec").arg(ns).arg(program);
        c
    }

    /// Bytes the `tbf` qdisc of side `ns` has sent (from `tc -s`).
    pub fn shaped_bytes(ns: &str) -> u64 {
        let Ok(out) = Command::new("ip")
            .args(["netns", "exec", ns, "tc", "-s", "qdisc", "show"])
            .output()
        else {
            return 0;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut in_tbf = false;
        for line in text.lines() {
            if line.starts_with("qdisc") {
                in_tbf = line.contains("tbf");
            } else if in_tbf && let Some(rest) = line.trim().strip_prefix("Sent ") {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
        }
        0
    }
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}
