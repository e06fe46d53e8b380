//! Durability: `fmp record` prints an id only after the store committed it.
//! A child records in a loop; we SIGKILL it at random moments, reopen the
//! store and check every printed id is present, intact, and the database
//! passes `PRAGMA integrity_check`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;

const SAMPLE: &str = r#"{"form":"dtm-fmp-flow","form_version":1,"fmp":"ML-GOG","observed_at":"2020-06-14T09:30:00Z","direction":"outgoing","transport":"truck","departure":{"country":"MLI","place":"Kayes"},"next_destination":{"country":"MRT","place":"Nouakchott"},"final_destination":{"country":"MRT"},"movement_type":"economic_long_term","people":{"adult_male":NNN,"adult_female":1,"minor_male":0,"minor_female":0},"vulnerable":{"under5":0,"elderly":0,"disability":0,"pregnant":0},"nationalities":{"MLI":NNN,"SEN":1},"notes":"crash test"}"#;

#[test]
fn sigkill_during_record_loses_nothing_that_was_acknowledged() {
    let bin = env!("CARGO_BIN_EXE_fmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let store = tmp.path().join("store");
    let store_s = store.to_str().expect("utf8").to_string();
    let out = Command::new(bin)
        .args(["init", "--store", &store_s])
        .output()
        .expect("init");
    assert!(out.status.success());

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0F_A1_1E);
    // id -> number of adult men it was recorded with (its content check).
    let mut acknowledged: Vec<(String, u32)> = Vec::new();
    let kills = 24;
    for round in 0..kills {
        let mut child = Command::new(bin)
            .args(["record", "--store", &store_s])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        // Feed lines with distinct counts so each id's content is checkable.
        let base = 1000 * (round + 1);
        let writer = std::thread::spawn(move || {
            for i in 0..100_000u32 {
                let line = SAMPLE.replace("NNN", &(base + i % 1000).to_string()) + "\n";
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let wait = Duration::from_millis(rng.random_range(20..400));
        let start = Instant::now();
        let mut lines = Vec::new();
        while start.elapsed() < wait {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(5)) {
                lines.push(l);
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let _ = writer.join();
        let _ = reader.join();
        lines.extend(rx.try_iter());
        // The n-th printed id is the n-th line fed (every line is valid).
        for (n, id) in lines.into_iter().enumerate() {
            let n = u32::try_from(n).expect("small");
            acknowledged.push((id, base + n % 1000));
        }
    }
    assert!(
        acknowledged.len() > kills as usize,
        "the loop recorded something: {}",
        acknowledged.len()
    );

    let out = Command::new(bin)
        .args(["list", "--store", &store_s, "--format", "json"])
        .output()
        .expect("list");
    assert!(
        out.status.success(),
        "store reopens after kills: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let by_id: std::collections::HashMap<&str, &Value> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|v| (v["id"].as_str().expect("id"), v))
        .collect();
    for (id, men) in &acknowledged {
        let v = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged id {id} lost"));
        assert_eq!(v["people"]["adult_male"], *men, "content of {id}");
        assert_eq!(v["nationalities"]["MLI"], *men);
    }
    let check = fmp_core::store::testing::integrity_check(&store).expect("check");
    assert_eq!(check, "ok");
}
