//! TLS: a hub with a self-signed certificate; the phone pins it at join
//! and syncs; a hub presenting another certificate is refused.

use std::path::Path;
use std::time::Duration;

use fmp_core::store::{Filter, Store};
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::{Limits, ServeOptions, enroll, serve_with};

fn cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let c = dir.join(format!("{name}.crt"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, ck.cert.pem()).unwrap();
    std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn a_phone_pins_the_hubs_self_signed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let srv = serve_with(ServeOptions {
        store: hub_dir.clone(),
        listen: "127.0.0.1:0".into(),
        tls: Some(cert(tmp.path(), "a")),
        limits: Limits::default(),
    })
    .unwrap();
    assert!(srv.url().starts_with("https://"));
    let code = {
        let hub = Store::open(&hub_dir).unwrap();
        enroll::create_code(&hub, &["ML-GOG".into()], Duration::from_secs(60), false).unwrap()
    };
    let joined = client::join(&phone, &srv.url(), &code).unwrap();
    assert_eq!(joined.fmps, vec!["ML-GOG".to_string()]);
    let mut s = fmp_core::example_submission();
    s.fmp = "ML-GOG".into();
    phone.record(s).unwrap();
    let sum = client::sync(&phone, SyncOptions::default()).unwrap();
    assert_eq!(sum.sent, 1);
    let url = srv.url();
    srv.shutdown().unwrap();
    assert_eq!(
        Store::open(&hub_dir)
            .unwrap()
            .list(&Filter::default())
            .unwrap()
            .len(),
        1
    );

    // Another certificate at the hub's address: the pin refuses it.
    let port = url.rsplit(':').next().unwrap().to_string();
    let other = serve_with(ServeOptions {
        store: hub_dir.clone(),
        listen: format!("127.0.0.1:{port}"),
        tls: Some(cert(tmp.path(), "b")),
        limits: Limits::default(),
    })
    .unwrap();
    let err = client::sync(
        &phone,
        SyncOptions {
            retries: 0,
            ..SyncOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not the one pinned"), "{err}");
    other.shutdown().unwrap();
}
