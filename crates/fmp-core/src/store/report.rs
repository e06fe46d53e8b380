//! The report's and the exports' reads over the materialized columns
//! (`submissions`, `submission_nationalities`): the monthly report's
//! aggregates, the months with data, and the export's rows.
//!
//! Every aggregate groups by month and FMP (and one more dimension), so what
//! a report reads is proportional to the number of groups, not of
//! submissions; export rows are handed over one at a time, so an export of
//! a million rows holds one row in memory. Callers run these on one
//! [`Reader`] (one snapshot, see [`super::Store::snapshot`]).

use super::ops::ReportReads;
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Row, params};

use super::{StoreError, access::SqlReader};
use crate::model::Direction;

/// Which live (not deleted) submissions a report counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Counted {
    /// Every one but those reviewed rejected.
    #[default]
    AllButRejected,
    /// Only those reviewed approved.
    ApprovedOnly,
}

impl Counted {
    /// The SQL condition on `s` that selects them.
    pub(crate) fn clause(self) -> &'static str {
        match self {
            Counted::ApprovedOnly => "s.deleted = 0 AND s.review_status = 'approved'",
            Counted::AllButRejected => {
                "s.deleted = 0 AND (s.review_status IS NULL OR s.review_status <> 'rejected')"
            }
        }
    }
}

/// Sums of one (month, FMP, direction) group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectionGroup {
    /// `YYYY-MM`.
    pub month: String,
    /// FMP code.
    pub fmp: String,
    /// The group's direction (`None`: a stored value this build does not know).
    pub direction: Option<Direction>,
    /// Individuals.
    pub total: u64,
    /// Adult women.
    pub adult_female: u64,
    /// Adult men.
    pub adult_male: u64,
    /// Girls.
    pub minor_female: u64,
    /// Boys.
    pub minor_male: u64,
    /// Children under five.
    pub under5: u64,
    /// Elderly persons.
    pub elderly: u64,
    /// Persons living with a disability.
    pub disability: u64,
    /// Pregnant women.
    pub pregnant: u64,
    /// Unaccompanied children (none counted where the form did not ask).
    pub unaccompanied: u64,
}

/// Individuals of one (month, FMP, key) group, the key a country or a
/// movement type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    /// `YYYY-MM`.
    pub month: String,
    /// FMP code.
    pub fmp: String,
    /// The grouping value (a country code, a movement type).
    pub key: String,
    /// Individuals.
    pub individuals: u64,
}

/// Individuals of one (FMP, movement type, country) group of the report month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementGroup {
    /// FMP code.
    pub fmp: String,
    /// Movement type (snake_case).
    pub movement_type: String,
    /// Country code.
    pub country: String,
    /// Individuals.
    pub individuals: u64,
}

/// A day with data at one FMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayGroup {
    /// `YYYY-MM`.
    pub month: String,
    /// FMP code.
    pub fmp: String,
    /// `YYYY-MM-DD`.
    pub day: String,
}

/// Individuals of one (month, FMP, direction) group of the monthly series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesGroup {
    /// `YYYY-MM`.
    pub month: String,
    /// FMP code.
    pub fmp: String,
    /// The group's direction (`None`: a stored value this build does not know).
    pub direction: Option<Direction>,
    /// Individuals.
    pub individuals: u64,
}

/// Everything the monthly report counts, grouped by FMP: the report month
/// and the month before (for the changes), and the series up to the report
/// month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportAggregates {
    /// Sums by month, FMP and direction.
    pub by_direction: Vec<DirectionGroup>,
    /// Days with data, by month and FMP.
    pub days: Vec<DayGroup>,
    /// Individuals by next destination country.
    pub next_country: Vec<KeyGroup>,
    /// Individuals by movement type.
    pub movement_type: Vec<KeyGroup>,
    /// Outgoing individuals by intended final destination country.
    pub final_country_outgoing: Vec<KeyGroup>,
    /// Individuals by nationality.
    pub nationalities: Vec<KeyGroup>,
    /// Report month only: individuals by movement type and departure country.
    pub departure_by_movement: Vec<MovementGroup>,
    /// Report month only: individuals by movement type and next destination country.
    pub next_by_movement: Vec<MovementGroup>,
    /// Every month up to the report month: individuals by month, FMP and direction.
    pub series: Vec<SeriesGroup>,
}

