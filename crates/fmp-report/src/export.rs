//! Exports: one row per submission with every field, as CSV with an HXL
//! hashtag row under the header, as XLSX (typed columns, frozen header), or
//! as JSON lines of the canonical submission JSON rebuilt from the columns.
//!
//! Rows are streamed from one query; nationalities come from
//! `submission_nationalities`, as `BFA:31;MLI:2` in CSV and XLSX.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use fmp_core::{People, Place, Submission, Vulnerable};
use rusqlite::types::Value;
use rusqlite::{Connection, Row};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;

/// Which submissions to export (deleted ones never are).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFilter {
    /// First day observed, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day observed, inclusive.
    pub to: Option<NaiveDate>,
    /// Only this FMP.
    pub fmp: Option<String>,
    /// Leave out rejected submissions (they are exported, with their status, by default).
    pub exclude_rejected: bool,
}

/// How a column is typed in XLSX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    DateTime,
    Date,
}

/// Every exported column: (header, HXL hashtag, type). Order = SELECT order.
const COLUMNS: [(&str, &str, Kind); 29] = [
    ("id", "#meta+id", Kind::Text),
    ("form", "#meta+form", Kind::Text),
    ("form_version", "#meta+form+version", Kind::Int),
    ("fmp", "#loc+fmp+code", Kind::Text),
    ("observed_at", "#date+observed", Kind::DateTime),
    ("day", "#date", Kind::Date),
    ("direction", "#indicator+direction", Kind::Text),
    ("transport", "#indicator+transport", Kind::Text),
    ("movement_type", "#indicator+movement_type", Kind::Text),
    ("departure_country", "#country+code+departure", Kind::Text),
    ("departure_place", "#loc+name+departure", Kind::Text),
    ("next_country", "#country+code+next", Kind::Text),
    ("next_place", "#loc+name+next", Kind::Text),
    ("final_country", "#country+code+destination", Kind::Text),
    ("final_place", "#loc+name+destination", Kind::Text),
    ("adult_male", "#affected+m+adult", Kind::Int),
    ("adult_female", "#affected+f+adult", Kind::Int),
    ("minor_male", "#affected+m+children", Kind::Int),
    ("minor_female", "#affected+f+children", Kind::Int),
    ("total", "#affected+total", Kind::Int),
    ("under5", "#affected+children+under5", Kind::Int),
    ("elderly", "#affected+elderly", Kind::Int),
    ("disability", "#affected+disabled", Kind::Int),
    ("pregnant", "#affected+f+pregnant", Kind::Int),
    (
        "unaccompanied_children",
        "#affected+children+unaccompanied",
        Kind::Int,
    ),
    ("nationalities", "#country+code+origin", Kind::Text),
    ("notes", "#description+notes", Kind::Text),
    ("review_status", "#status+review", Kind::Text),
    ("review_comment", "#description+review", Kind::Text),
];

const SELECT: &str =
    "SELECT s.id, s.form, s.form_version, s.fmp, s.observed_at, s.day, s.direction,
    s.transport, s.movement_type, s.departure_country, s.departure_place, s.next_country,
    s.next_place, s.final_country, s.final_place, s.adult_male, s.adult_female, s.minor_male,
    s.minor_female, s.total, s.under5, s.elderly, s.disability, s.pregnant, s.unaccompanied,
    (SELECT group_concat(n.country || ':' || n.count, ';' ORDER BY n.country)
       FROM submission_nationalities n WHERE n.submission_id = s.id),
    s.notes, s.review_status, s.review_comment
  FROM submissions s WHERE s.deleted = 0";

/// Runs the export query and hands each row's values to `f`; returns the row count.
fn for_each_row(
    conn: &Connection,
    filter: &ExportFilter,
    mut f: impl FnMut(&[Value]) -> Result<(), ReportError>,
) -> Result<u64, ReportError> {
    let mut sql = SELECT.to_string();
    let mut params: Vec<Value> = Vec::new();
    if let Some(from) = filter.from {
        sql.push_str(" AND s.day >= ?");
        params.push(Value::Text(from.format("%Y-%m-%d").to_string()));
    }
    if let Some(to) = filter.to {
        sql.push_str(" AND s.day <= ?");
        params.push(Value::Text(to.format("%Y-%m-%d").to_string()));
    }
    if let Some(fmp) = &filter.fmp {
        sql.push_str(" AND s.fmp = ?");
        params.push(Value::Text(fmp.clone()));
    }
    if filter.exclude_rejected {
        sql.push_str(" AND (s.review_status IS NULL OR s.review_status <> 'rejected')");
    }
    sql.push_str(" ORDER BY s.observed_at, s.id");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut n = 0u64;
    let mut values = Vec::with_capacity(COLUMNS.len());
    while let Some(row) = rows.next()? {
        values.clear();
        for i in 0..COLUMNS.len() {
            values.push(row_value(row, i)?);
        }
        f(&values)?;
        n += 1;
    }
    Ok(n)
}

fn row_value(row: &Row<'_>, i: usize) -> rusqlite::Result<Value> {
    row.get::<_, Value>(i)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the submissions as CSV: a header row, an HXL hashtag row, then one
/// row per submission. Returns the number of submissions written.
pub fn export_csv(
    conn: &Connection,
    filter: &ExportFilter,
    mut w: impl Write,
) -> Result<u64, ReportError> {
    let header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    writeln!(w, "{}", header.join(","))?;
    let hxl: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
    writeln!(w, "{}", hxl.join(","))?;
    let mut line = String::new();
    let n = for_each_row(conn, filter, |values| {
        line.clear();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&csv_field(&text(v)));
        }
        writeln!(w, "{line}")?;
        Ok(())
    })?;
    w.flush()?;
    Ok(n)
}

