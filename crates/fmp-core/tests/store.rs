//! The store through its public API: reopen, schema versions, every
//! operation, and refusals that leave the content unchanged.

use chrono::Utc;
use fmp_core::form::example_submission;
use fmp_core::model::ReviewStatus;
mod common;

use common::contents;
use fmp_core::store::{DB_FILE, Filter, Store, StoreError};

#[test]
fn reopened_store_keeps_identity_and_records() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("s");
    let (device, id) = {
        let store = Store::init(&dir, "menaka-1").expect("init");
        let id = store.record(example_submission()).expect("record");
        (store.identity().device_id, id)
    };
    let store = Store::open(&dir).expect("open");
    assert_eq!(store.identity().device_id, device);
    assert_eq!(store.identity().name, "menaka-1");
    assert_eq!(store.get(id).expect("get").submission.fmp, "ML-HER");
    let sig = store.identity().sign(b"hello");
    assert!(fmp_core::store::identity::verify(
        store.identity().public_key(),
        b"hello",
        &sig
    ));
    assert!(!fmp_core::store::identity::verify(
        store.identity().public_key(),
        b"hellO",
        &sig
    ));
}

#[test]
fn a_store_from_a_newer_fmp_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("s");
    drop(Store::init(&dir, "x").expect("init"));
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).expect("db");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    let err = Store::open(&dir).expect_err("newer refused");
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade fmp"), "{err}");
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).expect("db");
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("v");
    assert_eq!(v, 999, "the newer store was not touched");
}

#[test]
fn invalid_edit_and_duplicate_record_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = Store::init(&tmp.path().join("s"), "x").expect("init");
    let id = store.record(example_submission()).expect("record");
    let before = contents(&store);
    let err = store
        .edit(id, &serde_json::json!({"people": {"adult_male": 1}}))
        .expect_err("invalid");
    match err {
        StoreError::Invalid(v) => assert!(
            v.errors
                .iter()
                .any(|e| e.field.starts_with("nationalities"))
        ),
        other => panic!("expected a validation error, got {other}"),
    }
    let err = store
        .edit(
            id,
            &serde_json::json!({"id": "0190a5c2-7c1e-7b3a-9f00-3c2d1e0f4a55"}),
        )
        .expect_err("id");
    assert!(err.to_string().contains("cannot be changed"));
    let mut dup = example_submission();
    dup.id = Some(id);
    let err = store.record(dup).expect_err("duplicate");
    assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
    // A batch with one bad submission stores none of it.
    let mut bad = example_submission();
    bad.people.adult_male = 0;
    let err = store
        .record_many(vec![example_submission(), bad], Utc::now())
        .expect_err("batch");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(contents(&store), before);
}

#[test]
fn list_filters_and_review_status() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = Store::init(&tmp.path().join("s"), "x").expect("init");
    let mut ids = Vec::new();
    for (fmp, day, dir) in [
        ("ML-HER", 3, "incoming"),
        ("ML-HER", 20, "outgoing"),
        ("ML-GOG", 20, "incoming"),
    ] {
        let mut s = example_submission();
        s.fmp = fmp.into();
        s.observed_at = format!("2020-06-{day:02}T10:00:00Z").parse().expect("date");
        s.direction = dir.parse().expect("dir");
        ids.push(store.record(s).expect("record"));
    }
    store
        .review(ids[0], ReviewStatus::Approved, "ok")
        .expect("review");
    store
        .review(ids[1], ReviewStatus::Rejected, "duplicate bus")
        .expect("review");
    let n = |f: Filter| store.list(&f).expect("list").len();
    assert_eq!(n(Filter::default()), 3);
    assert_eq!(
        n(Filter {
            fmp: Some("ML-HER".into()),
            ..Filter::default()
        }),
        2
    );
    assert_eq!(
        n(Filter {
            from: chrono::NaiveDate::from_ymd_opt(2020, 6, 10),
            ..Filter::default()
        }),
        2
    );
    assert_eq!(
        n(Filter {
            to: chrono::NaiveDate::from_ymd_opt(2020, 6, 3),
            ..Filter::default()
        }),
        1
    );
    assert_eq!(
        n(Filter {
            direction: Some("outgoing".parse().expect("dir")),
            ..Filter::default()
        }),
        1
    );
    assert_eq!(
        n(Filter {
            review: Some(Some(ReviewStatus::Rejected)),
            ..Filter::default()
        }),
        1
    );
    assert_eq!(
        n(Filter {
            review: Some(None),
            ..Filter::default()
        }),
        1
    );
    store.delete(ids[2]).expect("delete");
    assert_eq!(n(Filter::default()), 2);
    assert_eq!(
        n(Filter {
            include_deleted: true,
            ..Filter::default()
        }),
        3
    );
    let listed = store
        .list(&Filter {
            review: Some(Some(ReviewStatus::Rejected)),
            ..Filter::default()
        })
        .expect("list");
    assert_eq!(
        listed[0].review.as_ref().map(|r| r.comment.as_str()),
        Some("duplicate bus")
    );
    // The listing from materialized columns equals the document's state.
    for s in store
        .list(&Filter {
            include_deleted: true,
            ..Filter::default()
        })
        .expect("list")
    {
        let full = store.get(s.submission.id.expect("id")).expect("get");
        assert_eq!(s.submission, full.submission);
        assert_eq!(s.review, full.review);
        assert_eq!(s.deleted, full.deleted);
    }
}

#[test]
fn a_duplicate_inside_one_batch_stores_none_of_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = Store::init(&tmp.path().join("s"), "x").expect("init");
    store.record(example_submission()).expect("record");
    let before = contents(&store);
    let mut a = example_submission();
    a.id = Some(uuid::Uuid::now_v7());
    let err = store
        .record_many(vec![a.clone(), a], Utc::now())
        .expect_err("duplicate in batch");
    assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
    assert_eq!(contents(&store), before);
}

#[test]
fn history_says_which_fields_each_change_wrote() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = Store::init(&tmp.path().join("s"), "menaka-1").expect("init");
    let id = store.record(example_submission()).expect("record");
    let before = store.get(id).expect("get").submission;
    store
        .edit(
            id,
            &serde_json::json!({
                "notes": "recounted",
                "people": {"adult_male": before.people.adult_male + 1},
                "nationalities": {"MLI": before.nationalities.get("MLI").copied().unwrap_or(0) + 1}
            }),
        )
        .expect("edit");
    store
        .review(id, ReviewStatus::HasIssues, "check the count")
        .expect("review");
    store.delete(id).expect("delete");
    let h = store.history(id).expect("history");
    let fields: Vec<(&str, Vec<&str>)> = h
        .iter()
        .map(|e| (e.op.as_str(), e.fields.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        fields,
        [
            ("record", vec![]),
            (
                "edit",
                vec!["nationalities.MLI", "notes", "people.adult_male"]
            ),
            ("review", vec!["review"]),
            ("delete", vec!["deleted"]),
        ]
    );
}
