//! Helpers shared by the integration tests: stores in temp dirs, valid
//! submissions, and a comparable dump of a store's state.
#![allow(dead_code)]

use fmp_core::Submission;
use fmp_core::store::Store;
pub use fmp_core::store::testing;
use fmp_sync::{AuthorInfo, StaticTrust};
use uuid::Uuid;

pub const FMPS: [&str; 4] = ["ML-HER", "ML-GOG", "ML-MNK", "ML-BEN"];

/// A valid submission at `fmp`, varied by `n`.
pub fn submission(fmp: &str, n: u32) -> Submission {
    let male = 5 + (n % 40);
    let female = n % 7;
    let total = male + female + 1;
    Submission::from_json(&format!(
        r#"{{"form":"dtm-fmp-flow","form_version":1,"fmp":"{fmp}",
        "observed_at":"2020-06-{:02}T{:02}:{:02}:00Z","direction":"{}","transport":"bus",
        "departure":{{"country":"BFA","place":"Bobo-Dioulasso"}},
        "next_destination":{{"country":"MLI","place":"Sikasso"}},
        "final_destination":{{"country":"MLI"}},"movement_type":"seasonal",
        "people":{{"adult_male":{male},"adult_female":{female},"minor_male":1,"minor_female":0}},
        "vulnerable":{{"under5":0,"elderly":0,"disability":0,"pregnant":0}},
        "nationalities":{{"BFA":{},"MLI":2}},"notes":"n{n}"}}"#,
        1 + n % 28,
        n % 24,
        n % 60,
        if n.is_multiple_of(2) {
            "incoming"
        } else {
            "outgoing"
        },
        total - 2
    ))
    .expect("valid submission")
}

pub struct Replica {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

/// The store backend these suites run on: SQLite, or PostgreSQL with
/// `FMP_TEST_BACKEND=postgres` (and a cluster in `FMP_TEST_PG`;
/// `scripts/test-all.sh` runs them on both).
pub fn backend() -> fmp_core::store::testing::Backend {
    fmp_core::store::testing::from_env()
}

pub fn replica(name: &str) -> Replica {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = (backend().init)(dir.path(), name).expect("init");
    Replica { dir, store }
}

pub fn id(r: &Replica) -> Uuid {
    r.store.identity().device_id
}

/// A device known with this scope, with a supervisor's rights (HQ's if
/// unrestricted): no role refusal gets in the way of scope tests.
pub fn info(r: &Replica, fmps: Option<&[&str]>) -> AuthorInfo {
    let role = if fmps.is_none() {
        fmp_sync::Role::Hq
    } else {
        fmp_sync::Role::Supervisor
    };
    info_as(r, fmps, role)
}

/// A device known with this scope and role.
pub fn info_as(r: &Replica, fmps: Option<&[&str]>, role: fmp_sync::Role) -> AuthorInfo {
    AuthorInfo {
        public_key: r.store.identity().public_key().to_vec(),
        fmps: fmps.map(|l| l.iter().map(|s| s.to_string()).collect()),
        may_enroll: fmps.is_none(),
        role,
    }
}

/// Every replica known, unrestricted.
pub fn trust_all(rs: &[&Replica]) -> StaticTrust {
    let mut t = StaticTrust::new(true);
    for r in rs {
        t.insert(id(r), info(r, None));
    }
    t
}

/// Everything a store holds that must converge: the materialized rows, the
/// nationalities, each document's heads, and the set of change hashes.
pub type Dump = testing::Converged;

pub fn dump(s: &Store) -> Dump {
    testing::converged(s).expect("dump")
}

/// The whole database's contents (every table, every row), for "unchanged" checks.
pub fn raw(s: &Store) -> Vec<String> {
    testing::dump(s).expect("raw")
}
