//! End to end: three phones enroll on a regional hub, record offline, sync;
//! the same submission is edited on a phone and on the hub; the hub joins
//! HQ and forwards; HQ holds every submission once, with the merged edit and
//! signatures that verify. Real `fmp serve` processes on loopback ports,
//! driven by real `fmp` commands.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use fmp_core::store::{Filter, Store};
use fmp_sync::{AuthorInfo, StaticTrust};
use support::*;

#[test]
fn phones_to_regional_hub_to_hq_with_a_merged_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hq = init(root, "hq");
    let gao = init(root, "gao-hub");
    let phones: Vec<_> = ["gogui-1", "heremakono-1", "menaka-1"]
        .iter()
        .map(|n| init(root, n))
        .collect();
    let fmps = ["ML-GOG", "ML-HER", "ML-MNK"];

    let hq_srv = Served::start(&hq, &[]);
    let gao_srv = Served::start(&gao, &[]);

    // The regional hub joins HQ for its FMPs, as a hub.
    let out = enroll(
        &hq,
        &gao,
        &hq_srv.url,
        &["ML-GOG", "ML-HER", "ML-MNK"],
        &["--hub", "--expires", "1h"],
    );
    assert!(out.contains("may enroll"), "{out}");

    // Three phones enroll on the regional hub, one FMP each.
    for (p, f) in phones.iter().zip(fmps) {
        let out = enroll(&gao, p, &gao_srv.url, &[f], &[]);
        assert!(out.contains(f), "{out}");
    }
    let devices = fmp(&["devices", "--store", s(&gao), "--json"]);
    let devices: serde_json::Value = serde_json::from_str(&devices).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 3);

    // Offline: each records five submissions; a phone cannot record for another FMP.
    for (i, (p, f)) in phones.iter().zip(fmps).enumerate() {
        let out = fmp_in(
            &["record", "--store", s(p)],
            Some(&submissions(f, 5, &format!("p{i}"))),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = fmp_in(
        &["record", "--store", s(&phones[0])],
        Some(&submissions("ML-HER", 1, "x")),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enrolled for ML-GOG only"));

    for p in &phones {
        let out = fmp(&["sync", "--store", s(p)]);
        assert!(out.contains("sent 5,"), "{out}");
    }
    let listed = fmp(&["list", "--store", s(&gao), "--format", "json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 15);

    // The same submission edited on the phone (offline) and on the hub.
    let target = listed.iter().find(|v| v["notes"] == "p0 #2").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    fmp(&[
        "edit",
        "--store",
        s(&phones[0]),
        &target,
        r#"{"departure":{"country":"SEN","place":"Tambacounda"}}"#,
    ]);
    fmp(&[
        "edit",
        "--store",
        s(&gao),
        &target,
        r#"{"notes":"checked by the Gao supervisor"}"#,
    ]);
    fmp(&["sync", "--store", s(&phones[0])]);
    // Both ways: the phone has the hub's edit and the hub the phone's.
    for store in [&phones[0], &gao] {
        let shown: serde_json::Value =
            serde_json::from_str(&fmp(&["show", "--store", s(store), &target])).unwrap();
        let text = shown.to_string();
        assert!(text.contains("Tambacounda"), "{text}");
        assert!(text.contains("checked by the Gao supervisor"), "{text}");
    }
    // Other phones receive the region's data too (including the edit).
    fmp(&["sync", "--store", s(&phones[1])]);

    // The hub forwards to HQ through its own enrollment.
    let out = fmp(&["sync", "--store", s(&gao)]);
    assert!(out.contains("synced"), "{out}");
    let out = fmp(&["sync", "--store", s(&gao)]);
    assert!(
        out.contains("sent 0, received 0"),
        "a second sync is a no-op: {out}"
    );

    // HQ stops gracefully; everything acknowledged is there.
    assert!(hq_srv.stop(), "hq exits cleanly on SIGTERM");
    assert!(gao_srv.stop());
    let hq_store = Store::open(&hq).unwrap();
    let all = hq_store.list(&Filter::default()).unwrap();
    assert_eq!(all.len(), 15, "every submission once");
    let ids: HashSet<_> = all.iter().map(|s| s.submission.id).collect();
    assert_eq!(ids.len(), 15);
    let merged = all
        .iter()
        .find(|s| s.submission.id.map(|u| u.to_string()) == Some(target.clone()))
        .unwrap();
    assert_eq!(merged.submission.notes, "checked by the Gao supervisor");
    assert_eq!(
        merged.submission.departure.place.as_deref(),
        Some("Tambacounda")
    );

    // Signatures verify: an auditor trusting only the regional hub's key
    // (all or nothing per message) receives every change from HQ.
    let gao_store = Store::open(&gao).unwrap();
    let gao_id = gao_store.identity();
    let auditor = Store::init(&root.join("auditor"), "auditor").unwrap();
    let trust = StaticTrust::new(true).with(
        gao_id.device_id,
        AuthorInfo {
            public_key: gao_id.public_key().to_vec(),
            fmps: Some(fmps.iter().map(|f| f.to_string()).collect()),
            may_enroll: true,
            role: fmp_sync::Role::Supervisor,
        },
    );
    let report = fmp_sync::sync_in_memory(
        &auditor,
        &trust,
        &hq_store,
        &StaticTrust::new(false),
        64 * 1024,
    )
    .unwrap();
    assert!(report.refused_here.is_empty(), "{:?}", report.refused_here);
    assert_eq!(auditor.list(&Filter::default()).unwrap().len(), 15);
    let authors: HashSet<String> = fmp_core::store::testing::changes(&auditor)
        .unwrap()
        .into_iter()
        .map(|c| c.author)
        .collect();
    assert_eq!(
        authors.len(),
        4,
        "three phones and the hub: original authors kept"
    );
}

/// HQ adds a tenth FMP (Kayes) to the registry; it reaches a phone through
/// the regional hub; the phone records for it and the record reaches HQ.
/// Neither the phone nor the regional hub may rewrite the registry.
#[test]
fn hq_registry_reaches_a_phone_through_a_regional_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hq = init(root, "hq");
    let kayes = init(root, "kayes-hub");
    let phone = init(root, "kayes-phone");
    let hq_srv = Served::start(&hq, &[]);
    let kayes_srv = Served::start(&kayes, &[]);

    let mut reg: serde_json::Value =
        serde_json::from_str(&fmp(&["registry", "--store", s(&hq), "show", "--json"])).unwrap();
    assert_eq!(reg["fmps"].as_array().unwrap().len(), 9);
    reg["fmps"].as_array_mut().unwrap().push(serde_json::json!({
        "code": "ML-KAY", "name": "Kayes", "admin1": "Kayes", "country": "MLI",
        "kind": "entry_exit", "lat": 14.447, "lon": -11.445,
        "active_since": "2016-07-01", "active_until": null, "border_with": "SEN"
    }));
    let file = root.join("registry.json");
    std::fs::write(&file, reg.to_string()).unwrap();
    // A phone that never synced does not know Kayes.
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-KAY", 1, "early")),
    );
    assert!(!out.status.success());
    let out = fmp(&["registry", "--store", s(&hq), "set", s(&file)]);
    assert!(out.contains("10 FMPs"), "{out}");
    // And publishes a second version of the form.
    let mut form = fmp_core::Form::dtm_fmp_flow_v1();
    form.version = 2;
    form.title_en.push_str(" (v2)");
    let form_file = root.join("form-v2.json");
    std::fs::write(&form_file, form.to_json()).unwrap();
    let out = fmp(&["form", "--store", s(&hq), "add", s(&form_file)]);
    assert!(out.contains("published"), "{out}");
    assert!(fmp(&["registry", "--store", s(&hq), "show"]).contains("ML-KAY"));

    // The regional hub joins HQ for Gogui and Kayes (HQ knows Kayes now) and syncs.
    enroll(&hq, &kayes, &hq_srv.url, &["ML-GOG", "ML-KAY"], &["--hub"]);
    fmp(&["sync", "--store", s(&kayes)]);
    assert!(fmp(&["registry", "--store", s(&kayes), "show"]).contains("ML-KAY"));

    // A phone enrolled for Kayes gets the registry from the regional hub.
    enroll(&kayes, &phone, &kayes_srv.url, &["ML-KAY"], &[]);
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(!out.contains("refused"), "{out}");
    let shown = fmp(&["registry", "--store", s(&phone), "show"]);
    assert!(
        shown.contains("ML-KAY") && shown.contains("Kayes"),
        "{shown}"
    );

    // It records for Kayes; the record reaches HQ through the hub.
    let out = fmp_in(
        &["record", "--store", s(&phone)],
        Some(&submissions("ML-KAY", 2, "kayes")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fmp(&["sync", "--store", s(&phone)]);
    assert!(out.contains("sent 2,"), "{out}");
    fmp(&["sync", "--store", s(&kayes)]);
    let at_hq = fmp(&[
        "list",
        "--store",
        s(&hq),
        "--fmp",
        "ML-KAY",
        "--format",
        "json",
    ]);
    let at_hq: Vec<serde_json::Value> = serde_json::from_str(&at_hq).unwrap();
    assert_eq!(at_hq.len(), 2);

    // Neither the phone nor the regional hub may rewrite the registry.
    for store in [&phone, &kayes] {
        let out = fmp_in(&["form", "--store", s(store), "add", s(&form_file)], None);
        assert!(!out.status.success());
        let out = fmp_in(&["registry", "--store", s(store), "set", s(&file)], None);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("only HQ"), "{err}");
    }
}
