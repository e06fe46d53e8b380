//! The README's main job: `fmp demo` runs the whole device → regional hub →
//! HQ chain over loopback and HQ's June report has the seed's figures.

use std::process::Command;

#[test]
fn demo_runs_the_whole_chain_and_hq_gets_the_seed_figures() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(["demo", "--dir", dir.to_str().expect("utf8")])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("7555 incoming, 4859 outgoing, 12414 in total; 9 active FMPs"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report-2020-06.json")).expect("json"))
            .expect("parse");
    assert_eq!(report["national"]["total"], 12414);
    for ext in ["md", "html"] {
        assert!(dir.join(format!("report-2020-06.{ext}")).is_file());
    }
    // Every phone's submissions reached HQ exactly once: HQ's count equals the phones' sum.
    let count = |d: &std::path::Path| -> i64 {
        let store = fmp_core::store::Store::open(d).expect("db");
        fmp_core::store::testing::count_rows(&store, "submissions").expect("count")
    };
    let phones: i64 = std::fs::read_dir(dir.join("phones"))
        .expect("phones")
        .map(|e| count(&e.expect("entry").path()))
        .sum();
    assert!(phones > 1000);
    assert_eq!(count(&dir.join("hq")), phones);
    // A second run replaces the previous demo.
    let again = Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(["demo", "--dir", dir.to_str().expect("utf8")])
        .output()
        .expect("rerun");
    assert!(again.status.success());
    // It never deletes a directory that is not a demo.
    let other = tmp.path().join("precious");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("data.txt"), "keep").expect("write");
    let refused = Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(["demo", "--dir", other.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(other.join("data.txt").exists());
}
