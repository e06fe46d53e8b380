//! Stores restored from a backup of their directory: a phone reinstalled
//! from yesterday's copy, a hub restored from an older disk. Real `fmp`
//! processes, a real hub on loopback; the backup is a copy of the store
//! directory taken while no process used it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::collections::HashSet;
use std::path::Path;

use support::*;

fn jsonl(store: &Path) -> Vec<serde_json::Value> {
    fmp(&["list", "--store", s(store), "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(store: &Path) -> Vec<String> {
    jsonl(store)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn record(store: &Path, n: usize, tag: &str) -> Vec<String> {
    let out = fmp_in(
        &["record", "--store", s(store)],
        Some(&submissions("ML-GOG", n, tag)),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn status_json(store: &Path) -> serde_json::Value {
    serde_json::from_str(&fmp(&["status", "--store", s(store), "--json"])).unwrap()
}

#[test]
fn a_phone_restored_from_a_backup_takes_back_what_it_sent_since_and_edits_on() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "gao-hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "gogui-phone-1");
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    let first = record(&phone, 15, "before");
    assert_eq!(first.len(), 15);
    fmp(&["sync", "--store", s(&phone)]);
    let backup = tmp.path().join("backup");
    copy_dir(&phone, &backup);

    record(&phone, 5, "after");
    fmp(&[
        "edit",
        "--store",
        s(&phone),
        &first[0],
        r#"{"notes":"bus from Kayes"}"#,
    ]);
    fmp(&["sync", "--store", s(&phone)]);
    assert_eq!(ids(&hub).len(), 20);

    restore(&phone, &backup);
    assert_eq!(ids(&phone).len(), 15);
    // Its database file is another than the one it ran from: it knows it
    // was put back from a copy before any sync.
    let before = fmp(&["status", "--store", s(&phone)]);
    assert!(
        before.contains("restored from an older copy: detected ")
            && before.contains("not healed yet"),
        "{before}"
    );
    assert!(status_json(&phone)["restored"]["healed_at"].is_null());

    fmp(&["sync", "--store", s(&phone)]);
    assert_eq!(ids(&phone).len(), 20, "the restored phone took back its 5");
    let st = fmp(&["status", "--store", s(&phone)]);
    assert!(
        st.contains("restored from an older copy: detected ")
            && st.contains("healed: 6 change(s) taken back, writing as actor epoch 1"),
        "{st}"
    );
    let js = status_json(&phone);
    assert_eq!(js["restored"]["taken_back"], 6, "{js}");
    assert_eq!(js["restored"]["epoch"], 1, "{js}");
    assert!(js["restored"]["healed_at"].is_string(), "{js}");
    assert!(js["pending"].is_i64(), "existing fields stay: {js}");

    // The original edited record 0 after the backup; the restored phone
    // edits it again: the hub takes it (no sequence number used twice).
    fmp(&[
        "edit",
        "--store",
        s(&phone),
        &first[0],
        r#"{"notes":"bus from Kayes, 12 aboard"}"#,
    ]);
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(!out.contains("refused"), "{out}");
    let st = fmp(&["status", "--store", s(&phone)]);
    assert!(st.contains("quarantined: none"), "{st}");
    let shown = fmp(&["show", "--store", s(&hub), &first[0]]);
    assert!(shown.contains("bus from Kayes, 12 aboard"), "{shown}");
    assert_eq!(jsonl(&phone), jsonl(&hub), "hub and phone converge");
    assert!(srv.stop());
}

#[test]
fn a_hub_restored_from_an_older_copy_gets_back_what_its_phones_and_hq_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let hub = init(tmp.path(), "gao-hub");
    enroll(&hq, &hub, &hq_srv.url, &["ML-GOG"], &["--hub"]);
    let srv = Served::start(&hub, &[]);
    let phones = [init(tmp.path(), "gogui-1"), init(tmp.path(), "gogui-2")];
    for p in &phones {
        enroll(&hub, p, &srv.url, &["ML-GOG"], &[]);
    }
    let sync_all = |url: &str| {
        for p in [&phones[0], &phones[1], &phones[0]] {
            let out = fmp(&["sync", "--store", s(p), "--hub", url]);
            assert!(!out.contains("refused"), "{out}");
        }
        fmp(&["sync", "--store", s(&hub)]);
    };
    for (i, p) in phones.iter().enumerate() {
        record(p, 5, &format!("p{i} before"));
    }
    sync_all(&srv.url);
    assert!(srv.stop());
    let backup = tmp.path().join("hub-backup");
    copy_dir(&hub, &backup);

    let srv = Served::start(&hub, &[]);
    for (i, p) in phones.iter().enumerate() {
        record(p, 5, &format!("p{i} after"));
    }
    sync_all(&srv.url);
    assert_eq!(ids(&hub).len(), 20);
    assert_eq!(ids(&hq).len(), 20);
    assert!(srv.stop());

    restore(&hub, &backup);
    assert_eq!(ids(&hub).len(), 10, "the backup holds 10");
    let srv = Served::start(&hub, &[]);
    // One more record after the restore, so something is new for the others.
    record(&phones[1], 1, "p1 late");
    sync_all(&srv.url);
    sync_all(&srv.url);

    let at_hub = ids(&hub);
    assert_eq!(at_hub.len(), 21, "every record back at the hub");
    assert_eq!(at_hub.iter().collect::<HashSet<_>>().len(), 21, "once each");
    let at_hq = ids(&hq);
    assert_eq!(at_hq.len(), 21);
    assert_eq!(at_hq.iter().collect::<HashSet<_>>().len(), 21);
    for p in &phones {
        assert_eq!(jsonl(p), jsonl(&hub), "phone and hub converge");
    }
    assert_eq!(jsonl(&hq), jsonl(&hub), "HQ and hub converge");
    let st = fmp(&["status", "--store", s(&hub)]);
    assert!(
        st.contains("restored from an older copy: detected "),
        "{st}"
    );
    assert!(status_json(&hub)["restored"]["epoch"].as_u64().unwrap() >= 1);
    assert!(srv.stop());
    assert!(hq_srv.stop());
}

/// A phone copied while changes were still unsent, restored after they
/// went, records before its next sync: it seals those old changes into
/// bundles again, so the hub holds two bundles listing one change. The
/// hub, its other phones and a phone enrolled later still sync, and every
/// record is there once.
#[test]
fn a_restored_phone_recording_before_its_first_sync_does_not_block_its_fmp() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "kayes-hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "gogui-phone-1");
    let colleague = init(tmp.path(), "gogui-phone-2");
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    enroll(&hub, &colleague, &srv.url, &["ML-GOG"], &[]);
    let mut all = record(&phone, 4, "unsent");
    let backup = tmp.path().join("backup");
    copy_dir(&phone, &backup);
    fmp(&["sync", "--store", s(&phone)]);
    restore(&phone, &backup);
    all.extend(record(&phone, 1, "after-restore"));
    fmp(&["sync", "--store", s(&phone)]);
    all.extend(record(&colleague, 2, "colleague"));
    for store in [&colleague, &phone, &colleague] {
        let out = fmp_in(&["sync", "--store", s(store)], None);
        assert!(
            out.status.success(),
            "{}: {}",
            store.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let late = init(tmp.path(), "gogui-phone-3");
    enroll(&hub, &late, &srv.url, &["ML-GOG"], &[]);
    fmp(&["sync", "--store", s(&late)]);
    let want: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(want.len(), 7);
    for store in [&hub, &phone, &colleague, &late] {
        let got = ids(store);
        assert_eq!(got.len(), 7, "{}: {got:?}", store.display());
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), want);
    }
}

#[test]
fn a_hub_restored_from_a_copy_older_than_a_phone_s_enrollment_takes_the_phone_back() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let hub = init(tmp.path(), "gao-hub");
    enroll(&hq, &hub, &hq_srv.url, &["ML-GOG"], &["--hub"]);
    // The copy is taken before the phone joins.
    let backup = tmp.path().join("hub-backup");
    copy_dir(&hub, &backup);
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "gogui-1");
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    let first = record(&phone, 3, "before");
    fmp(&["sync", "--store", s(&phone)]);
    assert!(srv.stop());
    restore(&hub, &backup);
    let devices = fmp(&["devices", "--store", s(&hub)]);
    assert!(
        !devices.contains("gogui-1"),
        "the copy predates it: {devices}"
    );
    let srv = Served::start(&hub, &[]);
    let later = record(&phone, 2, "after");
    // The phone's next sync is taken: the hub re-enrolls it from the
    // certificate it issued, and gets back what it lost.
    let out = fmp(&["sync", "--store", s(&phone), "--hub", &srv.url]);
    assert!(out.starts_with("synced:"), "{out}");
    fmp(&["sync", "--store", s(&phone), "--hub", &srv.url]);
    let devices = fmp(&["devices", "--store", s(&hub)]);
    assert!(devices.contains("gogui-1"), "{devices}");
    fmp(&["sync", "--store", s(&hub)]);
    let mut want: Vec<String> = first.into_iter().chain(later).collect();
    want.sort();
    for store in [&hub, &hq] {
        let mut got = ids(store);
        got.sort();
        assert_eq!(got, want, "{}", store.display());
    }
    let st = status_json(&phone);
    assert!(st["refused_by_hub"].is_null(), "{st}");
    assert!(srv.stop());
    assert!(hq_srv.stop());
}

