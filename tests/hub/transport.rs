//! A sync cut mid-transfer resumes on the next `fmp sync` with nothing lost
//! and nothing duplicated; retries ride out cuts; refused changes are
//! quarantined on the phone and never block the rest.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use support::*;

fn count(store: &std::path::Path) -> usize {
    let out = fmp(&["list", "--store", s(store), "--format", "json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .len()
}

fn changes(store: &std::path::Path) -> i64 {
    let s = fmp_core::store::Store::open(store).unwrap();
    fmp_core::store::testing::count_rows(&s, "changes").unwrap()
}

#[test]
fn a_cut_sync_resumes_on_the_next_sync_for_several_cut_points() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let upstream = srv.url.trim_start_matches("http://").to_string();
    let mut expected = 0;
    for (i, after) in [150u64, 900, 2500, 5000].into_iter().enumerate() {
        let phone = init(tmp.path(), &format!("phone-{i}"));
        enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
        let out = fmp_in(
            &["record", "--store", s(&phone)],
            Some(&submissions("ML-GOG", 30, &format!("cut{i}"))),
        );
        assert!(out.status.success());
        let proxy = FaultProxy::start(
            &upstream,
            Faults::seeded(i as u64).cut_after(after..=after, None),
        )
        .unwrap();
        let cut = fmp_in(
            &[
                "sync",
                "--store",
                s(&phone),
                "--hub",
                &format!("http://{}", proxy.addr),
                "--retries",
                "0",
                "--max-bytes",
                "4096",
            ],
            None,
        );
        assert!(!cut.status.success(), "cut after {after} bytes must fail");
        assert!(String::from_utf8_lossy(&cut.stderr).contains("cannot reach the hub"));
        let out = fmp(&["sync", "--store", s(&phone), "--max-bytes", "4096"]);
        assert!(out.contains("synced"), "{out}");
        expected += 30;
        assert_eq!(
            count(&hub),
            expected,
            "nothing lost, nothing duplicated (cut after {after})"
        );
        assert_eq!(count(&phone), expected, "the phone pulled everything too");
        assert_eq!(changes(&hub), expected as i64);
        assert_eq!(changes(&phone), expected as i64);
        let st = fmp(&["status", "--store", s(&phone), "--json"]);
        let st: serde_json::Value = serde_json::from_str(&st).unwrap();
        assert_eq!(st["pending"], 0, "{st}");
    }
}

#[test]
fn retries_ride_out_cut_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "phone");
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-GOG", 20, "r")),
    );
    assert!(out.status.success());
    let proxy =
        FaultProxy::start(&srv.url, Faults::seeded(7).cut_after(700..=700, Some(3))).unwrap();
    let out = fmp_in(
        &[
            "sync",
            "--store",
            s(&phone),
            "--hub",
            &format!("http://{}", proxy.addr),
            "--retry-delay-ms",
            "10",
            "--max-bytes",
            "4096",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("retries 3"), "{stdout}");
    assert!(
        stderr.contains("retry 1"),
        "plain progress lines off a terminal: {stderr}"
    );
    assert_eq!(count(&hub), 20);
}

/// A push with one change outside the phone's FMPs among 100 is uploaded
/// once: the hub stores the rest and answers the refusal in its 200 (the
/// client always asks for partial application), so the bytes that crossed
/// the link up are one request's, not the same request twice.
#[test]
fn a_refused_change_costs_no_second_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "phone");
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-HER", 1, "wrong")),
    );
    assert!(out.status.success());
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-GOG", 100, "right")),
    );
    assert!(out.status.success());
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    let proxy = FaultProxy::start(&srv.url, Faults::seeded(11)).unwrap();
    let out = fmp(&["sync", "--store", s(&phone), "--hub", &proxy.url()]);
    assert!(
        out.contains("sent 100,") && out.contains("refused by the hub 1"),
        "{out}"
    );
    assert!(out.contains("round trips 1"), "{out}");
    let sent: u64 = out
        .split("bytes ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let up = proxy
        .stats
        .bytes_up
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent > 2_000, "a body worth not sending twice: {out}");
    // One request: its body plus one HTTP head (well under 1 KB).
    assert!(
        up < sent + 1_000,
        "{up} bytes went up for a {sent}-byte request: {out}"
    );
    assert_eq!(count(&hub), 100);
    let st = fmp(&["status", "--store", s(&phone)]);
    assert!(st.contains("quarantined: 1"), "{st}");
}

