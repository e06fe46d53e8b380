//! Set-ups gone wrong, tried from outside: a pinned store given a plain
//! `http://` address, a hub restarted with or without TLS by mistake, an
//! old join code run again, a hub of another HQ, a hub joining again with a
//! device code. Each must be said at once, with nothing changed or sent.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fmp_core::store::{Filter, Store};
use fmp_hub::auth::Signed;
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::server::{ErrorBody, HqIdentity, JOIN_PATH, JoinRequest};
use fmp_hub::{HubError, HubHandle, Limits, ServeOptions, enroll, serve_with};

fn cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let c = dir.join(format!("{name}.crt"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, ck.cert.pem()).unwrap();
    std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
    (c, k)
}

fn serve(store: &Path, listen: &str, tls: Option<(PathBuf, PathBuf)>) -> HubHandle {
    serve_with(ServeOptions {
        store: store.to_path_buf(),
        listen: listen.into(),
        tls,
        limits: Limits::default(),
    })
    .unwrap()
}

fn code(hub: &Path, fmps: &[&str], may_enroll: bool) -> String {
    let s = Store::open(hub).unwrap();
    let fmps: Vec<String> = fmps.iter().map(|f| f.to_string()).collect();
    enroll::create_code(&s, &fmps, Duration::from_secs(600), may_enroll).unwrap()
}

fn port(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_string()
}

fn record(store: &Store, fmp: &str) {
    let mut s = fmp_core::example_submission();
    s.fmp = fmp.into();
    store.record(s).unwrap();
}

/// Counts the retries a sync announces.
fn counting() -> (Arc<AtomicUsize>, SyncOptions) {
    let retries = Arc::new(AtomicUsize::new(0));
    let seen = retries.clone();
    let opts = SyncOptions {
        base_delay: Duration::from_secs(30),
        progress: Some(Box::new(move |p| {
            if matches!(p.event, client::Event::Retry { .. }) {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })),
        ..SyncOptions::default()
    };
    (retries, opts)
}

/// A join request sent as a client of our own making would: signed by
/// `who`, `req` as given; the status and the error code.
fn raw_join(who: &Store, url: &str, req: JoinRequest) -> (u16, String) {
    let body = serde_json::to_vec(&req).unwrap();
    let signed = Signed::new(who.identity(), "POST", JOIN_PATH, &body);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rb = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{url}{JOIN_PATH}"))
            .body(body);
        for (k, v) in signed.headers() {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let e: ErrorBody = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        (status, e.error)
    })
}

#[test]
fn a_store_that_pinned_a_certificate_sends_nothing_to_a_plain_http_address() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let srv = serve(&hub_dir, "127.0.0.1:0", Some(cert(tmp.path(), "a")));
    let joined = client::join(&phone, &srv.url(), &code(&hub_dir, &["ML-GOG"], false)).unwrap();
    let pinned = joined.tls_fingerprint.unwrap();
    record(&phone, "ML-GOG");

    // Someone listening on a plain-HTTP address given with `--hub`.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    fake.set_nonblocking(true).unwrap();
    let fake_url = format!("http://{}", fake.local_addr().unwrap());
    let err = client::sync(
        &phone,
        SyncOptions {
            url: Some(fake_url.clone()),
            ..SyncOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, HubError::PlainHttpPinned { pinned: p, .. } if *p == pinned),
        "{err}"
    );
    let words = err.to_string();
    assert!(
        words.contains(&pinned) && words.contains("https://"),
        "{words}"
    );
    assert!(
        fake.accept().is_err(),
        "the pinned store connected to a plain-HTTP address"
    );
    // The scheme in capitals is the same scheme, refused the same way.
    let shouted = fake_url.replacen("http://", "HTTP://", 1);
    let err = client::sync(
        &phone,
        SyncOptions {
            url: Some(shouted),
            ..SyncOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, HubError::PlainHttpPinned { .. }), "{err}");
    assert!(fake.accept().is_err(), "HTTP:// connected in clear text");
    // Nor can a join in clear text replace the pin.
    let err = client::join(&phone, &fake_url, "ABCDE-23456").unwrap_err();
    assert!(matches!(err, HubError::PlainHttpPinned { .. }), "{err}");
    assert!(fake.accept().is_err(), "the join connected in clear text");

    // `HTTPS://` in capitals is the pinned hub's address as well.
    let loud = srv.url().replacen("https://", "HTTPS://", 1);
    client::sync(
        &phone,
        SyncOptions {
            url: Some(loud),
            ..SyncOptions::default()
        },
    )
    .expect("HTTPS:// reaches the pinned hub");
    // The real hub restarted without TLS, at its address: nothing sent.
    let url = srv.url();
    srv.shutdown().unwrap();
    let plain = serve(&hub_dir, &format!("127.0.0.1:{}", port(&url)), None);
    let err = client::sync(
        &phone,
        SyncOptions {
            url: Some(plain.url()),
            ..SyncOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, HubError::PlainHttpPinned { .. }), "{err}");
    plain.shutdown().unwrap();
    let held = Store::open(&hub_dir)
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    assert_eq!(held.len(), 1, "only what went over TLS, as HTTPS://");
}

