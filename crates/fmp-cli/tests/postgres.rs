//! `fmp init --database`: a store whose data lives in PostgreSQL, driven
//! by the same commands as an SQLite store and giving the same output.
//! Runs against the tests' throwaway cluster (`FMP_TEST_PG`); skipped with
//! a line when there is none, never in CI (`FMP_REQUIRE_PG`).

use std::path::Path;
use std::process::Output;

use fmp_core::store::testing::PgDatabase;

mod common;

fn fmp(args: &[&str], input: Option<&str>) -> Output {
    common::fmp_stdin(args, input.unwrap_or("").as_bytes())
}

fn ok(args: &[&str], input: Option<&str>) -> String {
    let out = fmp(args, input);
    assert!(
        out.status.success(),
        "fmp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn submission(id: &str, fmp: &str, day: u32, male: u32) -> String {
    format!(
        r#"{{"id":"{id}","form":"dtm-fmp-flow","form_version":1,"fmp":"{fmp}","observed_at":"2020-06-{day:02}T09:30:00Z","direction":"incoming","transport":"bus","departure":{{"country":"BFA","place":"Bobo-Dioulasso"}},"next_destination":{{"country":"MLI","place":"Sikasso"}},"final_destination":{{"country":"MLI"}},"movement_type":"seasonal","people":{{"adult_male":{male},"adult_female":2,"minor_male":1,"minor_female":0}},"vulnerable":{{"under5":0,"elderly":0,"disability":0,"pregnant":0}},"nationalities":{{"BFA":{},"MLI":2}},"notes":""}}"#,
        male + 1
    )
}

/// The same records, edits and deletions through the CLI; what the user
/// then sees (listing, one record, report, export).
fn session(store: &str) -> Vec<String> {
    let ids = [
        "01890000-0000-7000-8000-000000000001",
        "01890000-0000-7000-8000-000000000002",
        "01890000-0000-7000-8000-000000000003",
    ];
    let lines: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            submission(
                id,
                ["ML-HER", "ML-GOG", "ML-HER"][i],
                3 + i as u32,
                20 + i as u32,
            )
        })
        .collect();
    ok(&["record", "--store", store], Some(&lines.join("\n")));
    ok(
        &[
            "edit",
            "--store",
            store,
            ids[0],
            r#"{"notes":"checked twice"}"#,
        ],
        None,
    );
    ok(&["delete", "--store", store, ids[2]], None);
    ok(&["status", "--store", store], None);
    vec![
        ok(&["list", "--store", store, "--format", "json"], None),
        ok(&["show", "--store", store, ids[0]], None),
        ok(
            &[
                "report", "--store", store, "--month", "2020-06", "--format", "json",
            ],
            None,
        ),
        ok(&["export", "--store", store, "--format", "csv"], None),
    ]
}

#[test]
fn a_store_on_postgresql_answers_every_command_as_one_on_sqlite() {
    let Some(db) = PgDatabase::create("cli_init_database") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let pg = tmp.path().join("hq");
    let lite = tmp.path().join("lite");
    let (pg_s, lite_s) = (pg.to_str().expect("utf8"), lite.to_str().expect("utf8"));
    let out = ok(
        &[
            "init",
            "--store",
            pg_s,
            "--name",
            "hq",
            "--database",
            &db.url,
        ],
        None,
    );
    assert!(out.contains("data in PostgreSQL"), "{out}");
    assert!(pg.join("postgres.url").is_file());
    assert!(!pg.join("fmp.sqlite3").exists());
    ok(&["init", "--store", lite_s, "--name", "hq"], None);
    assert_eq!(session(pg_s), session(lite_s));
}

#[test]
fn a_bad_or_taken_database_is_refused_and_no_store_is_made() {
    let Some(db) = PgDatabase::create("cli_init_refused") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| tmp.path().join(n);
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    // Nothing listens there; the password in the URL is never printed.
    let (scheme, rest) = db.url.split_once("://").expect("url");
    let (user, _) = rest.split_once('@').expect("user");
    let dead = format!("{scheme}://{user}:hunter2-secret@127.0.0.1:1/fmp_nowhere");
    let out = fmp(
        &["init", "--store", &s(&dir("a")), "--database", &dead],
        None,
    );
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2-secret"), "{all}");
    assert!(all.contains("127.0.0.1:1"), "names the database: {all}");
    assert!(!dir("a").join("postgres.url").exists());
    // A database that holds a store already is not taken over.
    ok(
        &["init", "--store", &s(&dir("b")), "--database", &db.url],
        None,
    );
    let out = fmp(
        &["init", "--store", &s(&dir("c")), "--database", &db.url],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds an fmp store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir("c").exists(), "nothing made for a taken database");
}
