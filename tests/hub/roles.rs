//! Roles and merged validity through the `fmp` binary: a hub served by
//! `fmp serve`, a phone that joined it with `fmp join`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use support::*;

fn one(fmp: &str) -> String {
    // 30 adult men, 2 women, 1 boy; BFA 31, MLI 2.
    submissions(fmp, 1, "merge")
}

fn status_json(store: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&fmp(&["status", "--store", s(store), "--json"])).unwrap()
}

#[test]
fn valid_concurrent_edits_merging_into_an_invalid_record_are_flagged_in_show_and_status_on_both() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "phone");
    let joined = enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    assert!(joined.contains("joined hub"), "{joined}");
    assert_eq!(status_json(&phone)["role"], "enumerator");
    let out = fmp_in(&["record", "--store", s(&phone)], Some(&one("ML-GOG")));
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    fmp(&["sync", "--store", s(&phone)]);

    // The enumerator's phone may not review, even its own record.
    let out = fmp_in(
        &["review", "--store", s(&phone), &id, "--status", "approved"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("enumerator"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each adds the man they missed: one as BFA, the other as MLI.
    fmp(&[
        "edit",
        "--store",
        s(&phone),
        &id,
        r#"{"people":{"adult_male":31},"nationalities":{"BFA":32}}"#,
    ]);
    fmp(&[
        "edit",
        "--store",
        s(&hub),
        &id,
        r#"{"people":{"adult_male":31},"nationalities":{"MLI":3}}"#,
    ]);
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(!out.contains("refused"), "{out}");
    for store in [&phone, &hub] {
        let shown: serde_json::Value =
            serde_json::from_str(&fmp(&["show", "--store", s(store), &id])).unwrap();
        // Nothing lost: both edits are in the record.
        assert_eq!(shown["nationalities"]["BFA"], 32, "{shown}");
        assert_eq!(shown["nationalities"]["MLI"], 3, "{shown}");
        let invalid = shown["invalid"].as_array().expect("flagged");
        assert!(
            invalid
                .iter()
                .any(|l| l.as_str().unwrap().starts_with("nationalities:")),
            "{shown}"
        );
        let st = fmp(&["status", "--store", s(store)]);
        assert!(st.contains("flagged for review: 1 record(s)"), "{st}");
        assert_eq!(status_json(store)["flagged"], 1);
    }

    // The supervisor corrects it; the flag clears on both.
    fmp(&[
        "edit",
        "--store",
        s(&hub),
        &id,
        r#"{"nationalities":{"MLI":2}}"#,
    ]);
    fmp(&["sync", "--store", s(&phone)]);
    for store in [&phone, &hub] {
        let shown: serde_json::Value =
            serde_json::from_str(&fmp(&["show", "--store", s(store), &id])).unwrap();
        assert!(shown.get("invalid").is_none(), "{shown}");
        assert_eq!(shown["nationalities"]["MLI"], 2, "{shown}");
        let st = fmp(&["status", "--store", s(store)]);
        assert!(!st.contains("flagged for review"), "{st}");
    }
}
