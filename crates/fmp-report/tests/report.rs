//! The report computed from the seeded May–June 2020 fixture against the seed
//! report's figures and against the fixture's own counts.

use std::collections::{BTreeMap, BTreeSet};

use fmp_core::{Direction, ReviewStatus, Submission};
use fmp_report::fixture::{self, SEED_JUNE_2020};
use fmp_report::report::{FmpReport, Report};
use fmp_report::rounding::largest_remainder;
use fmp_report::{BuiltinCountries, ReportOptions, monthly_report};

fn june_report(subs: &[Submission], opts: &ReportOptions) -> Report {
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &fixture::stored(subs.to_vec())).expect("store");
    monthly_report(
        &store,
        &fixture::mali_registry(),
        &BuiltinCountries,
        "2020-06",
        opts,
    )
    .expect("report")
}

fn month_of(s: &Submission) -> String {
    s.observed_at.format("%Y-%m").to_string()
}

/// Expected (key, pct, change) of a top-5 + Other table, from raw counts.
fn expected_table(
    cur: &BTreeMap<String, u64>,
    prev: &BTreeMap<String, u64>,
) -> Vec<(String, u32, Option<i64>)> {
    let mut v: Vec<(String, u64)> = cur
        .iter()
        .map(|(k, c)| (k.clone(), *c))
        .filter(|(_, c)| *c > 0)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rest: u64 = v.iter().skip(5).map(|(_, c)| c).sum();
    v.truncate(5);
    let top: Vec<String> = v.iter().map(|(k, _)| k.clone()).collect();
    if rest > 0 {
        v.push(("other".into(), rest));
    }
    let pcts = largest_remainder(&v);
    let prev_total: u64 = prev.values().sum();
    let mut pv: Vec<(String, u64)> = top
        .iter()
        .map(|k| (k.clone(), prev.get(k).copied().unwrap_or(0)))
        .collect();
    let kept: u64 = pv.iter().map(|(_, c)| c).sum();
    pv.push(("other".into(), prev_total - kept));
    let ppcts = largest_remainder(&pv);
    v.iter()
        .zip(pcts)
        .enumerate()
        .map(|(i, ((k, _), p))| {
            let before = ppcts[i.min(top.len())];
            let d = i64::from(p) - i64::from(before);
            (k.clone(), p, (prev_total > 0 && d != 0).then_some(d))
        })
        .collect()
}

fn nationalities(subs: &[Submission], fmp: Option<&str>, month: &str) -> BTreeMap<String, u64> {
    let entry_exit = ["ML-PKI", "ML-TBK", "ML-MNK", "ML-GOG", "ML-BEN", "ML-HER"];
    let mut m = BTreeMap::new();
    for s in subs.iter().filter(|s| month_of(s) == month) {
        let ok = match fmp {
            Some(f) => s.fmp == f,
            None => entry_exit.contains(&s.fmp.as_str()),
        };
        if ok {
            for (c, n) in &s.nationalities {
                *m.entry(c.clone()).or_insert(0) += u64::from(*n);
            }
        }
    }
    m
}

fn table_of(rows: &[fmp_report::ShareRow]) -> Vec<(String, u32, Option<i64>)> {
    rows.iter()
        .map(|r| (r.key.clone(), r.pct, r.change_pp))
        .collect()
}

fn fmp<'a>(r: &'a Report, code: &str) -> &'a FmpReport {
    r.fmps
        .iter()
        .find(|f| f.code == code)
        .expect("fmp in report")
}