/// Writes the submissions as an XLSX workbook: typed columns, a bold frozen
/// header row with a filter. Returns the number of submissions written.
pub fn export_xlsx(
    conn: &Connection,
    filter: &ExportFilter,
    mut w: impl Write,
) -> Result<u64, ReportError> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("submissions")?;
    let bold = Format::new().set_bold();
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (c, (name, _, kind)) in COLUMNS.iter().enumerate() {
        let col = u16::try_from(c).unwrap_or(u16::MAX);
        sheet.write_string_with_format(0, col, *name, &bold)?;
        let width = match kind {
            Kind::Int => 10.0,
            Kind::Date => 11.0,
            Kind::DateTime => 19.0,
            Kind::Text => 16.0,
        };
        sheet.set_column_width(col, width)?;
    }
    sheet.set_column_width(0, 37.0)?;
    sheet.set_freeze_panes(1, 0)?;
    let mut r: u32 = 0;
    let n = for_each_row(conn, filter, |values| {
        r += 1;
        for (c, v) in values.iter().enumerate() {
            let col = u16::try_from(c).unwrap_or(u16::MAX);
            match (COLUMNS[c].2, v) {
                (_, Value::Null) => {}
                (Kind::Int, Value::Integer(i)) => {
                    sheet.write_number(r, col, *i as f64)?;
                }
                (Kind::DateTime, Value::Text(s)) => {
                    sheet.write_datetime_with_format(
                        r,
                        col,
                        &ExcelDateTime::parse_from_str(s)?,
                        &datetime,
                    )?;
                }
                (Kind::Date, Value::Text(s)) => {
                    sheet.write_datetime_with_format(
                        r,
                        col,
                        &ExcelDateTime::parse_from_str(s)?,
                        &date,
                    )?;
                }
                (_, v) => {
                    sheet.write_string(r, col, text(v))?;
                }
            }
        }
        Ok(())
    })?;
    let last_col = u16::try_from(COLUMNS.len() - 1).unwrap_or(u16::MAX);
    sheet.autofilter(0, 0, r.max(1), last_col)?;
    w.write_all(&book.save_to_buffer()?)?;
    w.flush()?;
    Ok(n)
}

/// Writes the submissions as JSON lines, one canonical submission JSON per
/// line (review state is not part of it). Returns the number written.
pub fn export_jsonl(
    conn: &Connection,
    filter: &ExportFilter,
    mut w: impl Write,
) -> Result<u64, ReportError> {
    let n = for_each_row(conn, filter, |values| {
        let s = submission_of(values)?;
        serde_json::to_writer(&mut w, &s)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    w.flush()?;
    Ok(n)
}

/// Rebuilds the canonical submission from one export row.
fn submission_of(v: &[Value]) -> Result<Submission, ReportError> {
    let id = text(&v[0]);
    let bad = |message: String| ReportError::Malformed {
        id: id.clone(),
        message,
    };
    let int = |i: usize| -> Result<u32, ReportError> {
        match &v[i] {
            Value::Integer(n) => {
                u32::try_from(*n).map_err(|_| bad(format!("{}: {n} out of range", COLUMNS[i].0)))
            }
            other => Err(bad(format!("{}: not an integer: {other:?}", COLUMNS[i].0))),
        }
    };
    let opt = |i: usize| -> Option<String> {
        match &v[i] {
            Value::Null => None,
            other => Some(text(other)),
        }
    };
    let parse = |i: usize| -> Result<String, ReportError> { Ok(text(&v[i])) };
    let observed_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&text(&v[4]))
        .map_err(|e| bad(format!("observed_at: {e}")))?
        .with_timezone(&Utc);
    let mut nationalities = BTreeMap::new();
    for part in text(&v[25]).split(';').filter(|p| !p.is_empty()) {
        let (c, n) = part
            .split_once(':')
            .ok_or_else(|| bad(format!("nationalities: `{part}`")))?;
        let n: u32 = n
            .parse()
            .map_err(|_| bad(format!("nationalities: `{part}`")))?;
        nationalities.insert(c.to_string(), n);
    }
    Ok(Submission {
        id: Some(id.parse().map_err(|e| bad(format!("id: {e}")))?),
        form: parse(1)?,
        form_version: int(2)?,
        fmp: parse(3)?,
        observed_at,
        direction: text(&v[6]).parse().map_err(bad)?,
        transport: text(&v[7]).parse().map_err(bad)?,
        movement_type: text(&v[8]).parse().map_err(bad)?,
        departure: Place {
            country: text(&v[9]),
            place: opt(10),
        },
        next_destination: Place {
            country: text(&v[11]),
            place: opt(12),
        },
        final_destination: Place {
            country: text(&v[13]),
            place: opt(14),
        },
        people: People {
            adult_male: int(15)?,
            adult_female: int(16)?,
            minor_male: int(17)?,
            minor_female: int(18)?,
        },
        vulnerable: Vulnerable {
            under5: int(20)?,
            elderly: int(21)?,
            disability: int(22)?,
            pregnant: int(23)?,
            unaccompanied_children: match v[24] {
                Value::Null => None,
                _ => Some(int(24)?),
            },
        },
        nationalities,
        notes: text(&v[26]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn every_column_has_a_hashtag() {
        for (name, tag, _) in COLUMNS {
            assert!(tag.starts_with('#'), "{name}");
            assert!(
                tag[1..].split('+').all(|p| !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
                "{tag}"
            );
        }
    }
}
