//! The monthly report: its JSON shape (the source of every other format) and
//! how it is computed from the store's aggregates over its materialized
//! columns ([`fmp_core::store::report`]), all read on one snapshot.
//!
//! Every aggregate groups by month and FMP (and one more dimension) over the
//! report month and the month before, so the work here is proportional to
//! the number of groups, not of submissions.

use fmp_core::store::ops::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Months, NaiveDate};
use fmp_core::reference::{Fmp, FmpKind, Registry};
use fmp_core::store::report::{Counted, KeyGroup, MovementGroup, ReportAggregates};
use fmp_core::store::{Reader, Store};
use fmp_core::{Direction, MovementType};
use serde::{Deserialize, Serialize};

use crate::countries::CountryInfo;
use crate::error::ReportError;
use crate::rounding::{ShareRow, largest_remainder, per_mille, percent, share_table};

/// How many rows a "main …" table keeps before gathering the rest as Other.
pub const TOP: usize = 5;

/// What to count in a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// Only FMPs of this country (ISO alpha-3); all FMPs of the registry when `None`.
    pub country: Option<String>,
    /// Count only approved submissions (default: all but rejected ones).
    pub approved_only: bool,
}

/// The monthly FMP report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The report month, `YYYY-MM`.
    pub month: String,
    /// The month changes are computed against, `YYYY-MM`.
    pub previous_month: String,
    /// The country the report is restricted to, if any.
    pub country: Option<String>,
    /// True when only approved submissions were counted.
    pub approved_only: bool,
    /// What the reader must know to read the figures (e.g. transit FMPs left out).
    pub notes: Vec<String>,
    /// The month's records at the report's FMPs: counted and left out.
    #[serde(default)]
    pub records: RecordCounts,
    /// National figures (entry/exit FMPs only, except `active_fmps`).
    pub national: National,
    /// One part per FMP, in registry order.
    pub fmps: Vec<FmpReport>,
}

/// What a report counted of the month's records at its FMPs, and what it
/// left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Records counted in the figures.
    pub counted: u64,
    /// Of those, how many are marked has_issues (counted all the same).
    pub counted_has_issues: u64,
    /// Left out as rejected.
    pub left_out_rejected: u64,
    /// Left out as not approved (with `approved_only`).
    pub left_out_not_approved: u64,
}

impl RecordCounts {
    fn of(c: fmp_core::store::counts::MonthCounts, approved_only: bool) -> RecordCounts {
        if approved_only {
            RecordCounts {
                counted: c.approved,
                counted_has_issues: 0,
                left_out_rejected: c.rejected,
                left_out_not_approved: c.total - c.approved - c.rejected,
            }
        } else {
            RecordCounts {
                counted: c.total - c.rejected,
                counted_has_issues: c.has_issues,
                left_out_rejected: c.rejected,
                left_out_not_approved: 0,
            }
        }
    }

    /// The report's line about it.
    fn line(&self) -> String {
        let mut s = format!("{} record(s) counted", self.counted);
        if self.counted_has_issues > 0 {
            s.push_str(&format!(
                " ({} of them marked has_issues)",
                self.counted_has_issues
            ));
        }
        s.push_str(&format!(
            "; {} left out as rejected",
            self.left_out_rejected
        ));
        if self.left_out_not_approved > 0 {
            s.push_str(&format!(", {} as not approved", self.left_out_not_approved));
        }
        s.push('.');
        s
    }
}

/// National part of the report: entry/exit FMPs only, to avoid double counting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct National {
    /// Incoming individuals at entry/exit FMPs.
    pub incoming: u64,
    /// Outgoing individuals at entry/exit FMPs.
    pub outgoing: u64,
    /// Incoming plus outgoing.
    pub total: u64,
    /// FMPs of every kind with data this month.
    pub active_fmps: u32,
    /// Days with data at any entry/exit FMP.
    pub days_observed: u32,
    /// Individuals per day with data, one decimal.
    pub avg_per_day: f64,
    /// Change of the daily average against the previous month, in per cent.
    pub avg_per_day_change_pct: Option<i64>,
    /// Main nationalities (top five and Other).
    pub nationalities: Vec<ShareRow>,
    /// Next destinations (top five and Other).
    pub destinations: Vec<ShareRow>,
    /// Types of movement.
    pub movement_types: Vec<ShareRow>,
    /// Intended final destinations of outgoing individuals (top five and Other).
    pub final_destinations: Vec<ShareRow>,
    /// Share of outgoing individuals whose final destination is in Europe.
    pub europe: EuropeShare,
    /// Incoming and outgoing per month since the first month with data.
    pub monthly: Vec<MonthPoint>,
}