#[test]
fn fixture_submissions_are_valid() {
    let subs = fixture::may_june_2020(7);
    for s in &subs {
        let total = s.people.total();
        assert!(total > 0);
        assert_eq!(
            s.nationalities.values().map(|n| u64::from(*n)).sum::<u64>(),
            total,
            "{s:?}"
        );
        assert!(u64::from(s.vulnerable.under5) <= s.people.minors());
        assert!(s.vulnerable.pregnant <= s.people.adult_female + s.people.minor_female);
        let v = &s.vulnerable;
        assert!(u64::from(v.under5 + v.elderly + v.disability + v.pregnant) <= total);
        assert!(s.nationalities.values().all(|n| *n > 0));
    }
    assert_eq!(subs, fixture::may_june_2020(7), "same seed, same fixture");
}

#[test]
fn june_2020_matches_the_seed_report() {
    let subs = fixture::may_june_2020(7);
    let r = june_report(&subs, &ReportOptions::default());
    assert_eq!(r.month, "2020-06");
    assert_eq!(r.national.incoming, 7_555);
    assert_eq!(r.national.outgoing, 4_859);
    assert_eq!(r.national.total, 12_414);
    assert_eq!(r.national.active_fmps, 9);
    for (code, incoming, outgoing) in SEED_JUNE_2020 {
        let f = fmp(&r, code);
        assert_eq!(
            (f.incoming, f.outgoing, f.total),
            (incoming, outgoing, incoming + outgoing),
            "{code}"
        );
    }
    assert!(
        r.notes[0].contains("Wabaria, Sevare, Bamako"),
        "{:?}",
        r.notes
    );
    // The seed's headline shares, as the fixture was built to follow them.
    assert_eq!(fmp(&r, "ML-HER").nationalities[0].key, "BFA");
    assert_eq!(fmp(&r, "ML-HER").nationalities[0].pct, 89);
    assert_eq!(fmp(&r, "ML-WAB").nationalities[0].pct, 52);
    assert_eq!(fmp(&r, "ML-WAB").days_observed, 28);
    assert_eq!(fmp(&r, "ML-WAB").avg_per_day.round(), 141.0);
    assert_eq!(r.national.nationalities[0].key, "BFA");
    assert_eq!(r.national.nationalities[0].pct, 70);
    assert_eq!(r.national.avg_per_day_change_pct, Some(100));
}

