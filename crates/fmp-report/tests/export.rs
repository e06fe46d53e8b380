//! Exports: CSV with HXL, XLSX, and a JSON-lines round trip that gives the same report.

use chrono::NaiveDate;
use fmp_core::Submission;
use fmp_core::store::Store;
use fmp_report::fixture;
use fmp_report::{
    BuiltinCountries, ExportFilter, ReportOptions, export_csv, export_jsonl, export_xlsx,
    monthly_report,
};

/// A store of `subs` in a temporary directory (removed when dropped).
fn store_of(subs: &[Submission]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &fixture::stored(subs.to_vec())).expect("store");
    (dir, store)
}

#[test]
fn jsonl_round_trip_gives_the_same_report_and_submissions() {
    let subs = fixture::may_june_2020(5);
    let (_dir, store) = store_of(&subs);
    let mut buf = Vec::new();
    let n = export_jsonl(&store, &ExportFilter::default(), &mut buf).expect("export");
    assert_eq!(n as usize, subs.len());
    let text = String::from_utf8(buf).expect("utf8");
    let back: Vec<Submission> = text
        .lines()
        .map(|l| Submission::from_json(l).expect("canonical JSON"))
        .collect();
    let mut a = subs.clone();
    let mut b = back.clone();
    a.sort_by_key(|s| s.id);
    b.sort_by_key(|s| s.id);
    assert_eq!(a, b);
    let (_dir2, store2) = store_of(&back);
    let reg = fixture::mali_registry();
    let opts = ReportOptions::default();
    let r1 = monthly_report(&store, &reg, &BuiltinCountries, "2020-06", &opts).expect("report");
    let r2 = monthly_report(&store2, &reg, &BuiltinCountries, "2020-06", &opts).expect("report");
    assert_eq!(r1, r2);
}

#[test]
fn csv_has_header_hxl_row_and_one_row_per_submission() {
    let subs = fixture::may_june_2020(5);
    let (_dir, store) = store_of(&subs);
    let filter = ExportFilter {
        from: NaiveDate::from_ymd_opt(2020, 6, 1),
        to: NaiveDate::from_ymd_opt(2020, 6, 30),
        fmp: Some("ML-GOG".into()),
        exclude_rejected: false,
    };
    let mut buf = Vec::new();
    let n = export_csv(&store, &filter, &mut buf).expect("export");
    let text = String::from_utf8(buf).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let expected: Vec<&Submission> = subs
        .iter()
        .filter(|s| s.fmp == "ML-GOG" && s.observed_at.format("%Y-%m").to_string() == "2020-06")
        .collect();
    assert_eq!(n as usize, expected.len());
    assert_eq!(lines.len(), expected.len() + 2);
    assert!(lines[0].starts_with("id,form,form_version,fmp,observed_at"));
    assert!(lines[1].starts_with("#meta+id,#meta+form,"));
    assert!(lines[1].contains("#affected+f+adult"));
    let header: Vec<&str> = lines[0].split(',').collect();
    let total_col = header
        .iter()
        .position(|h| *h == "total")
        .expect("total column");
    let sum: u64 = lines[2..]
        .iter()
        .map(|l| {
            l.split(',')
                .nth(total_col)
                .expect("cell")
                .parse::<u64>()
                .expect("int")
        })
        .sum();
    assert_eq!(sum, 179); // Gogui, June 2020: 76 + 103.
}

#[test]
fn xlsx_is_a_workbook() {
    let subs = fixture::may_june_2020(5);
    let (_dir, store) = store_of(&subs[..50]);
    let mut buf = Vec::new();
    let n = export_xlsx(&store, &ExportFilter::default(), &mut buf).expect("export");
    assert_eq!(n, 50);
    assert!(buf.starts_with(b"PK"), "a zip container");
    std::fs::create_dir_all("../../target").ok();
    std::fs::write("../../target/export-sample.xlsx", &buf).expect("write");
}
