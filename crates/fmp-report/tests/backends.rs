//! The report and the exports are the same, byte for byte, whether the
//! store keeps its data in SQLite or in PostgreSQL (the aggregates run as
//! SQL on each).

use fmp_core::model::ReviewStatus;
use fmp_core::store::Store;
use fmp_core::store::testing::{Backend, POSTGRES, SQLITE};
use fmp_report::fixture;
use fmp_report::{
    BuiltinCountries, ExportFilter, ReportOptions, export_csv, export_jsonl, export_xlsx,
    monthly_report, to_html, to_markdown,
};

/// The fixture of two months, some reviewed (approved, rejected, with
/// issues) and some deleted, in a store of backend `b`.
fn store_on(b: Backend, dir: &std::path::Path) -> Store {
    let mut subs = fixture::stored(fixture::may_june_2020(11));
    for (i, s) in subs.iter_mut().enumerate() {
        let status = match i % 7 {
            1 => Some(ReviewStatus::Approved),
            2 => Some(ReviewStatus::Rejected),
            3 => Some(ReviewStatus::HasIssues),
            _ => None,
        };
        s.review = status.map(|status| fmp_core::model::Review {
            status,
            comment: format!("checked {i}"),
            by: String::new(),
            at: chrono::Utc::now(),
        });
        s.deleted = i % 13 == 5;
    }
    let store = (b.init)(dir, "hq").expect("init");
    fixture::load(&store, &subs).expect("load");
    store
}

/// Everything a user gets out of a store: the report in each format and
/// option, and each export.
fn outputs(store: &Store) -> Vec<(String, Vec<u8>)> {
    let reg = fixture::mali_registry();
    let mut out = Vec::new();
    for (name, opts) in [
        ("default", ReportOptions::default()),
        (
            "approved",
            ReportOptions {
                approved_only: true,
                ..ReportOptions::default()
            },
        ),
        (
            "MLI",
            ReportOptions {
                country: Some("MLI".into()),
                ..ReportOptions::default()
            },
        ),
    ] {
        let r = monthly_report(store, &reg, &BuiltinCountries, "2020-06", &opts).expect("report");
        out.push((
            format!("{name}.json"),
            serde_json::to_vec_pretty(&r).expect("json"),
        ));
        out.push((format!("{name}.md"), to_markdown(&r).into_bytes()));
        out.push((format!("{name}.html"), to_html(&r).into_bytes()));
    }
    let all = ExportFilter::default();
    let some = ExportFilter {
        fmp: Some("ML-GOG".into()),
        exclude_rejected: true,
        ..ExportFilter::default()
    };
    for (name, f) in [("all", &all), ("some", &some)] {
        let mut csv = Vec::new();
        export_csv(store, f, &mut csv).expect("csv");
        out.push((format!("{name}.csv"), csv));
        let mut jsonl = Vec::new();
        export_jsonl(store, f, &mut jsonl).expect("jsonl");
        out.push((format!("{name}.jsonl"), jsonl));
        // A workbook carries its creation time (not comparable byte for
        // byte even on one backend): the rows it wrote are compared.
        let n = export_xlsx(store, f, &mut Vec::new()).expect("xlsx");
        out.push((format!("{name}.xlsx rows"), n.to_string().into_bytes()));
    }
    out
}

#[test]
fn report_and_exports_are_byte_for_byte_the_same_on_sqlite_and_postgresql() {
    if (POSTGRES.skip)("report_and_exports_are_byte_for_byte_the_same_on_sqlite_and_postgresql") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let lite = store_on(SQLITE, &tmp.path().join("sqlite"));
    let pg = store_on(POSTGRES, &tmp.path().join("pg"));
    let (a, b) = (outputs(&lite), outputs(&pg));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        if !name.ends_with("rows") {
            assert!(x.len() > 100, "{name}: {} bytes", x.len());
        }
        assert!(x == y, "{name} differs between SQLite and PostgreSQL");
    }
    // Not an empty comparison: the month has data, reviews and deletions.
    let r = monthly_report(
        &pg,
        &fixture::mali_registry(),
        &BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .expect("report");
    assert!(serde_json::to_string(&r).expect("json").len() > 1000);
}