/// A non-negative sum (NULL or negative: 0).
fn count(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: Option<i64> = row.get(i)?;
    Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

fn direction(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Direction>> {
    let s: String = row.get(i)?;
    Ok(s.parse().ok())
}

impl ReportReads for SqlReader<'_> {
    fn report_aggregates(
        &self,
        month: &str,
        previous: &str,
        counted: Counted,
    ) -> Result<ReportAggregates, StoreError> {
        let sql = self.sql();
        let st = counted.clause();
        let base = format!("FROM submissions s WHERE s.month IN (?1, ?2) AND {st}");
        let both = params![month, previous];
        let by_direction = self
            .groups(
                &format!(
                    "SELECT s.month, s.fmp, s.direction, SUM(s.total),
                        SUM(s.adult_female), SUM(s.adult_male), SUM(s.minor_female), SUM(s.minor_male),
                        SUM(s.under5), SUM(s.elderly), SUM(s.disability), SUM(s.pregnant),
                        SUM(COALESCE(s.unaccompanied, 0))
                     {base} GROUP BY s.month, s.fmp, s.direction"
                ),
                both,
                |r| {
                    Ok(DirectionGroup {
                        month: r.get(0)?,
                        fmp: r.get(1)?,
                        direction: direction(r, 2)?,
                        total: count(r, 3)?,
                        adult_female: count(r, 4)?,
                        adult_male: count(r, 5)?,
                        minor_female: count(r, 6)?,
                        minor_male: count(r, 7)?,
                        under5: count(r, 8)?,
                        elderly: count(r, 9)?,
                        disability: count(r, 10)?,
                        pregnant: count(r, 11)?,
                        unaccompanied: count(r, 12)?,
                    })
                },
            )
            .map_err(&sql)?;

        let days = self
            .groups(
                &format!("SELECT s.month, s.fmp, s.day {base} GROUP BY s.month, s.fmp, s.day"),
                both,
                |r| {
                    Ok(DayGroup {
                        month: r.get(0)?,
                        fmp: r.get(1)?,
                        day: r.get(2)?,
                    })
                },
            )
            .map_err(&sql)?;

        let key_group = |r: &Row<'_>| {
            Ok(KeyGroup {
                month: r.get(0)?,
                fmp: r.get(1)?,
                key: r.get(2)?,
                individuals: count(r, 3)?,
            })
        };
        let by_key = |col: &str, extra: &str| {
            self.groups(
                &format!(
                    "SELECT s.month, s.fmp, {col}, SUM(s.total) {base} {extra}
                     GROUP BY s.month, s.fmp, {col}"
                ),
                both,
                key_group,
            )
            .map_err(&sql)
        };
        let next_country = by_key("s.next_country", "")?;
        let movement_type = by_key("s.movement_type", "")?;
        let final_country_outgoing = by_key("s.final_country", "AND s.direction = 'outgoing'")?;

        let by_movement = |col: &str| {
            self.groups(
                &format!(
                    "SELECT s.fmp, s.movement_type, {col}, SUM(s.total)
                     FROM submissions s WHERE s.month = ?1 AND {st}
                     GROUP BY s.fmp, s.movement_type, {col}"
                ),
                params![month],
                |r| {
                    Ok(MovementGroup {
                        fmp: r.get(0)?,
                        movement_type: r.get(1)?,
                        country: r.get(2)?,
                        individuals: count(r, 3)?,
                    })
                },
            )
            .map_err(&sql)
        };
        let departure_by_movement = by_movement("s.departure_country")?;
        let next_by_movement = by_movement("s.next_country")?;

        let nationalities = self
            .groups(
                &format!(
                    "SELECT s.month, s.fmp, n.country, SUM(n.count)
                     FROM submissions s JOIN submission_nationalities n ON n.submission_id = s.id
                     WHERE s.month IN (?1, ?2) AND {st}
                     GROUP BY s.month, s.fmp, n.country"
                ),
                both,
                key_group,
            )
            .map_err(&sql)?;

        let series = self
            .groups(
                &format!(
                    "SELECT s.month, s.fmp, s.direction, SUM(s.total) FROM submissions s
                     WHERE s.month <= ?1 AND {st} GROUP BY s.month, s.fmp, s.direction"
                ),
                params![month],
                |r| {
                    Ok(SeriesGroup {
                        month: r.get(0)?,
                        fmp: r.get(1)?,
                        direction: direction(r, 2)?,
                        individuals: count(r, 3)?,
                    })
                },
            )
            .map_err(&sql)?;
        Ok(ReportAggregates {
            by_direction,
            days,
            next_country,
            movement_type,
            final_country_outgoing,
            nationalities,
            departure_by_movement,
            next_by_movement,
            series,
        })
    }

    fn records_by_month(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.groups(
            "SELECT month, count(*) FROM submissions WHERE deleted = 0
             GROUP BY month ORDER BY month",
            [],
            |r| Ok((r.get(0)?, count(r, 1)?)),
        )
        .map_err(self.sql())
    }

    fn for_each_export_row<E>(
        &self,
        sel: &ExportSelection,
        mut f: impl FnMut(&ExportRow) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let sql_err = self.sql();
        let sql = |e| E::from(sql_err(e));
        let mut q = EXPORT_SELECT.to_string();
        let mut args: Vec<Value> = Vec::new();
        if let Some(from) = sel.from {
            q.push_str(" AND s.day >= ?");
            args.push(Value::Text(from.format("%Y-%m-%d").to_string()));
        }
        if let Some(to) = sel.to {
            q.push_str(" AND s.day <= ?");
            args.push(Value::Text(to.format("%Y-%m-%d").to_string()));
        }
        if let Some(fmp) = &sel.fmp {
            q.push_str(" AND s.fmp = ?");
            args.push(Value::Text(fmp.clone()));
        }
        if sel.exclude_rejected {
            q.push_str(" AND (s.review_status IS NULL OR s.review_status <> 'rejected')");
        }
        q.push_str(" ORDER BY s.observed_at, s.id");
        let mut stmt = self.conn.prepare(&q).map_err(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(&sql)?;
        let mut n = 0u64;
        let mut row = ExportRow::default();
        while let Some(r) = rows.next().map_err(&sql)? {
            read_export_row(r, &mut row).map_err(&sql)?;
            f(&row)?;
            n += 1;
        }
        Ok(n)
    }
}
impl SqlReader<'_> {
    /// Runs one grouping query and collects its rows.
    fn groups<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        self.conn.prepare_cached(sql)?.query_map(args, f)?.collect()
    }
}

