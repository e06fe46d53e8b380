//! The report as one self-contained HTML page: inline CSS (responsive, with a
//! print stylesheet) and inline SVG charts (monthly series, nationalities,
//! destinations, demography). No script, no external resource.

use std::fmt::Write as _;

use fmp_core::reference::FmpKind;

use crate::markdown::{month_name, pct_change, pct1, pp, pp1, thousands};
use crate::report::{ByMovement, DemographyCell, FmpReport, MonthPoint, Report};
use crate::rounding::ShareRow;
use crate::svg::{self, escape};

const CSS: &str = r#"
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1a1a1a;background:#f4f6f9;line-height:1.4}
header{background:#0033a0;color:#fff;padding:1rem 1.2rem}
header h1{margin:0;font-size:1.4rem}
header p{margin:.3rem 0 0;opacity:.9}
main{max-width:1100px;margin:0 auto;padding:.8rem}
section{background:#fff;border-radius:6px;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{color:#0033a0;margin:.2rem 0 .6rem;font-size:1.25rem}
h3{font-size:1rem;margin:.8rem 0 .4rem;color:#333}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:.6rem;margin:.6rem 0}
.kpi{background:#eef3fb;border-radius:6px;padding:.6rem}
.kpi b{display:block;font-size:1.5rem;color:#0033a0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.25rem .4rem;border-bottom:1px solid #e3e6eb;text-align:left}
td.n,th.n{text-align:right;white-space:nowrap}
.note{font-size:.85rem;color:#555}
.chart{max-width:100%;height:auto;display:block}
.chart.monthly{max-width:640px}
ul.bym{padding-left:1.1rem;font-size:.9rem}
@media (max-width:600px){main{padding:.4rem}section{padding:.7rem}.kpi b{font-size:1.2rem}header h1{font-size:1.15rem}}
@media print{body{background:#fff}header{background:#fff;color:#000;border-bottom:2px solid #0033a0}
section{box-shadow:none;border:1px solid #ccc;break-inside:avoid;page-break-inside:avoid}
section.fmp{break-before:page;page-break-before:always}.grid{grid-template-columns:1fr 1fr}}
"#;

pub(crate) fn table(out: &mut String, title: &str, rows: &[ShareRow]) {
    let _ = write!(
        out,
        r#"<table><thead><tr><th>{}</th><th class="n">%</th><th class="n">Variations</th></tr></thead><tbody>"#,
        escape(title)
    );
    if rows.is_empty() {
        out.push_str(r#"<tr><td colspan="3">No data</td></tr>"#);
    }
    for r in rows {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            escape(&r.label),
            escape(&r.pct_text()),
            escape(&pp(r.change_pp))
        );
    }
    out.push_str("</tbody></table>");
}

fn bars(title: &str, rows: &[ShareRow]) -> String {
    let pts: Vec<(String, u32)> = rows.iter().map(|r| (r.label.clone(), r.pct)).collect();
    svg::hbar(title, &pts)
}

fn monthly_chart(title: &str, points: &[MonthPoint]) -> String {
    let pts: Vec<(String, u64, u64)> = points
        .iter()
        .map(|p| (p.month.clone(), p.incoming, p.outgoing))
        .collect();
    svg::monthly(title, &pts)
}

fn demography_chart(cells: &[DemographyCell]) -> String {
    let pts: Vec<(String, u32)> = cells
        .iter()
        .map(|c| {
            let age = if c.age == "adult" { "Adult" } else { "Minor" };
            (format!("{age} {}", c.sex), c.pct)
        })
        .collect();
    svg::hbar("Demography", &pts)
}

fn by_movement(out: &mut String, title: &str, tables: &[ByMovement]) {
    let _ = write!(out, "<h3>{}</h3><ul class=\"bym\">", escape(title));
    if tables.is_empty() {
        out.push_str("<li>No data</li>");
    }
    for b in tables {
        let _ = write!(
            out,
            "<li><b>{}</b> ({}): {}</li>",
            escape(&b.label),
            thousands(b.count),
            escape(&b.shares_text())
        );
    }
    out.push_str("</ul>");
}

/// The report as one self-contained HTML page.
pub fn to_html(r: &Report) -> String {
    let month = month_name(&r.month);
    let n = &r.national;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Flow Monitoring Points: {m}</title><style>{CSS}</style></head><body><header><h1>Flow Monitoring Points: {m}</h1><p>{scope}</p></header><main>"#,
        m = escape(&month),
        scope = escape(&match &r.country {
            Some(c) => format!(
                "Country: {c}. Variations calculated from {}.",
                month_name(&r.previous_month)
            ),
            None => format!(
                "Variations calculated from {}.",
                month_name(&r.previous_month)
            ),
        }),
    );

    out.push_str(r#"<section id="national"><h2>National overview</h2><div class="kpis">"#);
    for (v, l) in [
        (thousands(n.incoming), "Incoming individuals (*)"),
        (thousands(n.outgoing), "Outgoing individuals (*)"),
        (thousands(n.total), "Individuals in total (*)"),
        (n.active_fmps.to_string(), "Active FMPs"),
        (format!("{:.0}", n.avg_per_day), "Average per day (*)"),
        (
            pct_change(n.avg_per_day_change_pct),
            "Daily average vs previous month",
        ),
    ] {
        let _ = write!(
            out,
            r#"<div class="kpi"><b>{}</b>{}</div>"#,
            escape(&v),
            escape(l)
        );
    }
    out.push_str("</div>");
    // Only the first note (transit FMPs left out) is what the (*) marks.
    for (i, note) in r.notes.iter().enumerate() {
        let mark = if i == 0 { "(*) " } else { "" };
        let _ = write!(out, r#"<p class="note">{mark}{}</p>"#, escape(note));
    }
    let _ = write!(
        out,
        "<h3>Incoming and outgoing individuals per month (*)</h3>{}",
        monthly_chart("Monthly flows", &n.monthly)
    );
    out.push_str(r#"<div class="grid"><div><h3>Main nationalities</h3>"#);
    out.push_str(&bars("Main nationalities", &n.nationalities));
    table(&mut out, "Nationality", &n.nationalities);
    out.push_str("</div><div><h3>Origins and destinations</h3>");
    out.push_str(&bars("Destinations", &n.destinations));
    table(&mut out, "Destination", &n.destinations);
    out.push_str("</div><div><h3>Main types of movement</h3>");
    table(&mut out, "Type of movement", &n.movement_types);
    out.push_str("</div><div><h3>Main intended final destinations (outgoing)</h3>");
    out.push_str(&bars("Final destinations", &n.final_destinations));
    table(&mut out, "Final destination", &n.final_destinations);
    if n.europe.outgoing > 0 {
        let _ = write!(
            out,
            r#"<p class="note">European countries were declared as the final intended destination by {} per cent of outgoing migrants ({}).</p>"#,
            n.europe.pct,
            escape(&pp(n.europe.change_pp))
        );
    }
    out.push_str("</div></div></section>");

    for f in &r.fmps {
        fmp_section(&mut out, f);
    }
    out.push_str(r#"<p class="note">pp: percentage point.</p></main></body></html>"#);
    out
}

fn fmp_section(out: &mut String, f: &FmpReport) {
    let kind = match f.kind {
        FmpKind::Transit => "transit point",
        FmpKind::EntryExit => "entry/exit point",
    };
    let _ = write!(
        out,
        r#"<section class="fmp" id="{code}"><h2>{name} <small>({admin1}, {kind})</small></h2>"#,
        code = escape(&f.code),
        name = escape(&f.name),
        admin1 = escape(&f.admin1),
    );
    if f.total == 0 {
        out.push_str("<p>No individuals were recorded at this FMP during the reporting period.</p></section>");
        return;
    }
    out.push_str(r#"<div class="kpis">"#);
    for (v, l) in [
        (thousands(f.incoming), "Incoming"),
        (thousands(f.outgoing), "Outgoing"),
        (thousands(f.total), "Total"),
        (format!("{:.0}", f.avg_per_day), "Average/day"),
        (
            pct_change(f.avg_per_day_change_pct),
            "Daily average vs previous month",
        ),
        (f.days_observed.to_string(), "Days with data"),
    ] {
        let _ = write!(
            out,
            r#"<div class="kpi"><b>{}</b>{}</div>"#,
            escape(&v),
            escape(l)
        );
    }
    out.push_str("</div>");
    let _ = write!(
        out,
        "<h3>Monthly flows of individuals observed</h3>{}",
        monthly_chart("Monthly flows", &f.monthly)
    );

    out.push_str(r#"<div class="grid"><div><h3>Demography</h3>"#);
    out.push_str(&demography_chart(&f.demography));
    out.push_str(r#"<table><thead><tr><th></th><th class="n">Adults</th><th class="n">Minors</th></tr></thead><tbody>"#);
    for sex in ["female", "male"] {
        let cell = |age: &str| {
            f.demography
                .iter()
                .find(|c| c.sex == sex && c.age == age)
                .map_or(String::new(), |c| {
                    format!("{}% {}", c.pct, c.trend.map_or("", |t| t.arrow()))
                })
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            if sex == "female" { "Female" } else { "Male" },
            escape(cell("adult").trim()),
            escape(cell("minor").trim())
        );
    }
    out.push_str(r#"</tbody></table><h3>Vulnerabilities</h3><table><tbody>"#);
    for v in &f.vulnerabilities {
        let _ = write!(
            out,
            r#"<tr><td class="n">{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            escape(&pct1(v.pct)),
            escape(&v.label),
            escape(&pp1(v.change_pp))
        );
    }
    out.push_str("</tbody></table></div><div><h3>Main nationalities</h3>");
    out.push_str(&bars("Main nationalities", &f.nationalities));
    table(out, "Nationality", &f.nationalities);
    out.push_str("</div><div><h3>Destination of migrants</h3>");
    out.push_str(&bars("Destinations", &f.destinations));
    table(out, "Destination", &f.destinations);
    out.push_str("</div><div><h3>Main types of movement</h3>");
    table(out, "Type of movement", &f.movement_types);
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
    out.push_str("</div><div><h3>Main intended final destinations (outgoing)</h3>");
    out.push_str(&bars("Final destinations", &f.final_destinations));
    table(out, "Final destination", &f.final_destinations);
    out.push_str("</div></div></section>");
}