/// Share of outgoing individuals who intend to reach Europe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EuropeShare {
    /// Outgoing individuals.
    pub outgoing: u64,
    /// Of whom with a final destination in Europe.
    pub to_europe: u64,
    /// Per cent, rounded half up.
    pub pct: u32,
    /// Change in percentage points; `None` when zero or no previous data.
    pub change_pp: Option<i64>,
}

/// One FMP's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FmpReport {
    /// FMP code, e.g. `ML-HER`.
    pub code: String,
    /// FMP name, e.g. `Heremakono`.
    pub name: String,
    /// Region of the FMP.
    pub admin1: String,
    /// Entry/exit or transit.
    pub kind: FmpKind,
    /// Incoming individuals.
    pub incoming: u64,
    /// Outgoing individuals.
    pub outgoing: u64,
    /// Incoming plus outgoing.
    pub total: u64,
    /// Days with data this month.
    pub days_observed: u32,
    /// Individuals per day with data, one decimal.
    pub avg_per_day: f64,
    /// Change of the daily average against the previous month, in per cent.
    pub avg_per_day_change_pct: Option<i64>,
    /// Adult/minor × female/male, in per cent (sums to 100), with the direction of change.
    pub demography: Vec<DemographyCell>,
    /// Vulnerable individuals in per cent of all individuals, one decimal.
    pub vulnerabilities: Vec<VulnerabilityRow>,
    /// Main nationalities (top five and Other).
    pub nationalities: Vec<ShareRow>,
    /// Next destinations (top five and Other).
    pub destinations: Vec<ShareRow>,
    /// Types of movement.
    pub movement_types: Vec<ShareRow>,
    /// Countries of departure by type of movement.
    pub departure_by_movement: Vec<ByMovement>,
    /// Next destinations by type of movement.
    pub next_by_movement: Vec<ByMovement>,
    /// Intended final destinations of outgoing individuals (top five and Other).
    pub final_destinations: Vec<ShareRow>,
    /// Incoming and outgoing per month since the FMP's first month with data.
    pub monthly: Vec<MonthPoint>,
}

/// Direction of change of a share against the previous month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// The share grew.
    Up,
    /// The share shrank.
    Down,
    /// The share is exactly the same.
    Same,
}

impl Trend {
    /// The arrow the seed report prints.
    pub fn arrow(self) -> &'static str {
        match self {
            Trend::Up => "↑",
            Trend::Down => "↓",
            Trend::Same => "▬",
        }
    }
}

/// One cell of the demography table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemographyCell {
    /// `adult` or `minor`.
    pub age: String,
    /// `female` or `male`.
    pub sex: String,
    /// Individuals.
    pub count: u64,
    /// Per cent; the four cells sum to 100.
    pub pct: u32,
    /// Direction of change of the share; `None` without previous data.
    pub trend: Option<Trend>,
}

/// One vulnerability: share of all individuals, one decimal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnerabilityRow {
    /// `under5`, `elderly`, `disability`, `pregnant` or `unaccompanied_children`.
    pub key: String,
    /// Display name.
    pub label: String,
    /// Individuals.
    pub count: u64,
    /// Per cent of all individuals, one decimal.
    pub pct: f64,
    /// Change in percentage points, one decimal; `None` when zero or no previous data.
    pub change_pp: Option<f64>,
}

/// A share table for one type of movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByMovement {
    /// Movement type (snake_case).
    pub movement_type: String,
    /// Display name.
    pub label: String,
    /// Individuals of this type of movement.
    pub count: u64,
    /// Countries (top five and Other); no change column.
    pub rows: Vec<ShareRow>,
}

impl ByMovement {
    /// The country shares as one line: `Mali 67%, Niger 20%, …`.
    pub fn shares_text(&self) -> String {
        let parts: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("{} {}", r.label, r.pct_text()))
            .collect();
        parts.join(", ")
    }
}

/// Incoming and outgoing individuals of one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthPoint {
    /// `YYYY-MM`.
    pub month: String,
    /// Incoming individuals.
    pub incoming: u64,
    /// Outgoing individuals.
    pub outgoing: u64,
    /// Incoming plus outgoing.
    pub total: u64,
}

