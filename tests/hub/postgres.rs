//! HQ on PostgreSQL with two `fmp serve` processes on one database (one
//! started from the store directory, one from a copy of it, on different
//! ports, as behind a load balancer): phones enroll through either, a code
//! enrolls one device whichever process sees it, phones push through
//! either and pull through the other, and every change lands once. Runs
//! against the tests' throwaway cluster (`FMP_TEST_PG`); skipped with a
//! line when there is none, never in CI (`FMP_REQUIRE_PG`).

#![allow(clippy::unwrap_used)]

mod support;

use fmp_core::store::testing::PgDatabase;
use support::*;

fn list(store: &std::path::Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&fmp(&["list", "--store", s(store), "--format", "json"])).unwrap()
}

#[test]
fn two_serve_processes_on_one_postgresql_database_serve_phones_as_one_hub() {
    let Some(db) = PgDatabase::create("two serve processes") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hq = root.join("hq");
    fmp(&[
        "init",
        "--store",
        s(&hq),
        "--name",
        "hq",
        "--database",
        &db.url,
    ]);
    let hq2 = root.join("hq-copy");
    copy_dir(&hq, &hq2);
    let one = Served::start(&hq, &[]);
    let two = Served::start(&hq2, &[]);

    // A code made by one process, used through the other; the same code
    // offered to the first process again is refused.
    let phones: Vec<_> = ["gogui-1", "gogui-2", "gogui-3"]
        .iter()
        .map(|n| init(root, n))
        .collect();
    let c = code(&hq, &["ML-GOG"], &[]);
    fmp(&[
        "join",
        "--store",
        s(&phones[0]),
        "--hub",
        &two.url,
        "--code",
        &c,
    ]);
    let again = fmp_in(
        &[
            "join",
            "--store",
            s(&phones[1]),
            "--hub",
            &one.url,
            "--code",
            &c,
        ],
        None,
    );
    assert!(!again.status.success(), "a code enrolls one device");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let c = code(&hq2, &["ML-GOG"], &[]);
    fmp(&[
        "join",
        "--store",
        s(&phones[1]),
        "--hub",
        &one.url,
        "--code",
        &c,
    ]);
    let c = code(&hq, &["ML-GOG"], &[]);
    fmp(&[
        "join",
        "--store",
        s(&phones[2]),
        "--hub",
        &two.url,
        "--code",
        &c,
    ]);

    // Each phone records and pushes through one process, all at once.
    for (i, p) in phones.iter().enumerate() {
        let out = fmp_in(
            &["record", "--store", s(p)],
            Some(&submissions("ML-GOG", 8, &format!("p{i}"))),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::scope(|sc| {
        for (i, p) in phones.iter().enumerate() {
            let url = if i % 2 == 0 { &one.url } else { &two.url };
            sc.spawn(move || {
                fmp(&["sync", "--store", s(p), "--hub", url]);
            });
        }
    });
    // Then each syncs through the other process: it pulls what the others
    // pushed, and its cursors (kept in the database) hold for both.
    for (i, p) in phones.iter().enumerate() {
        let url = if i % 2 == 0 { &two.url } else { &one.url };
        fmp(&["sync", "--store", s(p), "--hub", url]);
    }
    for (i, p) in phones.iter().enumerate() {
        let url = if i % 2 == 0 { &one.url } else { &two.url };
        fmp(&["sync", "--store", s(p), "--hub", url]);
    }
    let at_hq = list(&hq);
    assert_eq!(at_hq.len(), 24, "every submission once");
    let mut ids: Vec<&str> = at_hq.iter().map(|v| v["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24);
    assert_eq!(list(&hq2), at_hq, "both processes read one database");
    for p in &phones {
        assert_eq!(list(p), at_hq, "{}", p.display());
    }
    assert!(one.stop() && two.stop(), "clean stops");
}