#[test]
fn percentages_and_changes_match_the_fixture_counts() {
    let subs = fixture::may_june_2020(11);
    let r = june_report(&subs, &ReportOptions::default());

    let expected = expected_table(
        &nationalities(&subs, None, "2020-06"),
        &nationalities(&subs, None, "2020-05"),
    );
    assert_eq!(table_of(&r.national.nationalities), expected);

    for (code, _, _) in SEED_JUNE_2020 {
        let f = fmp(&r, code);
        let e = expected_table(
            &nationalities(&subs, Some(code), "2020-06"),
            &nationalities(&subs, Some(code), "2020-05"),
        );
        assert_eq!(table_of(&f.nationalities), e, "{code} nationalities");

        let mut next = [BTreeMap::new(), BTreeMap::new()];
        let mut days = [BTreeSet::new(), BTreeSet::new()];
        let mut totals = [0u64; 2];
        let mut people = [[0u64; 4]; 2];
        let mut under5 = [0u64; 2];
        for s in subs.iter().filter(|s| s.fmp == code) {
            let i = usize::from(month_of(s) == "2020-06");
            *next[i]
                .entry(s.next_destination.country.clone())
                .or_insert(0) += s.people.total();
            days[i].insert(s.observed_at.date_naive());
            totals[i] += s.people.total();
            let p = s.people;
            for (j, n) in [p.adult_female, p.adult_male, p.minor_female, p.minor_male]
                .into_iter()
                .enumerate()
            {
                people[i][j] += u64::from(n);
            }
            under5[i] += u64::from(s.vulnerable.under5);
        }
        assert_eq!(
            table_of(&f.destinations),
            expected_table(&next[1], &next[0]),
            "{code} destinations"
        );
        assert_eq!(f.days_observed as usize, days[1].len());
        let avg = |i: usize| totals[i] as f64 / days[i].len() as f64;
        assert!((f.avg_per_day - avg(1)).abs() < 0.051, "{code}");
        let change = ((avg(1) / avg(0) - 1.0) * 100.0).round() as i64;
        assert_eq!(
            f.avg_per_day_change_pct,
            (change != 0).then_some(change),
            "{code}"
        );
        let demo: Vec<u32> = f.demography.iter().map(|c| c.pct).collect();
        let items: Vec<(usize, u64)> = people[1].iter().copied().enumerate().collect();
        assert_eq!(demo, largest_remainder(&items), "{code} demography");
        assert_eq!(demo.iter().sum::<u32>(), 100);
        let u5 = (under5[1] as f64 * 1000.0 / totals[1] as f64).round() / 10.0;
        assert!(
            (f.vulnerabilities[0].pct - u5).abs() < 1e-9,
            "{code} under5"
        );
        // Every table sums to 100.
        for t in [
            &f.nationalities,
            &f.destinations,
            &f.movement_types,
            &f.final_destinations,
        ] {
            if !t.is_empty() {
                assert_eq!(t.iter().map(|r| r.pct).sum::<u32>(), 100, "{code}");
            }
        }
        for b in f.departure_by_movement.iter().chain(&f.next_by_movement) {
            assert_eq!(b.rows.iter().map(|r| r.pct).sum::<u32>(), 100, "{code}");
        }
        let series: Vec<(String, u64)> = f
            .monthly
            .iter()
            .map(|p| (p.month.clone(), p.total))
            .collect();
        assert_eq!(
            series,
            vec![
                ("2020-05".to_string(), totals[0]),
                ("2020-06".to_string(), totals[1])
            ]
        );
    }
    // Europe share of outgoing at entry/exit FMPs.
    let europe = ["ESP", "ITA", "FRA", "DEU"];
    let entry_exit = ["ML-PKI", "ML-TBK", "ML-MNK", "ML-GOG", "ML-BEN", "ML-HER"];
    let (mut eu, mut out) = (0u64, 0u64);
    for s in subs
        .iter()
        .filter(|s| month_of(s) == "2020-06" && entry_exit.contains(&s.fmp.as_str()))
    {
        if s.direction == Direction::Outgoing {
            out += s.people.total();
            if europe.contains(&s.final_destination.country.as_str()) {
                eu += s.people.total();
            }
        }
    }
    assert_eq!(r.national.europe.outgoing, out);
    assert_eq!(r.national.europe.to_europe, eu);
    assert_eq!(
        u64::from(r.national.europe.pct),
        (eu * 200 + out) / (2 * out)
    );
}

#[test]
fn rejected_and_deleted_are_left_out_and_approved_only_works() {
    let subs: Vec<Submission> = fixture::may_june_2020(3)
        .into_iter()
        .filter(|s| s.fmp == "ML-HER" && month_of(s) == "2020-06")
        .collect();
    let mut stored = fixture::stored(subs.clone());
    let review = |status| {
        Some(fmp_core::Review {
            status,
            comment: String::new(),
            by: "sup".into(),
            at: chrono::Utc::now(),
        })
    };
    let (mut rejected, mut approved, mut deleted) = (0u64, 0u64, 0u64);
    for (i, s) in stored.iter_mut().enumerate() {
        let n = s.submission.people.total();
        match i % 4 {
            0 => {
                s.review = review(ReviewStatus::Rejected);
                rejected += n;
            }
            1 => {
                s.review = review(ReviewStatus::Approved);
                approved += n;
            }
            2 => s.review = review(ReviewStatus::HasIssues),
            _ if i % 8 == 3 => {
                s.deleted = true;
                deleted += n;
            }
            _ => {}
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &stored).expect("store");
    let reg = fixture::mali_registry();
    let all = monthly_report(
        &store,
        &reg,
        &BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .expect("report");
    assert_eq!(all.national.total, 8_508 - rejected - deleted);
    assert_eq!(fmp(&all, "ML-HER").total, 8_508 - rejected - deleted);
    let only = ReportOptions {
        approved_only: true,
        country: None,
    };
    let appr = monthly_report(&store, &reg, &BuiltinCountries, "2020-06", &only).expect("report");
    assert_eq!(appr.national.total, approved);
    assert!(appr.approved_only);
    let nat: u64 = fmp(&appr, "ML-HER")
        .nationalities
        .iter()
        .map(|r| r.count)
        .sum();
    assert_eq!(nat, approved);

    let other = ReportOptions {
        approved_only: false,
        country: Some("SEN".into()),
    };
    let none = monthly_report(&store, &reg, &BuiltinCountries, "2020-06", &other).expect("report");
    assert!(none.fmps.is_empty());
    assert_eq!(none.national.total, 0);
}

#[test]
fn a_bad_month_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &[]).expect("store");
    let reg = fixture::mali_registry();
    for m in ["2020-13", "2020-6", "June", ""] {
        assert!(
            monthly_report(
                &store,
                &reg,
                &BuiltinCountries,
                m,
                &ReportOptions::default()
            )
            .is_err(),
            "{m}"
        );
    }
}