/// Display name of a movement type.
pub fn movement_label(key: &str) -> String {
    match key.parse::<MovementType>() {
        Ok(MovementType::EconomicLongTerm) => "Economic migration (> 6 months)",
        Ok(MovementType::Seasonal) => "Seasonal migration",
        Ok(MovementType::ShortTermLocal) => "Short-term local movement",
        Ok(MovementType::Tourism) => "Tourism",
        Ok(MovementType::Forced) => "Forced movement",
        Ok(MovementType::Other) => "Other",
        Err(_) => key,
    }
    .to_string()
}

/// The vulnerabilities, in report order: (key, label).
pub const VULNERABILITIES: [(&str, &str); 5] = [
    ("under5", "Children under 5 years old"),
    ("elderly", "Elderly persons"),
    (
        "disability",
        "Persons living with a mental or physical disability",
    ),
    ("pregnant", "Pregnant women"),
    ("unaccompanied_children", "Unaccompanied children"),
];

/// The demography cells, in report order: (age, sex).
const DEMOGRAPHY: [(&str, &str); 4] = [
    ("adult", "female"),
    ("adult", "male"),
    ("minor", "female"),
    ("minor", "male"),
];

/// Aggregates of one FMP (or the nation) for one month.
#[derive(Debug, Clone, Default)]
struct Side {
    incoming: u64,
    outgoing: u64,
    /// adult_female, adult_male, minor_female, minor_male.
    people: [u64; 4],
    /// under5, elderly, disability, pregnant, unaccompanied.
    vuln: [u64; 5],
    days: BTreeSet<String>,
    next: BTreeMap<String, u64>,
    movement: BTreeMap<String, u64>,
    final_out: BTreeMap<String, u64>,
    nat: BTreeMap<String, u64>,
    dep_by_mt: BTreeMap<String, BTreeMap<String, u64>>,
    next_by_mt: BTreeMap<String, BTreeMap<String, u64>>,
}

fn add_map(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

impl Side {
    fn total(&self) -> u64 {
        self.incoming + self.outgoing
    }

    fn merge(&mut self, o: &Side) {
        self.incoming += o.incoming;
        self.outgoing += o.outgoing;
        for i in 0..4 {
            self.people[i] += o.people[i];
        }
        for i in 0..5 {
            self.vuln[i] += o.vuln[i];
        }
        self.days.extend(o.days.iter().cloned());
        add_map(&mut self.next, &o.next);
        add_map(&mut self.movement, &o.movement);
        add_map(&mut self.final_out, &o.final_out);
        add_map(&mut self.nat, &o.nat);
        for (k, m) in &o.dep_by_mt {
            add_map(self.dep_by_mt.entry(k.clone()).or_default(), m);
        }
        for (k, m) in &o.next_by_mt {
            add_map(self.next_by_mt.entry(k.clone()).or_default(), m);
        }
    }

    fn avg_per_day(&self) -> f64 {
        if self.days.is_empty() {
            0.0
        } else {
            self.total() as f64 / self.days.len() as f64
        }
    }
}

/// Both months and the series of one FMP.
#[derive(Debug, Default)]
struct FmpAgg {
    cur: Side,
    prev: Side,
    /// month → (incoming, outgoing).
    monthly: BTreeMap<String, (u64, u64)>,
}

/// First day of a `YYYY-MM` month.
fn parse_month(month: &str) -> Result<NaiveDate, ReportError> {
    let bad = || ReportError::InvalidMonth(month.to_string());
    if month.len() != 7 {
        return Err(bad());
    }
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())
}

fn fmt_month(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

/// The submissions a report counts, as the store selects them.
fn counted(approved_only: bool) -> Counted {
    if approved_only {
        Counted::ApprovedOnly
    } else {
        Counted::AllButRejected
    }
}

/// The side of `fmp`'s aggregate that `month` falls on (`cur` or the month before).
fn side<'a>(
    aggs: &'a mut HashMap<String, FmpAgg>,
    cur: &str,
    month: &str,
    fmp: String,
) -> &'a mut Side {
    let agg = aggs.entry(fmp).or_default();
    if month == cur {
        &mut agg.cur
    } else {
        &mut agg.prev
    }
}

