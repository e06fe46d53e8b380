//! The store through its public API: reopen, schema versions, every
//! operation, and refusals that leave the content unchanged.

use chrono::Utc;
use fmp_core::form::example_submission;
use fmp_core::model::ReviewStatus;
use fmp_core::store::{DB_FILE, Filter, Store, StoreError};

fn contents(store: &Store) -> String {
    let list = store
        .list(&Filter {
            include_deleted: true,
            ..Filter::default()
        })
        .expect("list");
    let mut s = serde_json::to_string(&list).expect("json");
    for item in &list {
        let id = item.submission.id.expect("id");
        s.push_str(&serde_json::to_string(&store.get(id).expect("get")).expect("json"));
        s.push_str(&serde_json::to_string(&store.history(id).expect("history")).expect("json"));
    }
    s
}

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

/// Every row of the materialized tables, column by column, in key order.
fn materialized(conn: &rusqlite::Connection) -> Vec<Vec<rusqlite::types::Value>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM submissions ORDER BY id",
        "SELECT * FROM submission_nationalities ORDER BY submission_id, country",
    ] {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");
        out.extend(rows);
    }
    out
}

/// Arbitrary picks, instant, counts, shares, places, notes and id.
type RawSubmission = (
    [usize; 4],
    i64,
    u32,
    [u32; 4],
    [u32; 6],
    [Option<String>; 3],
    String,
    Option<u128>,
);

/// A valid submission built from arbitrary numbers and text.
fn valid_submission(
    (pick, secs, nanos, counts, shares, places, notes, id): RawSubmission,
) -> fmp_core::model::Submission {
    use fmp_core::model::{Direction, MovementType, Transport};
    const FMPS: [&str; 9] = [
        "ML-WAB", "ML-PKI", "ML-TBK", "ML-MNK", "ML-SEV", "ML-GOG", "ML-BEN", "ML-HER", "ML-BKO",
    ];
    const CODES: [&str; 6] = ["MLI", "BFA", "NER", "CIV", "GIN", "SEN"];
    let mut s = example_submission();
    s.id = id.map(uuid::Uuid::from_u128);
    s.fmp = FMPS[pick[0] % FMPS.len()].to_string();
    // Any instant of 2020-2021, to the nanosecond.
    s.observed_at =
        chrono::DateTime::from_timestamp(1_577_836_800 + secs, nanos).expect("in range");
    s.direction = Direction::ALL[pick[1] % Direction::ALL.len()];
    s.transport = Transport::ALL[pick[2] % Transport::ALL.len()];
    s.movement_type = MovementType::ALL[pick[3] % MovementType::ALL.len()];
    let [departure, next, last] = places;
    s.departure.place = departure;
    s.next_destination.place = next;
    s.final_destination.place = last;
    s.people.adult_male = counts[0] + 1;
    s.people.adult_female = counts[1];
    s.people.minor_male = counts[2];
    s.people.minor_female = counts[3];
    let total = s.people.adult_male + counts[1] + counts[2] + counts[3];
    let within = |x: u32, max: u32| x % (max + 1);
    s.vulnerable.under5 = within(shares[0], counts[2] + counts[3]);
    s.vulnerable.pregnant = within(shares[1], counts[1] + counts[3]);
    s.vulnerable.elderly = within(shares[2], total);
    s.vulnerable.disability = within(shares[3], total);
    s.vulnerable.unaccompanied_children =
        (shares[4] % 2 == 0).then(|| within(shares[4] / 2, total));
    // Split the total over one to three nationalities.
    s.nationalities.clear();
    let first = within(shares[5], total);
    let second = within(shares[5] / 7, total - first);
    for (code, n) in [
        (CODES[pick[0] % 6], first),
        (CODES[(pick[0] + 1) % 6], second),
        (CODES[(pick[0] + 2) % 6], total - first - second),
    ] {
        if n > 0 || s.nationalities.is_empty() {
            *s.nationalities.entry(code.to_string()).or_insert(0) += n;
        }
    }
    s.notes = notes;
    s
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// `record` materializes from the submission it validated, without
    /// reading the document back; materializing from the stored document
    /// must give the very same rows, column by column.
    #[test]
    fn recorded_rows_equal_rows_materialized_from_the_documents(
        subs in proptest::collection::vec(
            (
                proptest::array::uniform4(0usize..1000),
                0i64..63_158_400,
                0u32..1_000_000_000,
                proptest::array::uniform4(0u32..60),
                proptest::array::uniform6(proptest::num::u32::ANY),
                // At most 25 characters: 100 bytes of UTF-8, the place limit.
                proptest::array::uniform3(proptest::option::of(".{0,25}")),
                ".{0,60}",
                proptest::option::of(proptest::num::u128::ANY),
            ),
            1..6,
        )
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Store::init(&tmp.path().join("s"), "x").expect("init");
        let mut subs: Vec<_> = subs.into_iter().map(valid_submission).collect();
        let batch = subs.split_off(subs.len() / 2);
        let mut ids = Vec::new();
        for s in subs {
            ids.push(store.record(s).expect("record"));
        }
        ids.extend(store.record_many(batch, Utc::now()).expect("record_many"));
        let recorded = store.read(|c| Ok(materialized(c))).expect("read");

        let again = rusqlite::Connection::open_in_memory().expect("memory");
        again
            .execute_batch(fmp_core::store::schema::SCHEMA)
            .expect("schema");
        for id in &ids {
            let seq: i64 = store
                .read(|c| {
                    c.query_row(
                        "SELECT updated_seq FROM submissions WHERE id = ?1",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                })
                .expect("seq");
            let from_doc = store.get(*id).expect("get");
            fmp_core::store::materialize::write_row(&again, &from_doc, seq).expect("write_row");
        }
        let from_docs = materialized(&again);
        proptest::prop_assert_eq!(recorded.len(), from_docs.len());
        proptest::prop_assert_eq!(recorded, from_docs);
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

/// What a report or an export reads through `with_conn` is one snapshot:
/// a record another connection (another process's `fmp serve`) commits
/// between two of its statements is not seen by the second.
#[test]
fn a_reader_through_with_conn_sees_one_snapshot_while_another_connection_writes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("s");
    let reader = Store::init(&dir, "hq").expect("init");
    reader.record(example_submission()).expect("record");
    let writer = Store::open(&dir).expect("a second connection");
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM submissions", [], |r| r.get(0))
            .expect("count")
    };
    let (first, second) = reader.with_conn(|c| {
        let first = count(c);
        let mut s = example_submission();
        s.notes = "committed meanwhile".into();
        writer.record(s).expect("record meanwhile");
        (first, count(c))
    });
    assert_eq!((first, second), (1, 1), "one snapshot");
    assert_eq!(reader.with_conn(count), 2, "the next read sees it");
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
