//! Exports: one row per submission with every field, as CSV with an HXL
//! hashtag row under the header, as XLSX (typed columns, frozen header), or
//! as JSON lines of the canonical submission JSON rebuilt from the columns.
//!
//! Rows are streamed from the store one at a time, on one snapshot
//! ([`fmp_core::store::Reader::for_each_export_row`]); nationalities are
//! written `BFA:31;MLI:2` in CSV and XLSX.

use fmp_core::store::ops::*;
use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use fmp_core::store::Store;
use fmp_core::store::report::ExportRow;
use fmp_core::{People, Place, Submission, Vulnerable};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use crate::error::ReportError;

/// Which submissions to export (deleted ones never are): the store's
/// selection of export rows, under the name fmp-report has always given it.
pub use fmp_core::store::report::ExportSelection as ExportFilter;

/// How a column is typed in XLSX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    DateTime,
    Date,
}

/// Every exported column: (header, HXL hashtag, type), in the order of [`cells`].
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

/// One cell of an export row, typed as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

fn opt_text(v: &Option<String>) -> Cell<'_> {
    v.as_deref().map_or(Cell::Null, Cell::Text)
}

/// The row's cells in [`COLUMNS`] order; `nat` is the row's nationalities
/// as `BFA:31;MLI:2` (empty: none).
fn cells<'a>(r: &'a ExportRow, nat: &'a str) -> [Cell<'a>; 29] {
    use Cell::{Int, Text};
    [
        Text(&r.id),
        Text(&r.form),
        Int(r.form_version),
        Text(&r.fmp),
        Text(&r.observed_at),
        Text(&r.day),
        Text(&r.direction),
        Text(&r.transport),
        Text(&r.movement_type),
        Text(&r.departure_country),
        opt_text(&r.departure_place),
        Text(&r.next_country),
        opt_text(&r.next_place),
        Text(&r.final_country),
        opt_text(&r.final_place),
        Int(r.adult_male),
        Int(r.adult_female),
        Int(r.minor_male),
        Int(r.minor_female),
        Int(r.total),
        Int(r.under5),
        Int(r.elderly),
        Int(r.disability),
        Int(r.pregnant),
        r.unaccompanied.map_or(Cell::Null, Int),
        if r.nationalities.is_empty() {
            Cell::Null
        } else {
            Text(nat)
        },
        Text(&r.notes),
        opt_text(&r.review_status),
        opt_text(&r.review_comment),
    ]
}

/// The nationalities column: `BFA:31;MLI:2`, in code order.
fn nationalities_text(r: &ExportRow, out: &mut String) {
    out.clear();
    for (i, (c, n)) in r.nationalities.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(c);
        out.push(':');
        out.push_str(&n.to_string());
    }
}

/// Reads the selected rows on one snapshot of the store and hands each to
/// `f` with its cells; returns the row count.
fn for_each_row(
    store: &Store,
    filter: &ExportFilter,
    mut f: impl FnMut(&ExportRow, &[Cell<'_>]) -> Result<(), ReportError>,
) -> Result<u64, ReportError> {
    let mut nat = String::new();
    store.snapshot(|r| {
        r.for_each_export_row(filter, |row| {
            nationalities_text(row, &mut nat);
            f(row, &cells(row, &nat))
        })
    })
}

fn text(v: &Cell<'_>) -> String {
    match v {
        Cell::Null => String::new(),
        Cell::Int(i) => i.to_string(),
        Cell::Text(s) => (*s).to_string(),
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
    store: &Store,
    filter: &ExportFilter,
    mut w: impl Write,
) -> Result<u64, ReportError> {
    let header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    writeln!(w, "{}", header.join(","))?;
    let hxl: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
    writeln!(w, "{}", hxl.join(","))?;
    let mut line = String::new();
    let n = for_each_row(store, filter, |_, values| {
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
    store: &Store,
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
    let n = for_each_row(store, filter, |_, values| {
        r += 1;
        for (c, v) in values.iter().enumerate() {
            let col = u16::try_from(c).unwrap_or(u16::MAX);
            match (COLUMNS[c].2, v) {
                (_, Cell::Null) => {}
                (Kind::Int, Cell::Int(i)) => {
                    sheet.write_number(r, col, *i as f64)?;
                }
                (Kind::DateTime, Cell::Text(s)) => {
                    sheet.write_datetime_with_format(
                        r,
                        col,
                        &ExcelDateTime::parse_from_str(s)?,
                        &datetime,
                    )?;
                }
                (Kind::Date, Cell::Text(s)) => {
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
    store: &Store,
    filter: &ExportFilter,
    mut w: impl Write,
) -> Result<u64, ReportError> {
    let n = for_each_row(store, filter, |row, _| {
        let s = submission_of(row)?;
        serde_json::to_writer(&mut w, &s)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    w.flush()?;
    Ok(n)
}

/// Rebuilds the canonical submission from one export row.
fn submission_of(v: &ExportRow) -> Result<Submission, ReportError> {
    let bad = |message: String| ReportError::Malformed {
        id: v.id.clone(),
        message,
    };
    let int = |name: &str, n: i64| -> Result<u32, ReportError> {
        u32::try_from(n).map_err(|_| bad(format!("{name}: {n} out of range")))
    };
    let observed_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&v.observed_at)
        .map_err(|e| bad(format!("observed_at: {e}")))?
        .with_timezone(&Utc);
    let mut nationalities = BTreeMap::new();
    for (c, n) in &v.nationalities {
        let n = u32::try_from(*n).map_err(|_| bad(format!("nationalities: `{c}:{n}`")))?;
        nationalities.insert(c.clone(), n);
    }
    Ok(Submission {
        id: Some(v.id.parse().map_err(|e| bad(format!("id: {e}")))?),
        form: v.form.clone(),
        form_version: int("form_version", v.form_version)?,
        fmp: v.fmp.clone(),
        observed_at,
        direction: v.direction.parse().map_err(bad)?,
        transport: v.transport.parse().map_err(bad)?,
        movement_type: v.movement_type.parse().map_err(bad)?,
        departure: Place {
            country: v.departure_country.clone(),
            place: v.departure_place.clone(),
        },
        next_destination: Place {
            country: v.next_country.clone(),
            place: v.next_place.clone(),
        },
        final_destination: Place {
            country: v.final_country.clone(),
            place: v.final_place.clone(),
        },
        people: People {
            adult_male: int("adult_male", v.adult_male)?,
            adult_female: int("adult_female", v.adult_female)?,
            minor_male: int("minor_male", v.minor_male)?,
            minor_female: int("minor_female", v.minor_female)?,
        },
        vulnerable: Vulnerable {
            under5: int("under5", v.under5)?,
            elderly: int("elderly", v.elderly)?,
            disability: int("disability", v.disability)?,
            pregnant: int("pregnant", v.pregnant)?,
            unaccompanied_children: v
                .unaccompanied
                .map(|n| int("unaccompanied_children", n))
                .transpose()?,
        },
        nationalities,
        notes: v.notes.clone(),
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