/// The store's aggregates of `cur` and the month before, gathered per FMP code.
fn per_fmp(a: ReportAggregates, cur: &str) -> HashMap<String, FmpAgg> {
    let mut aggs: HashMap<String, FmpAgg> = HashMap::new();
    for g in a.by_direction {
        let s = side(&mut aggs, cur, &g.month, g.fmp);
        if g.direction == Some(Direction::Incoming) {
            s.incoming += g.total;
        } else {
            s.outgoing += g.total;
        }
        let people = [g.adult_female, g.adult_male, g.minor_female, g.minor_male];
        for (into, n) in s.people.iter_mut().zip(people) {
            *into += n;
        }
        let vuln = [
            g.under5,
            g.elderly,
            g.disability,
            g.pregnant,
            g.unaccompanied,
        ];
        for (into, n) in s.vuln.iter_mut().zip(vuln) {
            *into += n;
        }
    }
    for g in a.days {
        side(&mut aggs, cur, &g.month, g.fmp).days.insert(g.day);
    }
    type Dim = fn(&mut Side) -> &mut BTreeMap<String, u64>;
    let dims: [(Vec<KeyGroup>, Dim); 4] = [
        (a.next_country, |s| &mut s.next),
        (a.movement_type, |s| &mut s.movement),
        (a.final_country_outgoing, |s| &mut s.final_out),
        (a.nationalities, |s| &mut s.nat),
    ];
    for (groups, pick) in dims {
        for g in groups {
            *pick(side(&mut aggs, cur, &g.month, g.fmp))
                .entry(g.key)
                .or_default() += g.individuals;
        }
    }
    type ByMt = fn(&mut Side) -> &mut BTreeMap<String, BTreeMap<String, u64>>;
    let by_mt: [(Vec<MovementGroup>, ByMt); 2] = [
        (a.departure_by_movement, |s| &mut s.dep_by_mt),
        (a.next_by_movement, |s| &mut s.next_by_mt),
    ];
    for (groups, pick) in by_mt {
        for g in groups {
            *pick(side(&mut aggs, cur, cur, g.fmp))
                .entry(g.movement_type)
                .or_default()
                .entry(g.country)
                .or_default() += g.individuals;
        }
    }
    for g in a.series {
        let point = aggs
            .entry(g.fmp)
            .or_default()
            .monthly
            .entry(g.month)
            .or_default();
        if g.direction == Some(Direction::Incoming) {
            point.0 += g.individuals;
        } else {
            point.1 += g.individuals;
        }
    }
    aggs
}

/// Computes the monthly report of `month` (`YYYY-MM`) from the store's
/// materialized columns, for the FMPs of `registry` (of `opts.country` if
/// set), reading one consistent snapshot of the store.
pub fn monthly_report(
    store: &Store,
    registry: &Registry,
    countries: &dyn CountryInfo,
    month: &str,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    store.snapshot(|r| monthly_report_on(r, registry, countries, month, opts))
}