#[test]
fn empty_store_gives_an_empty_report() {
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &[]).expect("store");
    let r = monthly_report(
        &store,
        &fixture::mali_registry(),
        &BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .expect("report");
    assert_eq!(r.national.total, 0);
    assert_eq!(r.national.active_fmps, 0);
    assert_eq!(r.national.avg_per_day_change_pct, None);
    assert!(r.national.nationalities.is_empty());
    assert_eq!(r.fmps.len(), 9);
}

#[test]
fn markdown_reads_like_the_seed() {
    let subs = fixture::may_june_2020(7);
    let r = june_report(&subs, &ReportOptions::default());
    let md = fmp_report::to_markdown(&r);
    std::fs::create_dir_all("../../target").ok();
    std::fs::write("../../target/report-2020-06.md", &md).expect("write");
    for needle in [
        "**7,555** Incoming individuals",
        "**4,859** Outgoing individuals",
        "**12,414** Individuals observed in total",
        "**9** Active FMPs",
        "increased by 100 per cent",
        "| Burkina Faso | 70% |",
        "(Incoming flow: 5,924; Outgoing flow: 2,584)",
        "(Incoming flow: 2,029; Outgoing flow: 1,913)",
        "## Wabaria (Gao, transit point)",
    ] {
        assert!(md.contains(needle), "missing {needle:?}");
    }
}

#[test]
fn html_is_one_self_contained_page() {
    let subs = fixture::may_june_2020(7);
    let r = june_report(&subs, &ReportOptions::default());
    let html = fmp_report::to_html(&r);
    std::fs::create_dir_all("../../target").ok();
    std::fs::write("../../target/report-2020-06.html", &html).expect("write");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.ends_with("</html>"));
    assert!(html.contains("@media print") && html.contains("@media (max-width"));
    assert!(html.contains("name=\"viewport\""));
    // Monthly series, nationalities, destinations, demography for the nation and every FMP with data.
    assert!(html.matches("<svg").count() >= 4 + 9 * 5);
    assert!(html.contains("12,414"));
    // Nothing loaded from elsewhere.
    for bad in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(bad), "{bad}");
    }
}

/// Opens the HTML report in headless Chromium (Debian `chromium`) when it is
/// installed: it must render with no console message, and a screenshot is
/// left in `target/report-2020-06.png` for a person to look at.
#[test]
fn html_renders_in_headless_chromium() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        // scripts/test-all.sh installs chromium and sets this: there, a
        // missing browser is a failure, not a skip.
        assert!(
            std::env::var_os("FMP_REQUIRE_CHROMIUM").is_none(),
            "/usr/bin/chromium is required (FMP_REQUIRE_CHROMIUM is set)"
        );
        eprintln!("skipped: /usr/bin/chromium is not installed");
        return;
    }
    let subs = fixture::may_june_2020(7);
    let r = june_report(&subs, &ReportOptions::default());
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&target).expect("target dir");
    let target = target.canonicalize().expect("target path");
    let page = target.join("report-chromium-2020-06.html");
    let shot = target.join("report-2020-06.png");
    std::fs::write(&page, fmp_report::to_html(&r)).expect("write");
    let _ = std::fs::remove_file(&shot);
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg("--window-size=1200,3000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("CONSOLE"), "console messages: {stderr}");
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot: {stderr}"
    );
}

