//! The PostgreSQL backend's schema and log positions, against a real
//! server (the throwaway cluster `scripts/test-all.sh` starts; skipped
//! with a line when there is none, never in CI: `FMP_REQUIRE_PG`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use fmp_core::store::StoreError;
use fmp_core::store::log::NewChange;
use fmp_core::store::pg::{log, schema};
use fmp_core::store::testing::PgDatabase;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

fn change(hash: [u8; 32], author: Uuid) -> NewChange<'static> {
    NewChange {
        hash,
        author,
        time: 1,
        op: "record",
        bytes: b"change bytes",
        origin: None,
        bundle: None,
    }
}

fn hash_of(writer: u32, tx: u32, i: u32) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&writer.to_be_bytes());
    h[4..8].copy_from_slice(&tx.to_be_bytes());
    h[8..12].copy_from_slice(&i.to_be_bytes());
    h
}

fn migrated(test: &str) -> Option<PgDatabase> {
    let db = PgDatabase::create(test)?;
    schema::migrate(&mut db.connect(), &db.url).expect("migrate");
    Some(db)
}

fn set_version(db: &PgDatabase, v: i32) {
    db.connect()
        .execute("UPDATE fmp_schema SET version = $1", &[&v])
        .expect("set version");
}

#[test]
fn an_empty_database_is_migrated_once_even_by_two_processes_at_once() {
    let Some(db) = PgDatabase::create("pg migrate") else {
        return;
    };
    assert_eq!(schema::version(&mut db.connect(), &db.url).expect("v"), 0);
    let start = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (url, start) = (db.url.clone(), start.clone());
            std::thread::spawn(move || {
                let mut c = fmp_core::store::pg::connect(&url).expect("connect");
                start.wait();
                schema::migrate(&mut c, &url)
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("each migration succeeds");
    }
    let mut c = db.connect();
    assert_eq!(
        schema::version(&mut c, &db.url).expect("v"),
        schema::VERSION
    );
    let rows: i64 = c
        .query_one("SELECT count(*) FROM fmp_schema", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, 1, "one version row, not one per migration");
    schema::migrate(&mut c, &db.url).expect("again: a no-op");
}

#[test]
fn a_newer_database_is_refused_and_left_as_it_was() {
    let Some(db) = migrated("pg newer") else {
        return;
    };
    let mut c = db.connect();
    c.execute("INSERT INTO meta (key, value) VALUES ('name', 'hq')", &[])
        .expect("meta");
    set_version(&db, schema::VERSION as i32 + 1);
    let err = schema::migrate(&mut c, &db.url).expect_err("refused");
    assert!(
        matches!(err, StoreError::TooNew { found, supported, .. } if found == schema::VERSION + 1 && supported == schema::VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade fmp"), "{err}");
    assert_eq!(
        schema::version(&mut c, &db.url).expect("v"),
        schema::VERSION + 1,
        "the version is not lowered"
    );
    let name: String = c
        .query_one("SELECT value FROM meta WHERE key = 'name'", &[])
        .expect("meta")
        .get(0);
    assert_eq!(name, "hq");
}

#[test]
fn a_version_no_fmp_wrote_on_postgresql_is_refused_by_name() {
    let Some(db) = migrated("pg unknown version") else {
        return;
    };
    set_version(&db, 3);
    let err = schema::migrate(&mut db.connect(), &db.url).expect_err("refused");
    assert!(
        matches!(err, StoreError::UnknownSchema { found: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not an fmp store"), "{err}");
}

#[test]
fn a_password_in_the_url_never_reaches_an_error() {
    let Some(db) = PgDatabase::create("pg password") else {
        return;
    };
    // A database that does not exist, reached with a password.
    let url = db
        .url
        .replace("fmp@", "fmp:hunter2@")
        .replace("/fmp_t_", "/no_such_");
    let Err(err) = fmp_core::store::pg::connect(&url) else {
        panic!("connected to a database that does not exist");
    };
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("no_such_"),
        "the message names the database: {text}"
    );
}

/// Several writers append and commit at once, in random order and at
/// random moments, while a reader pulls "everything after my cursor" in a
/// loop: every change is seen exactly once, in increasing positions. With
/// positions from a plain sequence (`seq > c` with no horizon) the reader
/// skips changes committed late under a lower number (ADR 0005's spike:
/// 50 to 9,547 of 40,000).
#[test]
fn an_incremental_reader_sees_every_change_exactly_once_while_writers_commit_concurrently() {
    let Some(db) = migrated("pg cursor") else {
        return;
    };
    const WRITERS: u32 = 4;
    const TXS: u32 = 40;
    const PER_TX: u32 = 10;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (url, done) = (db.url.clone(), done.clone());
        std::thread::spawn(move || {
            let mut c = fmp_core::store::pg::connect(&url).expect("connect");
            let mut cursor = 0i64;
            let mut seen: BTreeMap<[u8; 32], u32> = BTreeMap::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let mut tx = log::reader(&mut c, &url).expect("reader");
                let rows = log::changes_after(&mut tx, &url, cursor, 37).expect("pull");
                tx.commit().expect("end read");
                for r in &rows {
                    assert!(r.seq > cursor, "positions increase");
                    cursor = r.seq;
                    *seen.entry(r.hash).or_default() += 1;
                }
                // Done when the writers are and the reader reached the
                // last position committed: the horizon is the cluster's,
                // so a transaction of another test (another database)
                // may hold it back a while after the writers end.
                if finished && rows.is_empty() {
                    let last: Option<i64> = c
                        .query_one("SELECT max(seq) FROM changes", &[])
                        .expect("last")
                        .get(0);
                    if last.unwrap_or(0) <= cursor {
                        return seen;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(w) + 7);
                let mut c = fmp_core::store::pg::connect(&url).expect("connect");
                let author = Uuid::new_v4();
                for t in 0..TXS {
                    let mut tx = c.transaction().expect("tx");
                    for i in 0..PER_TX {
                        let got = log::append_change(
                            &mut tx,
                            &url,
                            &format!("doc-{w}-{t}"),
                            &change(hash_of(w, t, i), author),
                        )
                        .expect("append");
                        assert!(got.is_some(), "a new hash is appended");
                    }
                    // The rest of a sync's commit, so commits overtake
                    // each other.
                    std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
                    tx.commit().expect("commit");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().expect("reader");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "seen more than once: {}", twice.len());
    let expected = WRITERS * TXS * PER_TX;
    assert_eq!(
        seen.len() as u32,
        expected,
        "every committed change seen: {} of {expected}",
        seen.len()
    );
}

#[test]
fn a_writer_still_open_holds_its_changes_and_later_ones_back_and_a_rolled_back_one_never_shows() {
    let Some(db) = migrated("pg horizon") else {
        return;
    };
    let author = Uuid::new_v4();
    let (mut a, mut b, mut r) = (db.connect(), db.connect(), db.connect());
    // a takes its transaction id first and stays open.
    let mut ta = a.transaction().expect("a");
    log::append_change(&mut ta, &db.url, "doc-a", &change([1; 32], author)).expect("a appends");
    // b appends later and commits first.
    let mut tb = b.transaction().expect("b");
    log::append_change(&mut tb, &db.url, "doc-b", &change([2; 32], author)).expect("b appends");
    tb.commit().expect("b commits");
    let pull = |r: &mut postgres::Client, after: i64| {
        let mut tx = log::reader(r, &db.url).expect("reader");
        let rows = log::changes_after(&mut tx, &db.url, after, 100).expect("pull");
        let end = log::log_end(&mut tx, &db.url).expect("end");
        tx.commit().expect("end read");
        (rows, end)
    };
    let (rows, end) = pull(&mut r, 0);
    assert!(
        rows.is_empty() && end == 0,
        "b's change waits behind a's open transaction: {rows:?}"
    );
    ta.commit().expect("a commits");
    // Transaction ids are the cluster's: another test's writer, in another
    // database, may hold the horizon a moment longer. Delayed, never skipped.
    let until = |r: &mut postgres::Client, after: i64, n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (rows, end) = pull(r, after);
            if rows.len() >= n || std::time::Instant::now() > deadline {
                return (rows, end);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (rows, end) = until(&mut r, 0, 2);
    let hashes: Vec<[u8; 32]> = rows.iter().map(|r| r.hash).collect();
    assert_eq!(hashes, vec![[1; 32], [2; 32]], "both, a's first");
    assert_eq!(end, rows[1].seq);
    // A rolled-back append is never served, and holds nothing back.
    let mut tc = a.transaction().expect("c");
    log::append_change(&mut tc, &db.url, "doc-c", &change([3; 32], author)).expect("c appends");
    tc.rollback().expect("c rolls back");
    let mut td = b.transaction().expect("d");
    log::append_change(&mut td, &db.url, "doc-d", &change([4; 32], author)).expect("d appends");
    td.commit().expect("d commits");
    let (rows, _) = until(&mut r, end, 1);
    let hashes: Vec<[u8; 32]> = rows.iter().map(|r| r.hash).collect();
    assert_eq!(hashes, vec![[4; 32]]);
}

#[test]
fn one_change_appended_by_two_writers_at_once_lands_once() {
    let Some(db) = migrated("pg same change") else {
        return;
    };
    let author = Uuid::new_v4();
    let (mut a, mut b) = (db.connect(), db.connect());
    let mut ta = a.transaction().expect("a");
    assert!(
        log::append_change(&mut ta, &db.url, "doc", &change([9; 32], author))
            .expect("a")
            .is_some()
    );
    let url = db.url.clone();
    // b's insert of the same hash waits for a's transaction, then finds it.
    let other = std::thread::spawn(move || {
        let mut tb = b.transaction().expect("b");
        let got = log::append_change(&mut tb, &url, "doc", &change([9; 32], author)).expect("b");
        tb.commit().expect("b commits");
        got
    });
    std::thread::sleep(Duration::from_millis(200));
    ta.commit().expect("a commits");
    assert_eq!(other.join().expect("b"), None, "already logged");
    let n: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM changes", &[])
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
}

/// The two backends hold the same tables with the same columns at the
/// same version, so a column added to one and not the other fails here.
#[test]
fn the_postgresql_schema_has_sqlite_s_tables_and_columns_at_the_same_version() {
    assert_eq!(
        schema::VERSION,
        fmp_core::store::testing::sqlite_schema_version()
    );
    let Some(db) = migrated("pg schema shape") else {
        return;
    };
    let sqlite = fmp_core::store::testing::sqlite_table_shapes().expect("sqlite");
    assert!(sqlite.len() >= 14, "{sqlite:?}");
    assert_eq!(
        fmp_core::store::testing::pg_table_shapes(&db.url).expect("pg"),
        sqlite
    );
}

#[test]
fn a_password_never_reaches_a_message_even_when_parsing_fails() {
    assert_eq!(
        fmp_core::store::pg::redact("postgres://fmp:s3cret@127.0.0.1:5432/hq"),
        "postgres://fmp@127.0.0.1:5432/hq"
    );
    let Err(err) = fmp_core::store::pg::connect("postgres://fmp:s3cret@127.0.0.1:notaport/hq")
    else {
        panic!("a bad port parsed");
    };
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

// ------------------------------------------------------------ Store on PostgreSQL

mod store {
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    use fmp_core::form::example_submission;
    use fmp_core::store::ops::*;
    use fmp_core::store::testing::PgDatabase;
    use fmp_core::store::{PG_FILE, Store, StoreError};
    use uuid::Uuid;

    /// A second process's view of a store: its directory copied.
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }

    /// Two stores on one database, as two `fmp serve` processes started
    /// from copies of one store directory.
    fn two_processes(test: &str) -> Option<(PgDatabase, tempfile::TempDir, Store, Store)> {
        let db = PgDatabase::create(test)?;
        let tmp = tempfile::tempdir().expect("tmp");
        let a = Store::init_postgres(&tmp.path().join("a"), "hq", &db.url).expect("init");
        copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
        let b = Store::open(&tmp.path().join("b")).expect("open the copy");
        Some((db, tmp, a, b))
    }

    /// The rules of a SQLite store's directory hold on PostgreSQL too: a
    /// name hubs refuse is refused at init with nothing made, and another
    /// device's key file is refused at open before anything is recorded.
    #[test]
    fn a_bad_name_and_another_device_s_key_are_refused_as_on_sqlite() {
        let Some(db) = PgDatabase::create("store_name_key") else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("hq");
        let err = Store::init_postgres(&dir, "evil\u{1b}[31m", &db.url).expect_err("bad name");
        assert!(matches!(err, StoreError::BadName { .. }), "{err}");
        assert!(!dir.join(PG_FILE).exists(), "nothing made in the directory");
        let store = Store::init_postgres(&dir, "hq", &db.url).expect("init");
        drop(store);
        let other = tmp.path().join("other");
        drop(Store::init(&other, "other").expect("another store"));
        std::fs::copy(other.join("device.key"), dir.join("device.key")).expect("swap key");
        let err = Store::open(&dir).expect_err("another device's key");
        assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn the_store_directory_names_the_database_without_its_password_and_reopens() {
        let Some(db) = PgDatabase::create("store_dir") else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("hq");
        // A password in the URL is used to connect and never written.
        let (scheme, rest) = db.url.split_once("://").expect("url");
        let (user, host) = rest.split_once('@').expect("user");
        let with_pw = format!("{scheme}://{user}:s3cr3t-pw@{host}");
        let s = Store::init_postgres(&dir, "hq", &with_pw).expect("init (trust auth)");
        let id = s.record(example_submission()).expect("record");
        let device = s.identity().device_id;
        drop(s);
        let named = std::fs::read_to_string(dir.join(PG_FILE)).expect("url file");
        assert_eq!(named.trim(), db.url);
        for e in std::fs::read_dir(&dir).expect("dir") {
            let bytes = std::fs::read(e.expect("entry").path()).expect("read");
            assert!(
                !String::from_utf8_lossy(&bytes).contains("s3cr3t-pw"),
                "no password on disk"
            );
        }
        assert!(
            !dir.join(fmp_core::store::DB_FILE).exists(),
            "no SQLite file"
        );
        let s = Store::open(&dir).expect("reopen");
        assert_eq!(s.identity().device_id, device);
        assert_eq!(s.get(id).expect("get").submission.id, Some(id));
        // A second store cannot be created on the same database, nor a
        // store over a directory that names one.
        let err = Store::init_postgres(&tmp.path().join("other"), "x", &db.url)
            .expect_err("database in use");
        assert!(matches!(err, StoreError::DatabaseInUse(_)), "{err}");
        assert!(!tmp.path().join("other").join(PG_FILE).exists());
        let err = Store::init(&dir, "x").expect_err("directory in use");
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    }

    #[test]
    fn a_nonce_remembered_by_one_process_is_a_replay_to_the_other() {
        let Some((_db, _tmp, a, b)) = two_processes("nonces") else {
            return;
        };
        let d = Uuid::now_v7();
        let fresh = a
            .transaction(|w| w.remember_nonce(d, "n1", 1_000, 0))
            .expect("a");
        assert!(fresh);
        assert!(b.snapshot(|r| r.nonce_seen(d, "n1")).expect("seen"));
        let again = b
            .transaction(|w| w.remember_nonce(d, "n1", 1_000, 0))
            .expect("b");
        assert!(!again, "a replay to the other process is refused");
        assert!(
            b.transaction(|w| w.remember_nonce(d, "n2", 1_000, 0))
                .expect("b")
        );
    }

    #[test]
    fn an_enrollment_code_used_in_one_process_is_used_in_the_other() {
        let Some((_db, _tmp, a, b)) = two_processes("codes") else {
            return;
        };
        let hash = [7u8; 32];
        a.add_enrollment_code(&hash, &["ML-GOG".into()], false, i64::MAX)
            .expect("add");
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        // Both processes try to use it at once, each reading it first in
        // its own write, as the hub's join does: exactly one wins.
        let claim = |s: &Store, device: Uuid| {
            s.transaction(|w| {
                let code = w.enrollment_code(&hash)?.expect("known");
                if code.used_by.is_some() {
                    return Ok::<_, StoreError>(false);
                }
                std::thread::sleep(Duration::from_millis(200));
                w.use_enrollment_code(&hash, device)?;
                Ok(true)
            })
            .expect("claim")
        };
        let (wa, wb) = std::thread::scope(|sc| {
            let ta = sc.spawn(|| claim(&a, first));
            let tb = sc.spawn(|| claim(&b, second));
            (ta.join().expect("a"), tb.join().expect("b"))
        });
        assert!(wa ^ wb, "exactly one process used the code: {wa} {wb}");
        let used = a
            .snapshot(|r| r.enrollment_code(&hash))
            .expect("read")
            .expect("code");
        let winner = if wa { first } else { second };
        assert_eq!(used.used_by, Some(winner.to_string()));
    }

    #[test]
    fn a_write_in_one_process_waits_for_the_other_s_and_sees_it() {
        let Some((_db, _tmp, a, b)) = two_processes("writes") else {
            return;
        };
        let (held_tx, held_rx) = mpsc::channel::<()>();
        let seen = std::thread::scope(|sc| {
            sc.spawn(|| {
                a.transaction(|w| {
                    w.put_setting("k", "from a")?;
                    held_tx.send(()).expect("send");
                    std::thread::sleep(Duration::from_millis(400));
                    Ok::<_, StoreError>(())
                })
                .expect("a");
            });
            held_rx.recv().expect("a holds its write");
            // A read does not wait, and does not see the open write.
            assert_eq!(b.snapshot(|r| r.setting("k")).expect("read"), None);
            b.transaction(|w| w.setting("k")).expect("b's write")
        });
        // Read committed alone would read None while a's write is open:
        // b's write waited for a's commit (the write lock).
        assert_eq!(seen.as_deref(), Some("from a"), "b's write ran after a's");
    }

    #[test]
    fn many_threads_share_a_bounded_pool_and_a_write_may_read_inside_it() {
        let Some(db) = PgDatabase::create("pool") else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Store::init_postgres(&tmp.path().join("s"), "hq", &db.url).expect("init");
        let mut probe = db.connect();
        let mut most = 0i64;
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..40)
                .map(|i| {
                    let store = &store;
                    sc.spawn(move || {
                        if i % 4 == 0 {
                            // A write that reads on another snapshot inside
                            // it, while the pool is full of waiters.
                            store
                                .transaction(|w| {
                                    w.put_setting(&format!("k{i}"), "v")?;
                                    std::thread::sleep(Duration::from_millis(20));
                                    store.snapshot(|r| r.setting("k0"))
                                })
                                .expect("write");
                        } else {
                            store
                                .snapshot(|r| {
                                    std::thread::sleep(Duration::from_millis(50));
                                    r.setting("x")
                                })
                                .expect("read");
                        }
                    })
                })
                .collect();
            while handles.iter().any(|h| !h.is_finished()) {
                let n: i64 = probe
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .expect("count")
                    .get(0);
                most = most.max(n);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        // 16 in the pool, plus the snapshots taken inside writes (each by
        // the one writer holding the lock at a time, so one at a time).
        // The server lists a closed client's backend a moment longer (the
        // extra one closes as the next writer opens its own), so a loaded
        // machine may count a few more; 40 threads with no bound open ~40.
        assert!(most <= 20, "connections open at once: {most}");
        assert!(most >= 2, "{most}");
        let keys = store
            .snapshot(|r| {
                (0..40)
                    .step_by(4)
                    .map(|i| r.setting(&format!("k{i}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("read");
        assert!(keys.iter().all(Option::is_some));
    }
}