/// [`monthly_report`] on a snapshot the caller holds (every read of the
/// report is on `r`).
pub fn monthly_report_on(
    r: &Reader<'_>,
    registry: &Registry,
    countries: &dyn CountryInfo,
    month: &str,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    let first = parse_month(month)?;
    let prev_month = first
        .checked_sub_months(Months::new(1))
        .ok_or_else(|| ReportError::InvalidMonth(month.to_string()))?;
    let last_day = first
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .ok_or_else(|| ReportError::InvalidMonth(month.to_string()))?;
    let prev = fmt_month(prev_month);
    let aggs = per_fmp(
        r.report_aggregates(month, &prev, counted(opts.approved_only))?,
        month,
    );

    let selected: Vec<&Fmp> = registry
        .fmps
        .iter()
        .filter(|f| opts.country.as_deref().is_none_or(|c| f.country == c))
        .filter(|f| f.active_since <= last_day || aggs.contains_key(&f.code))
        .collect();
    let empty = FmpAgg::default();
    let label = |k: &str| countries.name(k).unwrap_or_else(|| k.to_string());

    let mut notes = Vec::new();
    let transit: Vec<&str> = selected
        .iter()
        .filter(|f| f.kind == FmpKind::Transit)
        .map(|f| f.name.as_str())
        .collect();
    notes.push(if transit.is_empty() {
        "National totals count entry/exit FMPs only.".to_string()
    } else {
        format!(
            "To avoid double counting, individuals recorded at the transit FMPs ({}) are not included in the national totals; only those recorded at entry/exit FMPs are.",
            transit.join(", ")
        )
    });
    notes.push(if opts.approved_only {
        "Only approved submissions are counted.".to_string()
    } else {
        "All submissions are counted except rejected ones.".to_string()
    });
    let codes: Vec<&str> = selected.iter().map(|f| f.code.as_str()).collect();
    let counts = r.month_counts(month, |f| codes.contains(&f))?;
    let records = RecordCounts::of(counts, opts.approved_only);
    notes.push(records.line());
    notes.push(
        "Averages per day are over the days with data: at an FMP, the days it recorded a group; \
         nationally, the days any entry/exit FMP did."
            .to_string(),
    );
    let mut unknown: Vec<(&String, u64)> = aggs
        .iter()
        .filter(|(code, a)| registry.get(code).is_none() && a.cur.total() > 0)
        .map(|(code, a)| (code, a.cur.total()))
        .collect();
    unknown.sort();
    if !unknown.is_empty() {
        let n: u64 = unknown.iter().map(|(_, t)| t).sum();
        let codes: Vec<&str> = unknown.iter().map(|(c, _)| c.as_str()).collect();
        notes.push(format!(
            "{n} individuals recorded at FMP codes not in the registry ({}) are left out.",
            codes.join(", ")
        ));
    }

    let mut fmps = Vec::new();
    let mut nat = FmpAgg::default();
    let mut active = 0u32;
    for f in &selected {
        let a = aggs.get(&f.code).unwrap_or(&empty);
        if !a.cur.days.is_empty() {
            active += 1;
        }
        if f.kind == FmpKind::EntryExit {
            nat.cur.merge(&a.cur);
            nat.prev.merge(&a.prev);
            for (m, (i, o)) in &a.monthly {
                let p = nat.monthly.entry(m.clone()).or_default();
                p.0 += i;
                p.1 += o;
            }
        }
        fmps.push(fmp_part(f, a, month, &label));
    }

    let national = National {
        incoming: nat.cur.incoming,
        outgoing: nat.cur.outgoing,
        total: nat.cur.total(),
        active_fmps: active,
        days_observed: u32::try_from(nat.cur.days.len()).unwrap_or(u32::MAX),
        avg_per_day: round1(nat.cur.avg_per_day()),
        avg_per_day_change_pct: change_pct(&nat.cur, &nat.prev),
        nationalities: share_table(&nat.cur.nat, &nat.prev.nat, Some(TOP), &label),
        destinations: share_table(&nat.cur.next, &nat.prev.next, Some(TOP), &label),
        movement_types: share_table(&nat.cur.movement, &nat.prev.movement, None, &movement_label),
        final_destinations: share_table(&nat.cur.final_out, &nat.prev.final_out, Some(TOP), &label),
        europe: europe_share(&nat.cur, &nat.prev, countries),
        monthly: series(&nat.monthly, month),
    };

    Ok(Report {
        month: month.to_string(),
        previous_month: prev,
        country: opts.country.clone(),
        approved_only: opts.approved_only,
        notes,
        records,
        national,
        fmps,
    })
}