#[test]
fn one_footnote_mark_for_one_footnote_and_the_daily_average_explained() {
    let r = june_report(&fixture::may_june_2020(7), &ReportOptions::default());
    for text in [fmp_report::to_markdown(&r), fmp_report::to_html(&r)] {
        assert_eq!(
            text.matches("(*) To avoid double counting").count(),
            1,
            "the transit note carries the mark"
        );
        // Other notes are not marked (*): only the figures' marks and the transit note are.
        assert!(
            !text.contains("(*) All submissions") && !text.contains("(*) Averages"),
            "a second note marked (*)"
        );
        assert!(text.contains("Averages per day are over the days with data"));
    }
}

#[test]
fn the_report_says_how_many_records_it_counted_and_left_out() {
    let subs: Vec<Submission> = fixture::may_june_2020(5)
        .into_iter()
        .filter(|s| s.fmp == "ML-HER" && month_of(s) == "2020-06")
        .collect();
    let mut stored = fixture::stored(subs);
    let review = |status| {
        Some(fmp_core::Review {
            status,
            comment: String::new(),
            by: "sup".into(),
            at: chrono::Utc::now(),
        })
    };
    let (mut rejected, mut approved, mut issues, mut deleted) = (0u64, 0u64, 0u64, 0u64);
    for (i, s) in stored.iter_mut().enumerate() {
        match i % 5 {
            0 => {
                s.review = review(ReviewStatus::Rejected);
                rejected += 1;
            }
            1 => {
                s.review = review(ReviewStatus::Approved);
                approved += 1;
            }
            2 => {
                s.review = review(ReviewStatus::HasIssues);
                issues += 1;
            }
            3 => {
                s.deleted = true;
                deleted += 1;
            }
            _ => {}
        }
    }
    let live = stored.len() as u64 - deleted;
    let dir = tempfile::tempdir().expect("dir");
    let store = fixture::store_in(dir.path(), &stored).expect("store");
    let reg = fixture::mali_registry();
    let all = monthly_report(
        &store,
        &reg,
        &BuiltinCountries,
        "2020-06",
        &ReportOptions::default(),
    )
    .expect("report");
    assert_eq!(all.records.counted, live - rejected);
    assert_eq!(all.records.counted_has_issues, issues);
    assert_eq!(all.records.left_out_rejected, rejected);
    assert_eq!(all.records.left_out_not_approved, 0);
    let line = format!(
        "{} record(s) counted ({issues} of them marked has_issues); {rejected} left out as rejected.",
        live - rejected
    );
    assert!(all.notes.contains(&line), "{:?}", all.notes);
    let only = ReportOptions {
        approved_only: true,
        country: None,
    };
    let appr = monthly_report(&store, &reg, &BuiltinCountries, "2020-06", &only).expect("report");
    assert_eq!(appr.records.counted, approved);
    assert_eq!(appr.records.left_out_rejected, rejected);
    assert_eq!(
        appr.records.left_out_not_approved,
        live - approved - rejected
    );
    // Another country's report counts none of Heremakono's.
    let sen = ReportOptions {
        approved_only: false,
        country: Some("SEN".into()),
    };
    let none = monthly_report(&store, &reg, &BuiltinCountries, "2020-06", &sen).expect("report");
    assert_eq!(none.records, Default::default());
}
