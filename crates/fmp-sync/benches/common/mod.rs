//! What the sync benches share: replicas in their own directories, and a
//! trust in which every replica is known as HQ.

use std::path::Path;

use fmp_core::store::Store;
use fmp_sync::{AuthorInfo, StaticTrust};
use uuid::Uuid;

/// A store in a temporary directory (removed with it).
pub struct Rep {
    _dir: tempfile::TempDir,
    /// The store.
    pub store: Store,
}

/// A new store named `name` in a temporary directory under `base`.
pub fn rep(name: &str, base: &Path) -> Rep {
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let store = Store::init(&dir.path().join("store"), name).expect("init");
    Rep { _dir: dir, store }
}

/// The replica's device id.
pub fn id(r: &Rep) -> Uuid {
    r.store.identity().device_id
}

/// A trust that knows every one of `reps`, unrestricted.
pub fn trust_all(reps: &[&Rep]) -> StaticTrust {
    let mut trust = StaticTrust::new(true);
    for r in reps {
        trust.insert(
            id(r),
            AuthorInfo {
                public_key: r.store.identity().public_key().to_vec(),
                fmps: None,
                may_enroll: true,
                role: fmp_sync::Role::Hq,
            },
        );
    }
    trust
}