fn fmp_part(f: &Fmp, a: &FmpAgg, month: &str, label: &dyn Fn(&str) -> String) -> FmpReport {
    let (cur, prev) = (&a.cur, &a.prev);
    let by_mt = |m: &BTreeMap<String, BTreeMap<String, u64>>| -> Vec<ByMovement> {
        let mut v: Vec<ByMovement> = m
            .iter()
            .map(|(mt, inner)| ByMovement {
                movement_type: mt.clone(),
                label: movement_label(mt),
                count: inner.values().sum(),
                rows: share_table(inner, &BTreeMap::new(), Some(TOP), label),
            })
            .filter(|b| b.count > 0)
            .collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.movement_type.cmp(&b.movement_type))
        });
        v
    };
    FmpReport {
        code: f.code.clone(),
        name: f.name.clone(),
        admin1: f.admin1.clone(),
        kind: f.kind,
        incoming: cur.incoming,
        outgoing: cur.outgoing,
        total: cur.total(),
        days_observed: u32::try_from(cur.days.len()).unwrap_or(u32::MAX),
        avg_per_day: round1(cur.avg_per_day()),
        avg_per_day_change_pct: change_pct(cur, prev),
        demography: demography(cur, prev),
        vulnerabilities: vulnerabilities(cur, prev),
        nationalities: share_table(&cur.nat, &prev.nat, Some(TOP), label),
        destinations: share_table(&cur.next, &prev.next, Some(TOP), label),
        movement_types: share_table(&cur.movement, &prev.movement, None, &movement_label),
        departure_by_movement: by_mt(&cur.dep_by_mt),
        next_by_movement: by_mt(&cur.next_by_mt),
        final_destinations: share_table(&cur.final_out, &prev.final_out, Some(TOP), label),
        monthly: series(&a.monthly, month),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Change of the daily average in per cent; `None` when zero or no previous data.
fn change_pct(cur: &Side, prev: &Side) -> Option<i64> {
    if prev.days.is_empty() || prev.total() == 0 {
        return None;
    }
    let c = ((cur.avg_per_day() / prev.avg_per_day() - 1.0) * 100.0).round() as i64;
    (c != 0).then_some(c)
}

fn demography(cur: &Side, prev: &Side) -> Vec<DemographyCell> {
    let items: Vec<(usize, u64)> = cur.people.iter().copied().enumerate().collect();
    let pcts = largest_remainder(&items);
    let (ct, pt): (u64, u64) = (cur.people.iter().sum(), prev.people.iter().sum());
    DEMOGRAPHY
        .iter()
        .enumerate()
        .map(|(i, (age, sex))| {
            let trend = (ct > 0 && pt > 0).then(|| {
                // Compare cur[i]/ct with prev[i]/pt exactly.
                let a = u128::from(cur.people[i]) * u128::from(pt);
                let b = u128::from(prev.people[i]) * u128::from(ct);
                match a.cmp(&b) {
                    std::cmp::Ordering::Greater => Trend::Up,
                    std::cmp::Ordering::Less => Trend::Down,
                    std::cmp::Ordering::Equal => Trend::Same,
                }
            });
            DemographyCell {
                age: (*age).to_string(),
                sex: (*sex).to_string(),
                count: cur.people[i],
                pct: pcts[i],
                trend,
            }
        })
        .collect()
}

fn vulnerabilities(cur: &Side, prev: &Side) -> Vec<VulnerabilityRow> {
    VULNERABILITIES
        .iter()
        .enumerate()
        .map(|(i, (key, label))| {
            let now = per_mille(cur.vuln[i], cur.total());
            let change_pp = (prev.total() > 0)
                .then(|| now - per_mille(prev.vuln[i], prev.total()))
                .filter(|d| *d != 0)
                .map(|d| d as f64 / 10.0);
            VulnerabilityRow {
                key: (*key).to_string(),
                label: (*label).to_string(),
                count: cur.vuln[i],
                pct: now as f64 / 10.0,
                change_pp,
            }
        })
        .collect()
}

fn europe_share(cur: &Side, prev: &Side, countries: &dyn CountryInfo) -> EuropeShare {
    let europe = |s: &Side| -> u64 {
        s.final_out
            .iter()
            .filter(|(k, _)| countries.in_europe(k))
            .map(|(_, v)| v)
            .sum()
    };
    let (to_europe, out) = (europe(cur), cur.final_out.values().sum::<u64>());
    let pct = percent(to_europe, out);
    let prev_out: u64 = prev.final_out.values().sum();
    let change_pp = (prev_out > 0)
        .then(|| i64::from(pct) - i64::from(percent(europe(prev), prev_out)))
        .filter(|d| *d != 0);
    EuropeShare {
        outgoing: out,
        to_europe,
        pct,
        change_pp,
    }
}

/// The monthly series from the first month with data to `month`, gaps as zeros.
fn series(monthly: &BTreeMap<String, (u64, u64)>, month: &str) -> Vec<MonthPoint> {
    let Some(first) = monthly
        .iter()
        .find(|(_, (i, o))| i + o > 0)
        .and_then(|(m, _)| parse_month(m).ok())
    else {
        return Vec::new();
    };
    let Ok(last) = parse_month(month) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        let m = fmt_month(d);
        let (incoming, outgoing) = monthly.get(&m).copied().unwrap_or((0, 0));
        out.push(MonthPoint {
            month: m,
            incoming,
            outgoing,
            total: incoming + outgoing,
        });
        match d.checked_add_months(Months::new(1)) {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}