/// One `fmp serve` per store: a second one on the same store is refused
/// at start (it would keep its own nonce cache, so a replayed request
/// could be served by each), and the first serves on. A clean stop leaves
/// the whole store in its database file: a backup of `fmp.sqlite3` and the
/// key alone, taken after the stop, holds every record.
#[test]
fn a_second_serve_on_a_store_is_refused_and_a_clean_stop_leaves_the_file_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "gao-hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "gogui-phone-1");
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    record(&phone, 12, "first");
    fmp(&["sync", "--store", s(&phone)]);

    let mut second = std::process::Command::new(fmp_bin())
        .args(["serve", "--store", s(&hub), "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..300 {
        if let Some(status) = second.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Some(status) = exited else {
        let _ = second.kill();
        panic!("a second `fmp serve` on the same store kept running");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("already serving the store"), "{err}");

    record(&phone, 3, "second");
    fmp(&["sync", "--store", s(&phone)]);
    assert_eq!(ids(&hub).len(), 15, "the first hub serves on");
    assert!(srv.stop(), "a clean stop");

    let copy = tmp.path().join("file-only");
    std::fs::create_dir(&copy).unwrap();
    for f in ["fmp.sqlite3", "device.key"] {
        std::fs::copy(hub.join(f), copy.join(f)).unwrap();
    }
    assert_eq!(
        ids(&copy).len(),
        15,
        "the database file alone holds every record"
    );
}
