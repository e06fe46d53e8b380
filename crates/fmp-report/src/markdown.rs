//! The report as Markdown that reads like the seed report's text: the national
//! summary first, then one part per FMP, with the same tables and wording.

use std::fmt::Write as _;

use chrono::NaiveDate;
use fmp_core::reference::FmpKind;

use crate::report::{ByMovement, FmpReport, MonthPoint, Report, Trend};
use crate::rounding::ShareRow;

/// `12414` → `12,414`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2020-06` → `June 2020` (the input itself when it is not a month).
pub fn month_name(month: &str) -> String {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map(|d| d.format("%B %Y").to_string())
        .unwrap_or_else(|_| month.to_string())
}

/// A change in percentage points: `+15 pp`, `-9 pp`, or `-` when none.
pub fn pp(change: Option<i64>) -> String {
    match change {
        Some(d) => format!("{d:+} pp"),
        None => "-".to_string(),
    }
}

/// A change in percentage points with one decimal, or `-`.
pub fn pp1(change: Option<f64>) -> String {
    match change {
        Some(d) => format!("{d:+.1} pp"),
        None => "-".to_string(),
    }
}

/// A change in per cent with its arrow: `↑ +55%`, `↓ -14%`, or `-`.
pub fn pct_change(change: Option<i64>) -> String {
    match change {
        Some(d) if d > 0 => format!("↑ {d:+}%"),
        Some(d) => format!("↓ {d:+}%"),
        None => "-".to_string(),
    }
}

/// A share with one decimal, dropped when it is whole: `0.3%`, `0%`.
pub fn pct1(p: f64) -> String {
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn share_table(out: &mut String, title: &str, rows: &[ShareRow], changes: bool) {
    if rows.is_empty() {
        let _ = writeln!(out, "{title}: no data.\n");
        return;
    }
    if changes {
        let _ = writeln!(out, "| {title} | % | Variations |\n|---|---:|---:|");
        for r in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.label,
                r.pct_text(),
                pp(r.change_pp)
            );
        }
    } else {
        let _ = writeln!(out, "| {title} | % |\n|---|---:|");
        for r in rows {
            let _ = writeln!(out, "| {} | {} |", r.label, r.pct_text());
        }
    }
    out.push('\n');
}

fn by_movement(out: &mut String, title: &str, tables: &[ByMovement]) {
    let _ = writeln!(out, "### {title}\n");
    if tables.is_empty() {
        out.push_str("No data.\n\n");
    }
    for b in tables {
        let _ = writeln!(
            out,
            "- **{}** ({}): {}",
            b.label,
            thousands(b.count),
            b.shares_text()
        );
    }
    if !tables.is_empty() {
        out.push('\n');
    }
}

fn series(out: &mut String, points: &[MonthPoint]) {
    if points.is_empty() {
        out.push_str("No data.\n\n");
        return;
    }
    out.push_str("| Month | Incoming | Outgoing | Total |\n|---|---:|---:|---:|\n");
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            p.month,
            thousands(p.incoming),
            thousands(p.outgoing),
            thousands(p.total)
        );
    }
    out.push('\n');
}

/// "A, B, C and D" from the labels of the rows, leaving Other out.
fn listing(rows: &[ShareRow], with_pct: bool) -> String {
    let names: Vec<String> = rows
        .iter()
        .filter(|r| r.key != crate::rounding::OTHER && r.pct > 0)
        .map(|r| {
            if with_pct {
                format!("{} ({}%)", r.label, r.pct)
            } else {
                r.label.clone()
            }
        })
        .collect();
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

fn trend(t: Option<Trend>) -> &'static str {
    t.map_or("", Trend::arrow)
}

/// The report as Markdown.
pub fn to_markdown(r: &Report) -> String {
    let mut out = String::new();
    let month = month_name(&r.month);
    let n = &r.national;
    let scope = r
        .country
        .as_deref()
        .map_or(String::new(), |c| format!(" ({c})"));
    let _ = writeln!(out, "# Flow Monitoring Points{scope}: {month}\n");

    match n.avg_per_day_change_pct {
        Some(d) => {
            let verb = if d > 0 { "increased" } else { "decreased" };
            let _ = writeln!(
                out,
                "In {month}, the average daily number of individuals observed at the Flow Monitoring Points {verb} by {} per cent compared to the previous month.\n",
                d.abs()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "In {month}, an average of {:.0} individuals per day were observed at the Flow Monitoring Points.\n",
                n.avg_per_day
            );
        }
    }
    let named: Vec<ShareRow> = n
        .nationalities
        .iter()
        .filter(|r| r.key != crate::rounding::OTHER)
        .cloned()
        .collect();
    if !named.is_empty() {
        let share: u32 = named.iter().map(|r| r.pct).sum();
        let _ = writeln!(
            out,
            "Nationals from {} accounted for {share} per cent of all the migrants recorded at the Flow Monitoring Points.\n",
            listing(&named, false)
        );
    }
    if !n.movement_types.is_empty() {
        let _ = writeln!(
            out,
            "Main types of movement: {}.\n",
            listing(&n.movement_types, true)
        );
    }

    let _ = writeln!(
        out,
        "- **{}** Incoming individuals recorded at FMPs (*)",
        thousands(n.incoming)
    );
    let _ = writeln!(
        out,
        "- **{}** Outgoing individuals recorded at FMPs (*)",
        thousands(n.outgoing)
    );
    let _ = writeln!(
        out,
        "- **{}** Individuals observed in total at FMPs (*)",
        thousands(n.total)
    );
    let _ = writeln!(out, "- **{}** Active FMPs\n", n.active_fmps);
    // Only the first note (transit FMPs left out) is what the (*) marks.
    for (i, note) in r.notes.iter().enumerate() {
        let mark = if i == 0 { "(*) " } else { "" };
        let _ = writeln!(out, "{mark}{note}\n");
    }

    out.push_str("## Travellers' profile\n\n");
    out.push_str("(Variations calculated from previous month's data.)\n\n");
    share_table(&mut out, "Main nationalities", &n.nationalities, true);
    share_table(&mut out, "Origins and destinations", &n.destinations, true);
    share_table(&mut out, "Main types of movement", &n.movement_types, true);
    share_table(
        &mut out,
        "Main intended final destinations (outgoing)",
        &n.final_destinations,
        true,
    );
    if n.europe.outgoing > 0 {
        let _ = writeln!(
            out,
            "European countries were declared as the final intended destination by {} per cent of outgoing migrants ({}).\n",
            n.europe.pct,
            pp(n.europe.change_pp)
        );
    }
    let _ = writeln!(
        out,
        "### Total number of incoming and outgoing individuals (*)\n"
    );
    series(&mut out, &n.monthly);

    for f in &r.fmps {
        fmp_part(&mut out, f);
    }
    out.push_str("pp: percentage point\n");
    out
}

