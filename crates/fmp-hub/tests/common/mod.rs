//! What the hub's test files share: a real hub on loopback and a phone
//! joined to it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use fmp_core::store::Store;
use fmp_hub::client;
use fmp_hub::{HubHandle, Limits, ServeOptions, enroll, serve_with};

/// A phone joined for ML-GOG to a real hub serving on loopback.
pub struct Joined {
    /// Holds both stores' directories.
    pub tmp: tempfile::TempDir,
    /// The hub's store directory.
    pub hub_dir: PathBuf,
    /// The phone's store.
    pub phone: Store,
    /// The running hub.
    pub hub: HubHandle,
}

/// A hub with these limits and a phone joined to it, nothing recorded yet.
pub fn joined(limits: Limits) -> Joined {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let hub = serve_with(ServeOptions {
        store: hub_dir.clone(),
        listen: "127.0.0.1:0".into(),
        tls: None,
        limits,
    })
    .unwrap();
    let code = {
        let h = Store::open(&hub_dir).unwrap();
        enroll::create_code(&h, &["ML-GOG".into()], Duration::from_secs(60), false).unwrap()
    };
    client::join(&phone, &hub.url(), &code).unwrap();
    Joined {
        tmp,
        hub_dir,
        phone,
        hub,
    }
}