/// Which submissions an export reads (deleted ones never are).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportSelection {
    /// First day observed, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day observed, inclusive.
    pub to: Option<NaiveDate>,
    /// Only this FMP.
    pub fmp: Option<String>,
    /// Leave out rejected submissions (they are exported, with their
    /// status, by default).
    pub exclude_rejected: bool,
}

/// One exported submission: its materialized columns, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportRow {
    /// Submission id (UUID text).
    pub id: String,
    /// Form id.
    pub form: String,
    /// Form version.
    pub form_version: i64,
    /// FMP code.
    pub fmp: String,
    /// Observation time, RFC 3339 (UTC, seconds).
    pub observed_at: String,
    /// Observation day, `YYYY-MM-DD`.
    pub day: String,
    /// `incoming` or `outgoing`.
    pub direction: String,
    /// Means of transport (snake_case).
    pub transport: String,
    /// Movement type (snake_case).
    pub movement_type: String,
    /// Country of departure.
    pub departure_country: String,
    /// Place of departure.
    pub departure_place: Option<String>,
    /// Next destination country.
    pub next_country: String,
    /// Next destination place.
    pub next_place: Option<String>,
    /// Intended final destination country.
    pub final_country: String,
    /// Intended final destination place.
    pub final_place: Option<String>,
    /// Adult men.
    pub adult_male: i64,
    /// Adult women.
    pub adult_female: i64,
    /// Boys.
    pub minor_male: i64,
    /// Girls.
    pub minor_female: i64,
    /// Individuals.
    pub total: i64,
    /// Children under five.
    pub under5: i64,
    /// Elderly persons.
    pub elderly: i64,
    /// Persons living with a disability.
    pub disability: i64,
    /// Pregnant women.
    pub pregnant: i64,
    /// Unaccompanied children, where the form asked.
    pub unaccompanied: Option<i64>,
    /// Individuals by nationality (country code), in code order.
    pub nationalities: Vec<(String, i64)>,
    /// Free-text notes.
    pub notes: String,
    /// Review status, if reviewed.
    pub review_status: Option<String>,
    /// Review comment, if reviewed.
    pub review_comment: Option<String>,
}

const EXPORT_SELECT: &str =
    "SELECT s.id, s.form, s.form_version, s.fmp, s.observed_at, s.day, s.direction,
    s.transport, s.movement_type, s.departure_country, s.departure_place, s.next_country,
    s.next_place, s.final_country, s.final_place, s.adult_male, s.adult_female, s.minor_male,
    s.minor_female, s.total, s.under5, s.elderly, s.disability, s.pregnant, s.unaccompanied,
    (SELECT group_concat(n.country || ':' || n.count, ';' ORDER BY n.country)
       FROM submission_nationalities n WHERE n.submission_id = s.id),
    s.notes, s.review_status, s.review_comment
  FROM submissions s WHERE s.deleted = 0";

fn conversion(i: usize, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.to_string().into())
}

/// Reads one export row into `out`.
fn read_export_row(r: &Row<'_>, out: &mut ExportRow) -> rusqlite::Result<()> {
    *out = ExportRow {
        id: r.get(0)?,
        form: r.get(1)?,
        form_version: r.get(2)?,
        fmp: r.get(3)?,
        observed_at: r.get(4)?,
        day: r.get(5)?,
        direction: r.get(6)?,
        transport: r.get(7)?,
        movement_type: r.get(8)?,
        departure_country: r.get(9)?,
        departure_place: r.get(10)?,
        next_country: r.get(11)?,
        next_place: r.get(12)?,
        final_country: r.get(13)?,
        final_place: r.get(14)?,
        adult_male: r.get(15)?,
        adult_female: r.get(16)?,
        minor_male: r.get(17)?,
        minor_female: r.get(18)?,
        total: r.get(19)?,
        under5: r.get(20)?,
        elderly: r.get(21)?,
        disability: r.get(22)?,
        pregnant: r.get(23)?,
        unaccompanied: r.get(24)?,
        nationalities: Vec::new(),
        notes: r.get(26)?,
        review_status: r.get(27)?,
        review_comment: r.get(28)?,
    };
    if let Some(s) = r.get::<_, Option<String>>(25)? {
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (c, n) = part
                .split_once(':')
                .ok_or_else(|| conversion(25, format!("nationalities: `{part}`")))?;
            let n: i64 = n
                .parse()
                .map_err(|_| conversion(25, format!("nationalities: `{part}`")))?;
            out.nationalities.push((c.to_string(), n));
        }
    }
    Ok(())
}