fn fmp_part(out: &mut String, f: &FmpReport) {
    let kind = match f.kind {
        FmpKind::Transit => "transit point",
        FmpKind::EntryExit => "entry/exit point",
    };
    let _ = writeln!(out, "## {} ({}, {kind})\n", f.name, f.admin1);
    if f.total == 0 {
        out.push_str("No individuals were recorded at this FMP during the reporting period.\n\n");
        return;
    }
    let nat: Vec<ShareRow> = f
        .nationalities
        .iter()
        .filter(|r| r.key != crate::rounding::OTHER)
        .cloned()
        .collect();
    if !nat.is_empty() {
        let _ = writeln!(
            out,
            "During the reporting period, most migrants identified at the {} FMP were nationals of {}.\n",
            f.name,
            listing(&nat, true)
        );
    }
    if !f.final_destinations.is_empty() {
        let _ = writeln!(
            out,
            "For outgoing flows, {} are the main intended final destinations.\n",
            listing(&f.final_destinations, true)
        );
    }
    let _ = writeln!(
        out,
        "During the reporting period, {} migrants were recorded at this FMP (Incoming flow: {}; Outgoing flow: {}).\n",
        thousands(f.total),
        thousands(f.incoming),
        thousands(f.outgoing)
    );
    let _ = writeln!(
        out,
        "**{:.0}** average/day observed individuals ({} days with data) **{}**\n",
        f.avg_per_day,
        f.days_observed,
        pct_change(f.avg_per_day_change_pct)
    );

    out.push_str("### Demography\n\n| | Adults | Minors |\n|---|---:|---:|\n");
    for sex in ["female", "male"] {
        let cell = |age: &str| {
            f.demography
                .iter()
                .find(|c| c.sex == sex && c.age == age)
                .map_or(String::new(), |c| {
                    format!("{}% {}", c.pct, trend(c.trend))
                        .trim_end()
                        .to_string()
                })
        };
        let label = if sex == "female" { "Female" } else { "Male" };
        let _ = writeln!(out, "| {label} | {} | {} |", cell("adult"), cell("minor"));
    }
    out.push_str("\n### Vulnerabilities\n\n| % | | Variations |\n|---:|---|---:|\n");
    for v in &f.vulnerabilities {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            pct1(v.pct),
            v.label,
            pp1(v.change_pp)
        );
    }
    out.push('\n');
    share_table(out, "Main nationalities", &f.nationalities, true);
    share_table(out, "Destination of migrants", &f.destinations, true);
    share_table(out, "Main types of movement", &f.movement_types, true);
    by_movement(
        out,
        "Country of departure by type of movement",
        &f.departure_by_movement,
    );
    by_movement(
        out,
        "Next destinations by type of movement",
        &f.next_by_movement,
    );
    share_table(
        out,
        "Main intended final destinations (outgoing)",
        &f.final_destinations,
        true,
    );
    let _ = writeln!(out, "### Monthly flows of individuals observed\n");
    series(out, &f.monthly);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_row_of_a_top_five_table_is_under_one_per_cent_not_zero() {
        let cur: std::collections::BTreeMap<String, u64> =
            [("MLI".to_string(), 999), ("NER".to_string(), 1)].into();
        let rows =
            crate::rounding::share_table(&cur, &Default::default(), Some(5), &|k| k.to_string());
        assert_eq!(rows[1].pct, 0, "JSON keeps the rounded figure");
        let mut out = String::new();
        share_table(&mut out, "Main nationalities", &rows, true);
        assert!(out.contains("| NER | <1% |"), "{out}");
        assert!(!out.contains("| 0% |"), "{out}");
        let b = crate::report::ByMovement {
            movement_type: "seasonal".into(),
            label: "Seasonal".into(),
            count: 1000,
            rows,
        };
        assert_eq!(b.shares_text(), "MLI 100%, NER <1%");
        let mut html = String::new();
        crate::html::table(&mut html, "Nationality", &b.rows);
        assert!(html.contains(r#"<td class="n">&lt;1%</td>"#), "{html}");
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(12_414), "12,414");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(month_name("2020-06"), "June 2020");
        assert_eq!(pp(Some(15)), "+15 pp");
        assert_eq!(pp(Some(-9)), "-9 pp");
        assert_eq!(pp(None), "-");
        assert_eq!(pp1(Some(-1.3)), "-1.3 pp");
        assert_eq!(pct_change(Some(55)), "↑ +55%");
        assert_eq!(pct_change(Some(-14)), "↓ -14%");
        assert_eq!(pct1(0.0), "0%");
        assert_eq!(pct1(0.3), "0.3%");
    }
}
