//! The report JSON's shape, snapshotted on a small fixed fixture, so that a
//! format change breaks a test before it breaks a consumer.

use fmp_core::Submission;
use fmp_report::fixture;
use fmp_report::{BuiltinCountries, ReportOptions, monthly_report};
use serde_json::json;

#[allow(clippy::too_many_arguments)] // a test helper that reads best flat
fn sub(
    id: &str,
    fmp: &str,
    at: &str,
    direction: &str,
    next: &str,
    fin: &str,
    people: [u32; 4],
    nat: serde_json::Value,
) -> Submission {
    Submission::from_value(json!({
        "id": id,
        "form": "dtm-fmp-flow", "form_version": 1,
        "fmp": fmp,
        "observed_at": at,
        "direction": direction,
        "transport": "bus",
        "departure": {"country": if direction == "incoming" { "BFA" } else { "MLI" }},
        "next_destination": {"country": next},
        "final_destination": {"country": fin},
        "movement_type": if people[0] > 10 { "seasonal" } else { "economic_long_term" },
        "people": {"adult_male": people[0], "adult_female": people[1], "minor_male": people[2], "minor_female": people[3]},
        "vulnerable": {"under5": if people[3] > 0 { 1 } else { 0 }, "elderly": 0, "disability": 0, "pregnant": 0},
        "nationalities": nat,
    }))
    .expect("valid submission")
}

#[test]
fn report_json_shape() {
    let subs = vec![
        sub(
            "01890000-0000-7000-8000-000000000001",
            "ML-HER",
            "2020-05-10T09:00:00Z",
            "incoming",
            "MLI",
            "MLI",
            [20, 2, 1, 1],
            json!({"BFA": 20, "MLI": 4}),
        ),
        sub(
            "01890000-0000-7000-8000-000000000002",
            "ML-HER",
            "2020-05-11T09:00:00Z",
            "outgoing",
            "BFA",
            "ESP",
            [8, 1, 0, 0],
            json!({"MLI": 9}),
        ),
        sub(
            "01890000-0000-7000-8000-000000000003",
            "ML-HER",
            "2020-06-14T09:30:00Z",
            "incoming",
            "MLI",
            "MLI",
            [30, 2, 1, 0],
            json!({"BFA": 31, "MLI": 2}),
        ),
        sub(
            "01890000-0000-7000-8000-000000000004",
            "ML-HER",
            "2020-06-15T10:00:00Z",
            "outgoing",
            "BFA",
            "DZA",
            [9, 1, 0, 1],
            json!({"MLI": 6, "GIN": 3, "SEN": 1, "NER": 1}),
        ),
        sub(
            "01890000-0000-7000-8000-000000000005",
            "ML-HER",
            "2020-06-15T12:00:00Z",
            "outgoing",
            "BFA",
            "ITA",
            [4, 0, 0, 0],
            json!({"CIV": 2, "GHA": 1, "NGA": 1}),
        ),
        sub(
            "01890000-0000-7000-8000-000000000006",
            "ML-WAB",
            "2020-06-02T08:00:00Z",
            "incoming",
            "MLI",
            "MLI",
            [25, 0, 2, 0],
            json!({"NER": 27}),
        ),
    ];
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &fixture::stored(subs)).expect("store");
    let opts = ReportOptions {
        country: Some("MLI".into()),
        approved_only: false,
    };
    let report = monthly_report(
        &store,
        &fixture::mali_registry(),
        &BuiltinCountries,
        "2020-06",
        &opts,
    )
    .expect("report");
    let mut value = serde_json::to_value(&report).expect("json");
    // Keep the snapshot short: the FMPs without data only need their shape once.
    if let Some(fmps) = value["fmps"].as_array_mut() {
        fmps.retain(|f| f["total"].as_u64() != Some(0) || f["code"] == "ML-TBK");
    }
    insta::assert_json_snapshot!("report_2020_06", value);
}
