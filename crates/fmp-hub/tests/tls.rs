//! TLS: a hub with a self-signed certificate; the phone pins it at join
//! and syncs; a hub presenting another certificate is refused.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use fmp_core::store::{Filter, Store};
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::{HubError, Limits, ServeOptions, enroll, serve_with, tls};

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
    // With the default retries: said at once, never retried as an outage,
    // naming both fingerprints and what to do.
    let retries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = retries.clone();
    let err = client::sync(
        &phone,
        SyncOptions {
            base_delay: Duration::from_secs(30),
            progress: Some(Box::new(move |p| {
                if matches!(p.event, client::Event::Retry { .. }) {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })),
            ..SyncOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        retries.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{err}"
    );
    let HubError::CertificateChanged {
        pinned, presented, ..
    } = &err
    else {
        panic!("not a certificate change: {err}");
    };
    let a = tls::file_fingerprint(&tmp.path().join("a.crt")).unwrap();
    let b = tls::file_fingerprint(&tmp.path().join("b.crt")).unwrap();
    assert_eq!((pinned, presented), (&a, &b));
    assert_eq!(joined.tls_fingerprint.as_deref(), Some(a.as_str()));
    let words = err.to_string();
    assert!(
        words.contains(&a) && words.contains(&b) && words.contains("fmp join"),
        "{words}"
    );
    other.shutdown().unwrap();
}

#[test]
fn a_self_signed_certificate_is_made_once_when_neither_file_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, k) = (tmp.path().join("hub.crt"), tmp.path().join("hub.key"));
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    assert!(tls::ensure_self_signed(&c, &k, &names).unwrap(), "made");
    let fp = tls::file_fingerprint(&c).unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    assert!(!tls::ensure_self_signed(&c, &k, &names).unwrap(), "kept");
    assert_eq!(
        tls::file_fingerprint(&c).unwrap(),
        fp,
        "the same certificate"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's only: {mode:o}");
    }
    // A hub serves with it.
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let srv = serve_with(ServeOptions {
        store: hub_dir,
        listen: "127.0.0.1:0".into(),
        tls: Some((c.clone(), k.clone())),
        limits: Limits::default(),
    })
    .unwrap();
    srv.shutdown().unwrap();
    // One file without the other: refused, naming the missing one, nothing made.
    std::fs::remove_file(&k).unwrap();
    let err = tls::ensure_self_signed(&c, &k, &names)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hub.key") && err.contains("does not"), "{err}");
    assert!(!k.exists());
}
