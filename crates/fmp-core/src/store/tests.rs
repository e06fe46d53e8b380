//! The store's own invariants checked through its crate-private parts: the
//! materialized rows against a re-materialization from the documents, and
//! one snapshot per `snapshot`.

use chrono::Utc;

use crate::form::example_submission;
use crate::store::Store;

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
) -> crate::model::Submission {
    use crate::model::{Direction, MovementType, Transport};
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
            .execute_batch(crate::store::schema::SCHEMA)
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
            crate::store::materialize::write_row(&again, &from_doc, seq).expect("write_row");
        }
        let from_docs = materialized(&again);
        proptest::prop_assert_eq!(recorded.len(), from_docs.len());
        proptest::prop_assert_eq!(recorded, from_docs);
    }
}

/// What a report or an export reads through `snapshot` is one snapshot:
/// a record another connection (another process's `fmp serve`) commits
/// between two of its statements is not seen by the second.
#[test]
fn a_reader_through_snapshot_sees_one_snapshot_while_another_connection_writes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("s");
    let reader = Store::init(&dir, "hq").expect("init");
    reader.record(example_submission()).expect("record");
    let writer = Store::open(&dir).expect("a second connection");
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM submissions", [], |r| r.get(0))
            .expect("count")
    };
    let (first, second) = reader
        .snapshot(|r| -> Result<_, crate::store::StoreError> {
            let first = count(r.sqlite_conn());
            let mut s = example_submission();
            s.notes = "committed meanwhile".into();
            writer.record(s).expect("record meanwhile");
            Ok((first, count(r.sqlite_conn())))
        })
        .expect("snapshot");
    assert_eq!((first, second), (1, 1), "one snapshot");
    assert_eq!(
        reader
            .snapshot(|r| Ok::<_, crate::store::StoreError>(count(r.sqlite_conn())))
            .expect("snapshot"),
        2,
        "the next read sees it"
    );
}

/// A store closed cleanly leaves everything in `fmp.sqlite3`: the writer
/// closes last (after the reader connections), so SQLite checkpoints the
/// WAL into the file and removes it, and a backup of the file alone after
/// a clean stop holds every record.
#[test]
fn a_store_closed_cleanly_leaves_no_wal_behind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("s");
    let store = Store::init(&dir, "hub").expect("init");
    for _ in 0..3 {
        store.record(example_submission()).expect("record");
    }
    // Readers were opened (and kept idle) beside the writer.
    assert_eq!(store.list(&Default::default()).expect("list").len(), 3);
    let wal = dir.join(format!("{}-wal", crate::store::DB_FILE));
    assert!(wal.exists(), "a WAL while the store is open");
    drop(store);
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "the WAL was checkpointed into the database file");
}

#[test]
fn another_devices_key_is_refused_before_the_schema_is_upgraded() {
    let dir = tempfile::tempdir().expect("tmp");
    let (p1, p2) = (dir.path().join("p1"), dir.path().join("p2"));
    drop(Store::init(&p1, "p1").expect("init p1"));
    drop(Store::init(&p2, "p2").expect("init p2"));
    std::fs::copy(p2.join("device.key"), p1.join("device.key")).expect("copy key");
    let db = p1.join(crate::store::DB_FILE);
    let older = crate::store::schema::VERSION - 1;
    rusqlite::Connection::open(&db)
        .expect("open")
        .pragma_update(None, "user_version", older)
        .expect("version");
    let err = Store::open(&p1).expect_err("another device's key");
    assert!(
        matches!(err, crate::store::StoreError::KeyMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("device.key"), "{err}");
    let version: u32 = rusqlite::Connection::open(&db)
        .expect("open")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, older, "nothing written, no upgrade either");
}