/// How many times HQ's (or a hub's) store holds submission `id`, and its FMP.
fn held(store: &std::path::Path, id: &str) -> (usize, Option<String>) {
    let out = fmp(&["list", "--store", s(store), "--format", "json"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let found: Vec<_> = all.iter().filter(|v| v["id"] == id).collect();
    (
        found.len(),
        found
            .first()
            .map(|v| v["fmp"].as_str().unwrap().to_string()),
    )
}

#[test]
fn refused_changes_are_quarantined_and_do_not_block_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    enroll(&hq, &hub, &hq_srv.url, &["ML-GOG", "ML-HER"], &["--hub"]);
    let phone = init(tmp.path(), "phone");
    // Recorded offline before enrollment, one for another FMP.
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-HER", 1, "wrong")),
    );
    assert!(out.status.success());
    let wrong = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-GOG", 3, "right")),
    );
    assert!(out.status.success());
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);

    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(
        out.contains("sent 3,") && out.contains("refused by the hub 1"),
        "{out}"
    );
    assert_eq!(count(&hub), 3);
    let st = fmp(&["status", "--store", s(&phone)]);
    assert!(st.contains("quarantined: 1"), "{st}");
    assert!(
        st.contains(&wrong) && st.contains("may not write submissions of ML-HER"),
        "{st}"
    );
    // The hub keeps the refused change aside, visibly.
    let hub_st: serde_json::Value =
        serde_json::from_str(&fmp(&["status", "--store", s(&hub), "--json"])).unwrap();
    assert_eq!(hub_st["waiting"]["total"], 1, "{hub_st}");
    assert_eq!(hub_st["waiting"]["held_for_scope"], 1, "{hub_st}");
    let hub_st = fmp(&["status", "--store", s(&hub)]);
    assert!(hub_st.contains("1 held back for scope"), "{hub_st}");

    // Later records still flow.
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-GOG", 2, "later")),
    );
    assert!(out.status.success());
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(out.contains("sent 2,"), "{out}");
    assert_eq!(count(&hub), 5);
    assert_eq!(held(&hub, &wrong).0, 0);

    // Edited back into the phone's FMPs, the record is released…
    fmp(&["edit", "--store", s(&phone), &wrong, r#"{"fmp":"ML-GOG"}"#]);
    let st: serde_json::Value =
        serde_json::from_str(&fmp(&["status", "--store", s(&phone), "--json"])).unwrap();
    assert_eq!(st["quarantined"][0]["released"], true, "{st}");
    // …and the next sync delivers it, with the edit, exactly once.
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(!out.contains("refused"), "{out}");
    assert_eq!(count(&hub), 6);
    assert_eq!(held(&hub, &wrong), (1, Some("ML-GOG".to_string())));
    let st = fmp(&["status", "--store", s(&phone)]);
    assert!(st.contains("quarantined: none"), "{st}");
    let hub_st: serde_json::Value =
        serde_json::from_str(&fmp(&["status", "--store", s(&hub), "--json"])).unwrap();
    assert_eq!(hub_st["waiting"]["total"], 0, "{hub_st}");
    // A further sync sends nothing again.
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(out.contains("sent 0,"), "{out}");

    // The hub forwards it to HQ: there too once, with the edited FMP.
    let out = fmp(&["sync", "--store", s(&hub)]);
    assert!(!out.contains("refused"), "{out}");
    assert_eq!(count(&hq), 6);
    assert_eq!(held(&hq, &wrong), (1, Some("ML-GOG".to_string())));
    let hq_st: serde_json::Value =
        serde_json::from_str(&fmp(&["status", "--store", s(&hq), "--json"])).unwrap();
    assert_eq!(hq_st["waiting"]["total"], 0, "{hq_st}");
}

#[test]
fn a_join_whose_answer_is_cut_is_asked_again_and_enrolls_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let upstream = srv.url.trim_start_matches("http://").to_string();
    // The bytes of one join request, through a clean proxy, from a phone
    // whose name has the same length as the next one's.
    let clean = FaultProxy::start(&upstream, Faults::seeded(0)).unwrap();
    let a = init(tmp.path(), "phone-a");
    enroll(&hub, &a, &clean.url(), &["ML-GOG"], &[]);
    let request = clean.stats.bytes_up.load(SeqCst);
    assert!(request > 0, "{}", clean.describe());
    // The first connection is cut 40 bytes into the hub's answer: the hub
    // has enrolled the phone, the phone never heard it.
    let b = init(tmp.path(), "phone-b");
    let cb = code(&hub, &["ML-GOG"], &[]);
    let at = request + 40;
    let proxy =
        FaultProxy::start(&upstream, Faults::seeded(1).cut_after(at..=at, Some(1))).unwrap();
    let out = fmp_in(
        &[
            "join",
            "--store",
            s(&b),
            "--hub",
            &proxy.url(),
            "--code",
            &cb,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.describe()
    );
    assert_eq!(proxy.byte_cuts(), 1, "{}", proxy.describe());
    let devices: Vec<serde_json::Value> =
        serde_json::from_str(&fmp(&["devices", "--store", s(&hub), "--json"])).unwrap();
    let names: Vec<&str> = devices.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["phone-a", "phone-b"], "{devices:?}");
    // The phone works, and its code enrolls nobody else.
    let rec = fmp_in(
        &["record", "--store", s(&b)],
        Some(&submissions("ML-GOG", 3, "after-join")),
    );
    assert!(rec.status.success());
    fmp(&["sync", "--store", s(&b), "--hub", &srv.url]);
    assert_eq!(count(&hub), 3);
    let c = init(tmp.path(), "phone-c");
    let other = fmp_in(
        &["join", "--store", s(&c), "--hub", &srv.url, "--code", &cb],
        None,
    );
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

/// A pipelined sync both ways (the phone pushes 150 and pulls 90 another
/// phone left on the hub) through a link that cuts every connection after
/// a random 2–9 KB, for several seeds: a request sent ahead and the answer
/// being stored are lost or kept at random points; retries resume from
/// the stored cursors. Every change arrives exactly once, both ways.
#[test]
fn a_pipelined_sync_both_ways_cut_at_random_points_converges_every_change_once() {
    for seed in [3u64, 17, 29] {
        let tmp = tempfile::tempdir().unwrap();
        let hub = init(tmp.path(), "hub");
        let srv = Served::start(&hub, &[]);
        let other = init(tmp.path(), "other");
        enroll(&hub, &other, &srv.url, &["ML-GOG"], &[]);
        let out = fmp_in(
            &["record", "--store", s(&other)],
            Some(&submissions("ML-GOG", 90, "other")),
        );
        assert!(out.status.success());
        fmp(&["sync", "--store", s(&other)]);
        let phone = init(tmp.path(), "phone");
        enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
        let out = fmp_in(
            &["record", "--store", s(&phone)],
            Some(&submissions("ML-GOG", 150, &format!("cut {seed}"))),
        );
        assert!(out.status.success());
        let proxy = FaultProxy::start(
            &srv.url,
            Faults::seeded(seed).cut_after(2_000..=9_000, None),
        )
        .unwrap();
        let out = fmp(&[
            "sync",
            "--store",
            s(&phone),
            "--hub",
            &proxy.url(),
            "--retries",
            "100",
            "--retry-delay-ms",
            "5",
            "--max-bytes",
            "4096",
        ]);
        assert!(out.contains("synced"), "seed {seed}: {out}");
        assert!(
            proxy.byte_cuts() >= 2,
            "seed {seed}: the link did cut: {out}"
        );
        assert_eq!(count(&hub), 240, "seed {seed}: {out}");
        assert_eq!(count(&phone), 240, "seed {seed}: {out}");
        assert_eq!(changes(&hub), 240, "seed {seed}: every change once");
        assert_eq!(changes(&phone), 240, "seed {seed}: every change once");
        let again = fmp(&["sync", "--store", s(&phone)]);
        assert!(again.contains("sent 0,"), "seed {seed}: {again}");
    }
}