#[test]
fn a_hub_restarted_with_or_without_tls_by_mistake_is_said_at_once_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let srv = serve(&hub_dir, "127.0.0.1:0", Some(cert(tmp.path(), "a")));
    client::join(&phone, &srv.url(), &code(&hub_dir, &["ML-GOG"], false)).unwrap();
    record(&phone, "ML-GOG");
    let url = srv.url();
    srv.shutdown().unwrap();

    // Restarted without TLS: the phone's https address meets plain HTTP.
    let plain = serve(&hub_dir, &format!("127.0.0.1:{}", port(&url)), None);
    let (retries, opts) = counting();
    let err = client::sync(&phone, opts).unwrap_err();
    assert_eq!(retries.load(Ordering::SeqCst), 0, "{err}");
    assert!(
        matches!(
            err,
            HubError::TlsMismatch {
                hub_speaks_tls: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does not speak TLS"), "{err}");
    plain.shutdown().unwrap();

    // A TLS hub joined at an http:// address: told to use https.
    let other = Store::init(&tmp.path().join("other"), "other").unwrap();
    let tls_again = serve(
        &hub_dir,
        &format!("127.0.0.1:{}", port(&url)),
        Some((tmp.path().join("a.crt"), tmp.path().join("a.key"))),
    );
    let http_url = tls_again.url().replacen("https://", "http://", 1);
    let err = client::join(&other, &http_url, &code(&hub_dir, &["ML-GOG"], false)).unwrap_err();
    assert!(
        matches!(
            err,
            HubError::TlsMismatch {
                hub_speaks_tls: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&tls_again.url()), "{err}");
    tls_again.shutdown().unwrap();
}

#[test]
fn an_old_join_code_run_again_answers_the_devices_current_fmps() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_dir = tmp.path().join("hub");
    drop(Store::init(&hub_dir, "hub").unwrap());
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    let srv = serve(&hub_dir, "127.0.0.1:0", None);
    let c1 = code(&hub_dir, &["ML-GOG"], false);
    let c2 = code(&hub_dir, &["ML-HER"], false);
    client::join(&phone, &srv.url(), &c1).unwrap();
    client::join(&phone, &srv.url(), &c2).unwrap();
    let again = client::join(&phone, &srv.url(), &c1).unwrap();
    let her = vec!["ML-HER".to_string()];
    assert_eq!(again.fmps, her);
    assert_eq!(phone.enrolled_fmps().unwrap(), Some(her.clone()));
    // The hub and the phone agree: an ML-HER record goes through.
    record(&phone, "ML-HER");
    let sum = client::sync(&phone, SyncOptions::default()).unwrap();
    assert_eq!((sum.sent, sum.refused.len()), (1, 0), "{sum:?}");
    srv.shutdown().unwrap();
    let devices = fmp_hub::db::devices(&Store::open(&hub_dir).unwrap()).unwrap();
    assert_eq!(devices.len(), 1);
}

#[test]
fn a_hub_of_another_hq_refuses_the_join_before_using_the_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("hq-a"), tmp.path().join("hq-b"));
    drop(Store::init(&a_dir, "hq-a").unwrap());
    drop(Store::init(&b_dir, "hq-b").unwrap());
    let a = serve(&a_dir, "127.0.0.1:0", None);
    let b = serve(&b_dir, "127.0.0.1:0", None);
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    client::join(&phone, &a.url(), &code(&a_dir, &["ML-GOG"], false)).unwrap();
    assert!(phone.pinned_authority().unwrap().is_some());

    let foreign = code(&b_dir, &["ML-GOG"], false);
    let unchanged = || {
        let bs = Store::open(&b_dir).unwrap();
        assert!(fmp_hub::db::devices(&bs).unwrap().is_empty());
        assert_eq!(enroll::unused(&bs).unwrap().len(), 1, "the code was used");
    };
    // The client asks the hub's HQ first and refuses.
    let err = client::join(&phone, &b.url(), &foreign).unwrap_err();
    assert!(err.to_string().contains("pinned to HQ device"), "{err}");
    unchanged();
    // A join that skips that question (an older client, or a race) names
    // its HQ in the request: the hub refuses it before using the code.
    let a_hq = phone.pinned_authority().unwrap().unwrap();
    let (status, error) = raw_join(
        &phone,
        &b.url(),
        JoinRequest {
            code: foreign.clone(),
            name: "phone".into(),
            public_key: hex::encode(phone.identity().public_key()),
            hq: Some(HqIdentity {
                device: a_hq.device_id,
                public_key: hex::encode(&a_hq.public_key),
            }),
            enrolls: false,
        },
    );
    assert_eq!((status, error.as_str()), (409, "other_hq"));
    unchanged();
    // The phone still belongs to HQ A's hub.
    assert_eq!(fmp_hub::db::upstream(&phone).unwrap().unwrap().url, a.url());
    // The code stays good for a device of that HQ, even under the same name.
    let same_name = Store::init(&tmp.path().join("phone2"), "phone").unwrap();
    client::join(&same_name, &b.url(), &foreign).unwrap();
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[test]
fn a_hub_joining_again_with_a_device_code_is_refused_and_keeps_its_role() {
    let tmp = tempfile::tempdir().unwrap();
    let hq_dir = tmp.path().join("hq");
    drop(Store::init(&hq_dir, "hq").unwrap());
    let hq = serve(&hq_dir, "127.0.0.1:0", Some(cert(tmp.path(), "a")));
    let kayes = Store::init(&tmp.path().join("kayes"), "kayes").unwrap();
    let j = client::join(&kayes, &hq.url(), &code(&hq_dir, &["ML-GOG"], true)).unwrap();
    assert!(j.may_enroll);
    enroll::create_code(&kayes, &["ML-GOG".into()], Duration::from_secs(60), false).unwrap();

    // HQ's certificate renewed: the mismatch names the kind of code needed.
    let url = hq.url();
    hq.shutdown().unwrap();
    let renewed = serve(
        &hq_dir,
        &format!("127.0.0.1:{}", port(&url)),
        Some(cert(tmp.path(), "b")),
    );
    let err = client::sync(&kayes, SyncOptions::default()).unwrap_err();
    assert!(
        matches!(err, HubError::CertificateChanged { hub: true, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("enroll-code --hub"), "{err}");

    // Joining again with a plain device code: refused, nothing changed.
    let plain = code(&hq_dir, &["ML-GOG"], false);
    let err = client::join(&kayes, &renewed.url(), &plain).unwrap_err();
    assert!(
        matches!(&err, HubError::Refused { status: 409, error, .. } if error == "hub_code_needed"),
        "{err}"
    );
    assert!(err.to_string().contains("--hub"), "{err}");
    {
        let hs = Store::open(&hq_dir).unwrap();
        assert_eq!(enroll::unused(&hs).unwrap().len(), 1, "the code was used");
        let rows = fmp_hub::db::devices(&hs).unwrap();
        assert!(rows.iter().all(|d| d.may_enroll), "{rows:?}");
    }
    enroll::check_may_enroll(&kayes, &["ML-GOG".into()]).unwrap();
    // With a --hub code it renews and stays a hub.
    let j = client::join(&kayes, &renewed.url(), &code(&hq_dir, &["ML-GOG"], true)).unwrap();
    assert!(j.may_enroll);
    client::sync(&kayes, SyncOptions::default()).unwrap();
    renewed.shutdown().unwrap();
}

#[test]
fn a_store_that_enrolled_devices_of_its_own_is_refused_a_device_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (up_dir, own_dir) = (tmp.path().join("up"), tmp.path().join("own"));
    drop(Store::init(&up_dir, "up").unwrap());
    drop(Store::init(&own_dir, "own").unwrap());
    let own = serve(&own_dir, "127.0.0.1:0", None);
    let phone = Store::init(&tmp.path().join("phone"), "phone").unwrap();
    client::join(&phone, &own.url(), &code(&own_dir, &["ML-GOG"], false)).unwrap();
    own.shutdown().unwrap();

    // A store with a device of its own (never granted enrollment by
    // anyone: it joined no hub) joins a hub with a device code.
    let up = serve(&up_dir, "127.0.0.1:0", None);
    let own_store = Store::open(&own_dir).unwrap();
    let err = client::join(&own_store, &up.url(), &code(&up_dir, &["ML-GOG"], false)).unwrap_err();
    assert!(
        matches!(&err, HubError::Refused { status: 409, error, .. } if error == "hub_code_needed"),
        "{err}"
    );
    assert!(fmp_hub::db::upstream(&own_store).unwrap().is_none());
    up.shutdown().unwrap();
    let up_store = Store::open(&up_dir).unwrap();
    assert!(fmp_hub::db::devices(&up_store).unwrap().is_empty());
}
