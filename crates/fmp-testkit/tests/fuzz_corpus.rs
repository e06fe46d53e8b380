//! CI runs the fuzz corpus, not the fuzzer: every file of `fuzz/seeds/T/`
//! and `fuzz/regressions/T/` (and `fuzz/corpus/T/` where a local fuzz run
//! left one) goes through the same entry point as the libFuzzer target T.
//! A crash found by `fuzz/run.sh` is kept in `fuzz/regressions/T/` and
//! fails here until it is fixed.
//!
//! `FMP_WRITE_SEEDS=1 cargo test -p fmp-testkit --test fuzz_corpus` rewrites
//! the seeds from the current wire format.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};

use fmp_core::store::Store;
use fmp_sync::{AuthorInfo, Client, StaticTrust, respond};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut n = 0;
    for sub in ["seeds", "regressions", "corpus"] {
        let dir = fuzz_dir().join(sub).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && !p.ends_with(".gitkeep"))
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(
                r.is_ok(),
                "{target}: {} fails its fuzz entry point",
                f.display()
            );
            n += 1;
        }
    }
    n
}

fn write_seeds() {
    let seeds = fuzz_dir().join("seeds");
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::init(&tmp.path().join("a"), "a").unwrap();
    let b = Store::init(&tmp.path().join("b"), "b").unwrap();
    let mut trust = StaticTrust::new(true);
    for s in [&a, &b] {
        trust.insert(
            s.identity().device_id,
            AuthorInfo {
                public_key: s.identity().public_key().to_vec(),
                fmps: None,
                may_enroll: true,
                role: fmp_sync::Role::Hq,
            },
        );
    }
    for i in 0..3 {
        let mut sub = fmp_core::example_submission();
        sub.notes = format!("seed {i}");
        a.record(sub).unwrap();
    }
    let mut client = Client::new(&a, &trust, b.identity().device_id).with_max_bytes(4096);
    let mut k = 0;
    while let Some(req) = client.next_request().unwrap() {
        let resp = respond(&b, &trust, &req).unwrap();
        std::fs::write(seeds.join(format!("wire/request-{k}")), &req).unwrap();
        std::fs::write(seeds.join(format!("wire/response-{k}")), &resp).unwrap();
        // Route byte 0x04: signed POST /v1/sync.
        let mut hub = vec![0x04];
        hub.extend_from_slice(&req);
        std::fs::write(seeds.join(format!("hub_request/sync-{k}")), &hub).unwrap();
        client.handle_response(&resp).unwrap();
        k += 1;
    }
    let json = serde_json::to_string_pretty(&fmp_core::example_submission().to_value()).unwrap();
    std::fs::write(seeds.join("submission/example.json"), &json).unwrap();
    let mut bad = fmp_core::example_submission().to_value();
    bad["people"]["adult_male"] = serde_json::json!(-3);
    bad["nationalities"] = serde_json::json!({"XXX": 4});
    std::fs::write(seeds.join("submission/invalid.json"), bad.to_string()).unwrap();
    std::fs::write(
        seeds.join("hub_request/join-garbage"),
        b"\x05{\"code\":\"ABCD\",\"name\":\"x\",\"public_key\":\"00\"}",
    )
    .unwrap();
    std::fs::write(seeds.join("hub_request/hub-info"), b"\x02").unwrap();
    std::fs::write(seeds.join("hub_request/unsigned-sync"), b"\x00\x01Qgarbage").unwrap();
}

#[test]
fn every_seed_and_regression_passes_its_fuzz_entry_point() {
    if std::env::var_os("FMP_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let wire = replay("wire", fmp_testkit::fuzz::wire);
    let sub = replay("submission", fmp_testkit::fuzz::submission);
    let hub = replay("hub_request", fmp_testkit::fuzz::hub_request);
    assert!(
        wire >= 2 && sub >= 2 && hub >= 3,
        "seeds missing: wire {wire}, submission {sub}, hub {hub}"
    );
}

#[test]
fn the_entry_points_catch_what_they_should() {
    // Damaged input is an error, never a panic; empty input too.
    for f in [
        fmp_testkit::fuzz::wire,
        fmp_testkit::fuzz::submission,
        fmp_testkit::fuzz::hub_request,
    ] {
        f(b"");
        f(&[1, b'Q', 0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff]);
    }
}
