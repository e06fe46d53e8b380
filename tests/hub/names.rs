//! Device names from outside: `fmp init` refuses what a hub would refuse,
//! a name taken at the hub is fixed with `fmp rename` and the same code,
//! look-alike names count as taken, `fmp revoke` names the id it revoked,
//! and reinstating a device into a name taken since warns.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::path::Path;

use support::*;

fn refused(args: &[&str]) -> String {
    let out = fmp_in(args, None);
    assert!(
        !out.status.success(),
        "fmp {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn device_id(store: &Path) -> String {
    fmp_core::store::Store::open(store)
        .unwrap()
        .identity()
        .device_id
        .to_string()
}

#[test]
fn fmp_init_refuses_the_names_a_hub_refuses_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "x".repeat(65);
    for (i, name) in [
        "",
        "   ",
        long.as_str(),
        "gogui\u{1b}[2J",
        "a\nb",
        "a\u{200b}b",
        "a\u{202e}b",
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("s{i}"));
        let err = refused(&["init", "--store", s(&dir), "--name", name]);
        assert!(err.contains("device name"), "{name:?}: {err}");
        assert!(!err.contains('\u{1b}'), "raw escape printed: {err:?}");
        assert!(
            !dir.join(fmp_core::store::DB_FILE).exists(),
            "{name:?}: a store was made"
        );
    }
    // The hub's rule is the same one: 64 characters of any script pass.
    let ok = "é".repeat(64);
    fmp(&["init", "--store", s(&tmp.path().join("ok")), "--name", &ok]);
}

#[test]
fn a_name_taken_at_the_hub_is_fixed_with_fmp_rename_and_the_same_code() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let first = tmp.path().join("first");
    fmp(&["init", "--store", s(&first), "--name", "gogui-phone-1"]);
    enroll(&hub, &first, &srv.url, &["ML-GOG"], &[]);

    let second = tmp.path().join("second");
    fmp(&["init", "--store", s(&second), "--name", "gogui-phone-1"]);
    let c = code(&hub, &["ML-GOG"], &[]);
    let join = [
        "join",
        "--store",
        s(&second),
        "--hub",
        &srv.url,
        "--code",
        &c,
    ];
    let err = refused(&join);
    assert!(
        err.contains("name_taken") && err.contains("fmp rename"),
        "{err}"
    );
    fmp(&["rename", "--store", s(&second), "gogui-phone-2"]);
    let out = fmp(&join);
    assert!(out.contains("joined"), "{out}");
    // A joined store is not renamed (its hub knows it by its name), nor
    // renamed to a name a hub refuses.
    let err = refused(&["rename", "--store", s(&second), "gogui-phone-3"]);
    assert!(err.contains("not renamed"), "{err}");
    let third = init(tmp.path(), "third");
    let err = refused(&["rename", "--store", s(&third), "a\u{202e}b"]);
    assert!(err.contains("device name"), "{err}");
    let devices = fmp(&["devices", "--store", s(&hub)]);
    assert!(devices.contains("gogui-phone-2"), "{devices}");
}

#[test]
fn look_alike_names_are_taken_revoke_names_its_id_and_a_reinstated_clash_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let first = tmp.path().join("first");
    fmp(&["init", "--store", s(&first), "--name", "gogui-phone-1"]);
    enroll(&hub, &first, &srv.url, &["ML-GOG"], &[]);
    for (i, name) in [
        "gogui-phone-1 ",
        "GOGUI-PHONE-1",
        "gogui\u{2010}phone\u{2010}1",
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("look{i}"));
        fmp(&["init", "--store", s(&dir), "--name", name]);
        let c = code(&hub, &["ML-GOG"], &[]);
        let err = refused(&["join", "--store", s(&dir), "--hub", &srv.url, "--code", &c]);
        assert!(
            err.contains("name_taken") && err.contains(&device_id(&first)),
            "{name:?}: {err}"
        );
    }
    let first_id = device_id(&first);
    let out = fmp(&["revoke", "--store", s(&hub), "gogui-phone-1"]);
    assert!(
        out.contains(&first_id),
        "revoke does not name the id: {out}"
    );

    // The name is free once revoked; reinstating the first then warns.
    let other = tmp.path().join("other");
    fmp(&["init", "--store", s(&other), "--name", "Gogui-Phone-1"]);
    enroll(&hub, &other, &srv.url, &["ML-GOG"], &[]);
    let out = fmp_in(
        &["devices", "--store", s(&hub), "--reinstate", &first_id],
        None,
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains(&device_id(&other)),
        "no warning: {err}"
    );
    // A name an older hub let in with a trailing space is listed quoted.
    {
        let store = fmp_core::store::Store::open(&hub).unwrap();
        fmp_core::store::testing::rename_enrolled_devices(&store, "gogui-phone-1 ").unwrap();
    }
    let listing = fmp(&["devices", "--store", s(&hub)]);
    assert!(listing.contains("\"gogui-phone-1 \""), "{listing}");
}
