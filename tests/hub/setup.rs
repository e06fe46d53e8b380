//! Hubs set up wrong: a hub that joined HQ with a device code, or enrolls
//! outside its FMPs, is refused at `fmp enroll-code`; and a phone its hub
//! enrolled in a way HQ cannot verify (an older store, before that check)
//! never blocks the region: its changes are held at the hub, shown by
//! `fmp status`, and reach HQ exactly once when HQ can verify them.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::path::Path;

use support::*;

fn count(store: &Path) -> usize {
    let out = fmp(&["list", "--store", s(store), "--format", "json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .len()
}

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

fn record(store: &Path, fmp: &str, n: usize, tag: &str) {
    let out = fmp_in(
        &["record", "--store", s(store)],
        Some(&submissions(fmp, n, tag)),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn status_json(store: &Path) -> serde_json::Value {
    serde_json::from_str(&fmp(&["status", "--store", s(store), "--json"])).unwrap()
}

#[test]
fn a_hub_may_enroll_only_what_its_upstream_granted_and_hq_enrolls_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    // Joined with a plain device code (no --hub).
    let tbk = init(tmp.path(), "timbuktu-hub");
    enroll(&hq, &tbk, &hq_srv.url, &["ML-TBK"], &[]);
    let err = refused(&["enroll-code", "--store", s(&tbk), "--fmp", "ML-TBK"]);
    assert!(err.contains("device code"), "{err}");
    assert!(err.contains("--hub"), "names the fix: {err}");
    // Joined as a hub for ML-GOG: ML-BEN is outside it.
    let kayes = init(tmp.path(), "kayes-hub");
    enroll(&hq, &kayes, &hq_srv.url, &["ML-GOG"], &["--hub"]);
    let err = refused(&[
        "enroll-code",
        "--store",
        s(&kayes),
        "--fmp",
        "ML-GOG",
        "--fmp",
        "ML-BEN",
    ]);
    assert!(
        err.contains("ML-BEN") && err.contains("only for ML-GOG"),
        "{err}"
    );
    // A hub code from a hub (a hub below it) is bound by the same scope.
    let err = refused(&[
        "enroll-code",
        "--store",
        s(&kayes),
        "--fmp",
        "ML-BEN",
        "--hub",
    ]);
    assert!(err.contains("only for ML-GOG"), "{err}");
    assert_eq!(code(&kayes, &["ML-GOG"], &["--hub"]).len(), 11);
    // Within its FMPs it enrolls; HQ (no upstream) enrolls any FMP.
    assert_eq!(code(&kayes, &["ML-GOG"], &[]).len(), 11);
    assert_eq!(code(&hq, &["ML-BEN", "ML-HER"], &[]).len(), 11);
}

#[test]
fn a_phone_hq_cannot_verify_is_held_at_its_hub_and_never_blocks_the_region() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let kayes = init(tmp.path(), "kayes-hub");
    enroll(&hq, &kayes, &hq_srv.url, &["ML-GOG"], &["--hub"]);
    let kayes_srv = Served::start(&kayes, &[]);
    let gogui = init(tmp.path(), "gogui-phone");
    enroll(&kayes, &gogui, &kayes_srv.url, &["ML-GOG"], &[]);
    // An enrollment for ML-BEN, beyond what HQ granted Kayes: as an older
    // store made it, before `enroll-code` refused it.
    let stray = init(tmp.path(), "benena-phone");
    {
        let store = fmp_core::store::Store::open(&kayes).unwrap();
        let expires = chrono::Utc::now().timestamp_millis() + 3_600_000;
        fmp_hub::db::insert_code(
            &store,
            &fmp_hub::enroll::hash_code("ABCDE-FGHJK"),
            &["ML-BEN".to_string()],
            false,
            expires,
        )
        .unwrap();
    }
    fmp(&[
        "join",
        "--store",
        s(&stray),
        "--hub",
        &kayes_srv.url,
        "--code",
        "ABCDE-FGHJK",
    ]);
    record(&stray, "ML-BEN", 2, "stray");
    record(&gogui, "ML-GOG", 3, "gogui");
    for p in [&stray, &gogui] {
        fmp(&["sync", "--store", s(p)]);
    }
    assert_eq!(count(&kayes), 5);
    // The forward is not refused whole: Gogui's records reach HQ.
    fmp(&["sync", "--store", s(&kayes)]);
    assert_eq!(count(&hq), 3, "the region's verifiable records arrived");
    let stray_id = device_id(&stray);
    let st = status_json(&kayes);
    let held = st["held"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{st}");
    assert_eq!(held[0]["author"], stray_id.as_str(), "{st}");
    assert_eq!(held[0]["changes"], 2, "{st}");
    assert!(
        held[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot verify its author"),
        "{st}"
    );
    let text = fmp(&["status", "--store", s(&kayes)]);
    assert!(text.contains("quarantined: 2"), "{text}");
    // By the name this hub enrolled it with, the id beside it (and in JSON).
    assert_eq!(held[0]["author_name"], "benena-phone", "{st}");
    assert!(
        text.contains(&format!(
            "held: 2 change(s) by benena-phone ({})",
            &stray_id[..8]
        )),
        "{text}"
    );
    // Later syncs go on; the held changes are offered again and held again.
    record(&gogui, "ML-GOG", 1, "later");
    fmp(&["sync", "--store", s(&gogui)]);
    fmp(&["sync", "--store", s(&kayes)]);
    assert_eq!(count(&hq), 4);
    assert_eq!(status_json(&kayes)["held"][0]["changes"], 2);
    // HQ re-enrolls Kayes as a hub for both FMPs (same key): the held
    // changes pass at the next sync, once.
    enroll(&hq, &kayes, &hq_srv.url, &["ML-GOG", "ML-BEN"], &["--hub"]);
    fmp(&["sync", "--store", s(&kayes)]);
    assert_eq!(count(&hq), 6, "the held records reached HQ");
    let st = status_json(&kayes);
    assert_eq!(st["quarantined"].as_array().unwrap().len(), 0, "{st}");
    assert!(
        fmp(&["status", "--store", s(&kayes)]).contains("quarantined: none"),
        "released"
    );
    fmp(&["sync", "--store", s(&kayes)]);
    assert_eq!(count(&hq), 6, "exactly once");
    let hq_store = fmp_core::store::Store::open(&hq).unwrap();
    let n = fmp_core::store::testing::changes(&hq_store)
        .unwrap()
        .iter()
        .filter(|c| c.author == stray_id)
        .count();
    assert_eq!(n, 2, "each held change stored once at HQ");
}

#[test]
fn revoke_by_a_shared_name_lists_the_candidates_and_devices_escapes_names() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let a = init(tmp.path(), "phone-a");
    let b = init(tmp.path(), "phone-b");
    enroll(&hub, &a, &srv.url, &["ML-GOG"], &[]);
    enroll(&hub, &b, &srv.url, &["ML-GOG"], &[]);
    // An older store may hold a shared name and an escape sequence.
    {
        let store = fmp_core::store::Store::open(&hub).unwrap();
        fmp_core::store::testing::rename_enrolled_devices(&store, "gogui\u{1b}[2J\nphone").unwrap();
    }
    let listing = fmp(&["devices", "--store", s(&hub)]);
    assert!(!listing.contains('\u{1b}'), "{listing:?}");
    assert!(listing.contains("gogui\\u{1b}[2J\\nphone"), "{listing:?}");
    assert_eq!(
        listing.lines().count(),
        3,
        "one line per device: {listing:?}"
    );
    let err = refused(&["revoke", "--store", s(&hub), "gogui\u{1b}[2J\nphone"]);
    assert!(
        err.contains(&device_id(&a)) && err.contains(&device_id(&b)),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let devices: serde_json::Value =
        serde_json::from_str(&fmp(&["devices", "--store", s(&hub), "--json"])).unwrap();
    assert!(
        devices
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["revoked_at"].is_null()),
        "nothing revoked"
    );
    // By id: one device; then reinstated by the explicit action.
    let a_id = device_id(&a);
    fmp(&["revoke", "--store", s(&hub), &a_id]);
    let out = fmp(&["devices", "--store", s(&hub), "--reinstate", &a_id]);
    assert!(out.contains(&a_id), "{out}");
    fmp(&["sync", "--store", s(&a)]);
}

#[test]
fn a_revoked_phone_s_status_says_it_was_revoked_until_it_is_reinstated() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = init(tmp.path(), "hub");
    let srv = Served::start(&hub, &[]);
    let phone = init(tmp.path(), "gogui-phone");
    enroll(&hub, &phone, &srv.url, &["ML-GOG"], &[]);
    record(&phone, "ML-GOG", 2, "before");
    fmp(&["sync", "--store", s(&phone)]);
    assert!(status_json(&phone)["refused_by_hub"].is_null());
    let id = device_id(&phone);
    fmp(&["revoke", "--store", s(&hub), &id]);
    record(&phone, "ML-GOG", 1, "after");
    let err = refused(&["sync", "--store", s(&phone), "--retries", "0"]);
    assert!(err.contains("revoked"), "{err}");
    let st = status_json(&phone);
    let reason = st["refused_by_hub"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("revoked"), "{st}");
    assert!(st["refused_by_hub"]["at"].as_str().is_some(), "{st}");
    let text = fmp(&["status", "--store", s(&phone)]);
    assert!(text.contains("refused by the hub since "), "{text}");
    assert_eq!(st["pending"], 1, "the record made after is kept: {st}");
    fmp(&["devices", "--store", s(&hub), "--reinstate", &id]);
    fmp(&["sync", "--store", s(&phone)]);
    let st = status_json(&phone);
    assert!(st["refused_by_hub"].is_null(), "{st}");
    assert_eq!(count(&hub), 3, "the record made while revoked arrives");
}

/// The FMPs' records at `store`, as (fmp, notes) pairs.
fn notes(store: &Path) -> Vec<(String, String)> {
    let out = fmp(&["list", "--store", s(store), "--format", "json"]);
    let mut v: Vec<(String, String)> = serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["fmp"].as_str().unwrap_or_default().to_string(),
                r["notes"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_regional_hubs_sharing_an_fmp_each_get_the_records_of_the_other_s_phones() {
    // Found by the simulation (FMP_SIM_OVERLAP=1, seed 1362960422): Bamako
    // could not verify a phone Kayes enrolled, so Gogui's records never
    // reached it.
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let kayes = init(tmp.path(), "kayes-hub");
    enroll(&hq, &kayes, &hq_srv.url, &["ML-GOG"], &["--hub"]);
    let bamako = init(tmp.path(), "bamako-hub");
    enroll(&hq, &bamako, &hq_srv.url, &["ML-GOG", "ML-HER"], &["--hub"]);
    let kayes_srv = Served::start(&kayes, &[]);
    let bamako_srv = Served::start(&bamako, &[]);
    let gogui = init(tmp.path(), "gogui-phone");
    enroll(&kayes, &gogui, &kayes_srv.url, &["ML-GOG"], &[]);
    let gogui2 = init(tmp.path(), "gogui-phone-2");
    enroll(&bamako, &gogui2, &bamako_srv.url, &["ML-GOG"], &[]);
    record(&gogui, "ML-GOG", 4, "kayes");
    record(&gogui2, "ML-GOG", 2, "bamako");
    for p in [&gogui, &gogui2] {
        fmp(&["sync", "--store", s(p)]);
    }
    for _ in 0..2 {
        for h in [&kayes, &bamako] {
            fmp(&["sync", "--store", s(h)]);
        }
    }
    for p in [&gogui, &gogui2] {
        fmp(&["sync", "--store", s(p)]);
    }
    let all = notes(&hq);
    assert_eq!(all.len(), 6, "{all:?}");
    for store in [&kayes, &bamako, &gogui, &gogui2] {
        assert_eq!(notes(store), all, "{}", store.display());
        let st = status_json(store);
        assert_eq!(st["quarantined"], serde_json::json!([]), "{st}");
    }
}

#[test]
fn a_hub_below_a_regional_hub_reaches_hq_and_hears_from_the_rest_of_its_region() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let kayes = init(tmp.path(), "kayes-hub");
    enroll(&hq, &kayes, &hq_srv.url, &["ML-GOG", "ML-HER"], &["--hub"]);
    let kayes_srv = Served::start(&kayes, &[]);
    // A district hub below Kayes, for Gogui only, and its phone.
    let nioro = init(tmp.path(), "nioro-hub");
    enroll(&kayes, &nioro, &kayes_srv.url, &["ML-GOG"], &["--hub"]);
    let nioro_srv = Served::start(&nioro, &[]);
    let gogui = init(tmp.path(), "gogui-phone");
    enroll(&nioro, &gogui, &nioro_srv.url, &["ML-GOG"], &[]);
    // A phone of Kayes itself for Gogui, and HQ's own record for it.
    let gogui2 = init(tmp.path(), "gogui-phone-2");
    enroll(&kayes, &gogui2, &kayes_srv.url, &["ML-GOG"], &[]);
    record(&gogui, "ML-GOG", 3, "nioro");
    record(&gogui2, "ML-GOG", 2, "kayes");
    // The district hub cannot enroll beyond what Kayes granted it.
    let err = refused(&["enroll-code", "--store", s(&nioro), "--fmp", "ML-HER"]);
    assert!(err.contains("only for ML-GOG"), "{err}");
    for _ in 0..2 {
        for store in [&gogui, &gogui2, &nioro, &kayes] {
            fmp(&["sync", "--store", s(store)]);
        }
    }
    let all = notes(&hq);
    assert_eq!(all.len(), 5, "every record reached HQ: {all:?}");
    for store in [&kayes, &nioro, &gogui, &gogui2] {
        assert_eq!(notes(store), all, "{}", store.display());
        let st = status_json(store);
        assert_eq!(st["quarantined"], serde_json::json!([]), "{st}");
    }
    // A review by HQ reaches the district hub's phone.
    let id = fmp(&["list", "--store", s(&hq), "--format", "json"]);
    let id = serde_json::from_str::<Vec<serde_json::Value>>(&id).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fmp(&["review", "--store", s(&hq), &id, "--status", "approved"]);
    for store in [&kayes, &nioro, &gogui] {
        fmp(&["sync", "--store", s(store)]);
    }
    let shown = fmp(&["show", "--store", s(&gogui), &id]);
    assert!(shown.contains("approved"), "{shown}");
}

/// HQ and the Kayes hub (joined with a hub code for `fmps`), both served.
struct Region {
    tmp: tempfile::TempDir,
    _hq_srv: Served,
    kayes: std::path::PathBuf,
    kayes_srv: Served,
}

fn kayes_region(fmps: &[&str]) -> Region {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let hq_srv = Served::start(&hq, &[]);
    let kayes = init(tmp.path(), "kayes-hub");
    enroll(&hq, &kayes, &hq_srv.url, fmps, &["--hub"]);
    let kayes_srv = Served::start(&kayes, &[]);
    Region {
        tmp,
        _hq_srv: hq_srv,
        kayes,
        kayes_srv,
    }
}

impl Region {
    /// A phone named `name` joined to Kayes for `fmp`.
    fn phone(&self, name: &str, fmp: &str) -> std::path::PathBuf {
        let p = init(self.tmp.path(), name);
        enroll(&self.kayes, &p, &self.kayes_srv.url, &[fmp], &[]);
        p
    }
}

#[test]
fn a_hub_s_status_counts_for_each_peer_only_what_it_may_receive_and_what_is_still_to_go_up() {
    let r = kayes_region(&["ML-GOG", "ML-HER"]);
    let kayes = r.kayes.clone();
    let gogui = r.phone("gogui-phone", "ML-GOG");
    let heremakono = r.phone("heremakono-phone", "ML-HER");
    record(&gogui, "ML-GOG", 5, "gog");
    fmp(&["sync", "--store", s(&gogui)]);
    fmp(&["sync", "--store", s(&heremakono)]);
    let st = status_json(&kayes);
    let pending_of = |name: &str| -> i64 {
        st["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {st}"))["pending"]
            .as_i64()
            .unwrap()
    };
    // Gogui's own records are not for it, and none is Heremakono's.
    assert_eq!(pending_of("gogui-phone"), 0, "{st}");
    assert_eq!(pending_of("heremakono-phone"), 0, "{st}");
    // Nothing has gone up to HQ yet: the 5 records are still to go.
    assert_eq!(st["pending"], 5, "{st}");
    fmp(&["sync", "--store", s(&kayes)]);
    assert_eq!(status_json(&kayes)["pending"], 0);
}

#[test]
fn history_names_the_devices_a_store_knows_and_keeps_their_ids_in_json() {
    let r = kayes_region(&["ML-GOG"]);
    let kayes = r.kayes.clone();
    let gogui = r.phone("gogui-phone", "ML-GOG");
    record(&gogui, "ML-GOG", 1, "named");
    fmp(&["sync", "--store", s(&gogui)]);
    let list = fmp(&["list", "--store", s(&kayes), "--format", "json"]);
    let id = serde_json::from_str::<Vec<serde_json::Value>>(&list).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fmp(&["review", "--store", s(&kayes), &id, "--status", "approved"]);
    fmp(&["sync", "--store", s(&gogui)]);
    let phone_id = device_id(&gogui);
    let hub_id = device_id(&kayes);
    // The hub knows the phone it enrolled; the phone knows itself and its hub.
    for store in [&kayes, &gogui] {
        let text = fmp(&["history", "--store", s(store), &id]);
        assert!(
            text.contains(&format!("gogui-phone ({})", &phone_id[..8])),
            "{text}"
        );
        assert!(
            text.contains(&format!("kayes-hub ({})", &hub_id[..8])),
            "{text}"
        );
        let json: Vec<serde_json::Value> =
            serde_json::from_str(&fmp(&["history", "--store", s(store), &id, "--json"])).unwrap();
        assert_eq!(json[0]["author"], phone_id.as_str());
        assert_eq!(json[0]["author_name"], "gogui-phone");
        assert_eq!(json[1]["author"], hub_id.as_str());
    }
}

#[test]
fn a_phone_s_status_lists_its_records_a_review_sent_back_with_the_comment() {
    let r = kayes_region(&["ML-GOG"]);
    let kayes = r.kayes.clone();
    let gogui = r.phone("gogui-phone", "ML-GOG");
    let colleague = r.phone("gogui-phone-2", "ML-GOG");
    record(&gogui, "ML-GOG", 2, "mine");
    record(&colleague, "ML-GOG", 1, "theirs");
    for p in [&gogui, &colleague] {
        fmp(&["sync", "--store", s(p)]);
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&fmp(&["list", "--store", s(&kayes), "--format", "json"])).unwrap();
    let of = |tag: &str| -> Vec<String> {
        list.iter()
            .filter(|r| r["notes"].as_str().unwrap_or_default().contains(tag))
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (mine, theirs) = (of("mine"), of("theirs"));
    let review = |id: &str, status: &str, comment: &str| {
        fmp(&[
            "review",
            "--store",
            s(&kayes),
            id,
            "--status",
            status,
            "--comment",
            comment,
        ]);
    };
    review(&mine[0], "has_issues", "recount the adults");
    review(&mine[1], "approved", "");
    review(&theirs[0], "rejected", "duplicate");
    for p in [&gogui, &colleague, &gogui] {
        fmp(&["sync", "--store", s(p)]);
    }
    let st = status_json(&gogui);
    let back = st["to_correct"].as_array().unwrap();
    assert_eq!(back.len(), 1, "only its own, only the one sent back: {st}");
    assert_eq!(back[0]["id"], mine[0].as_str());
    assert_eq!(back[0]["status"], "has_issues");
    assert_eq!(back[0]["comment"], "recount the adults");
    assert_eq!(back[0]["edited_since"], false);
    let text = fmp(&["status", "--store", s(&gogui)]);
    assert!(
        text.contains("to correct: 1") && text.contains("recount the adults"),
        "{text}"
    );
    // The reviewer by its name, the id beside it (and in JSON).
    let kayes_id = status_json(&kayes)["device"].as_str().unwrap().to_string();
    assert_eq!(back[0]["by"], kayes_id.as_str());
    assert_eq!(back[0]["by_name"], "kayes-hub");
    assert!(
        text.contains(&format!("has_issues by kayes-hub ({})", &kayes_id[..8])),
        "{text}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&fmp(&["show", "--store", s(&gogui), &mine[0]])).unwrap();
    assert_eq!(shown["review"]["by"], kayes_id.as_str());
    assert_eq!(shown["review"]["by_name"], "kayes-hub", "{shown}");
    // The enumerator corrects it: still listed until reviewed again, as edited.
    fmp(&[
        "edit",
        "--store",
        s(&gogui),
        &mine[0],
        r#"{"notes":"adults recounted"}"#,
    ]);
    assert_eq!(status_json(&gogui)["to_correct"][0]["edited_since"], true);
    // The supervisor's hub, once the edit arrived, says so too.
    let shown = |store: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&fmp(&["show", "--store", s(store), &mine[0]])).unwrap()
    };
    assert!(
        shown(&kayes).get("edited_since_review").is_none(),
        "not yet"
    );
    fmp(&["sync", "--store", s(&gogui)]);
    assert_eq!(shown(&kayes)["edited_since_review"], true);
    assert_eq!(shown(&gogui)["edited_since_review"], true);
    assert!(
        shown(&kayes)["notes"]
            .as_str()
            .unwrap()
            .contains("adults recounted")
    );
    let st = status_json(&colleague);
    assert_eq!(st["to_correct"][0]["comment"], "duplicate", "{st}");
}

/// `enroll-code` prints, on one line, the code with its FMPs, its expiry
/// and the address `fmp serve` gave; `fmp codes` lists unused codes by id
/// and cancels one by its id or the code, after which it enrolls nothing.
#[test]
fn a_code_is_printed_with_the_hub_s_address_listed_while_unused_and_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let hq = init(tmp.path(), "hq");
    let out = fmp_in(&["enroll-code", "--store", s(&hq), "--fmp", "ML-GOG"], None);
    let before = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        before.contains("--hub URL") && before.contains("`fmp serve` prints it"),
        "no address known before the hub served: {before}"
    );
    let srv = Served::start(&hq, &[]);
    let out = fmp_in(
        &[
            "enroll-code",
            "--store",
            s(&hq),
            "--fmp",
            "ML-GOG",
            "--fmp",
            "ML-HER",
            "--hub",
        ],
        None,
    );
    assert!(out.status.success());
    let hub_code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let line = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    for part in [
        hub_code.as_str(),
        "ML-GOG, ML-HER",
        "valid 24h (until ",
        &format!("fmp join --store DIR --hub {} --code {hub_code}", srv.url),
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    let phone_code = code(&hq, &["ML-BEN"], &["--expires", "1h"]);
    let used = code(&hq, &["ML-GOG"], &[]);
    let phone = init(tmp.path(), "phone");
    fmp(&[
        "join",
        "--store",
        s(&phone),
        "--hub",
        &srv.url,
        "--code",
        &used,
    ]);

    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&fmp(&["codes", "--store", s(&hq), "--json"])).unwrap();
    // The first code, the hub code and the phone code; not the used one.
    assert_eq!(listed.len(), 3, "{listed:?}");
    let hub_row = listed
        .iter()
        .find(|c| c["hub"] == true)
        .expect("the hub code");
    assert_eq!(hub_row["fmps"], serde_json::json!(["ML-GOG", "ML-HER"]));
    let id = hub_row["id"].as_str().unwrap().to_string();
    assert!(line.contains(&format!("id {id}")), "{line}");
    let table = fmp(&["codes", "--store", s(&hq)]);
    assert!(table.contains(&id) && table.contains("ML-BEN"), "{table}");
    assert!(!table.contains(&used), "codes themselves are never shown");

    // Cancelled by id, and by the code itself; again: refused, naming `fmp codes`.
    let out = fmp(&["codes", "--store", s(&hq), "--cancel", &id]);
    assert!(out.starts_with(&format!("cancelled code {id}")), "{out}");
    fmp(&[
        "codes",
        "--store",
        s(&hq),
        "--cancel",
        &phone_code.to_lowercase(),
    ]);
    for again in [
        id.as_str(),
        phone_code.as_str(),
        used.as_str(),
        "not-a-code!",
    ] {
        let err = refused(&["codes", "--store", s(&hq), "--cancel", again]);
        assert!(err.contains("fmp codes"), "{again}: {err}");
    }
    let left: Vec<serde_json::Value> =
        serde_json::from_str(&fmp(&["codes", "--store", s(&hq), "--json"])).unwrap();
    assert_eq!(left.len(), 1, "the first code only: {left:?}");
    // A cancelled code enrolls nothing.
    let late = init(tmp.path(), "late-hub");
    let out = fmp_in(
        &[
            "join",
            "--store",
            s(&late),
            "--hub",
            &srv.url,
            "--code",
            &hub_code,
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_code"));
}
