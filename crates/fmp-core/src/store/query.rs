//! The submissions as the store's own reads show them: listing from the
//! materialized columns (without loading documents), a submission's
//! history, the records a review sent back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, types::Value};
use uuid::Uuid;

use super::corrections::ToCorrect;
use super::ops::RecordReads;
use super::{Filter, HistoryEntry, StoreError, access::SqlReader};
use crate::model::{People, Place, Review, StoredSubmission, Submission, Vulnerable};

impl RecordReads for SqlReader<'_> {
    fn list_rows(&self, filter: &Filter) -> Result<Vec<(StoredSubmission, bool)>, StoreError> {
        list(self.conn, filter).map_err(self.sql())
    }

    fn history_rows(&self, id: Uuid) -> Result<Vec<(HistoryEntry, Vec<u8>)>, StoreError> {
        let me = &self.store.identity;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.seq, c.hash, c.author, c.time, c.op,
                   CASE WHEN c.author = ?2 THEN ?3 ELSE coalesce(u.name, d.name) END, c.bytes
                 FROM changes c LEFT JOIN hub_upstream u ON u.hub = c.author
                 LEFT JOIN hub_devices d ON d.device = c.author
                 WHERE c.doc_id = ?1 ORDER BY c.seq",
            )
            .map_err(self.sql())?;
        stmt.query_map(
            rusqlite::params![id.to_string(), me.device_id.to_string(), me.name],
            |r| {
                let hash: Vec<u8> = r.get(1)?;
                let ms: i64 = r.get(3)?;
                Ok((
                    HistoryEntry {
                        seq: r.get(0)?,
                        hash: hex::encode(hash),
                        author: r.get(2)?,
                        author_name: r.get(5)?,
                        fields: Vec::new(),
                        time: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
                        op: r.get(4)?,
                    },
                    r.get::<_, Vec<u8>>(6)?,
                ))
            },
        )
        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(self.sql())
    }

    fn to_correct_rows(&self) -> Result<Vec<ToCorrect>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT s.id, s.fmp, s.review_status, coalesce(s.review_comment, ''),
                       coalesce(s.review_by, ''),
                       coalesce((SELECT max(seq) FROM changes WHERE doc_id = s.id AND op = 'edit'), 0)
                         > coalesce((SELECT max(seq) FROM changes WHERE doc_id = s.id AND op = 'review'), 0)
                     FROM submissions s
                     WHERE s.deleted = 0 AND s.review_status IN ('has_issues', 'rejected')
                     ORDER BY s.observed_at",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| {
                    Ok(ToCorrect {
                        id: r.get(0)?,
                        fmp: r.get(1)?,
                        status: r.get(2)?,
                        comment: r.get(3)?,
                        by: r.get(4)?,
                        by_name: None,
                        edited_since: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.sql())
    }
}

const COLUMNS: &str = "id, form, form_version, fmp, observed_at, direction, transport, movement_type,
    departure_country, departure_place, next_country, next_place, final_country, final_place,
    adult_male, adult_female, minor_male, minor_female, under5, elderly, disability, pregnant,
    unaccompanied, notes, review_status, review_comment, review_by, review_at, deleted, conflicts,
    (SELECT group_concat(country || '=' || count) FROM submission_nationalities n WHERE n.submission_id = s.id)";

/// Runs a filtered listing.
/// Rows whose `conflicts` count is non-zero come back with an empty
/// `conflicts` list; `Store::list` fills those from their documents.
fn list(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<(StoredSubmission, bool)>> {
    let mut sql = format!("SELECT {COLUMNS} FROM submissions s WHERE 1=1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(fmp) = &f.fmp {
        args.push(Value::Text(fmp.clone()));
        sql += &format!(" AND fmp = ?{}", args.len());
    }
    if let Some(from) = f.from {
        args.push(Value::Text(from.to_string()));
        sql += &format!(" AND day >= ?{}", args.len());
    }
    if let Some(to) = f.to {
        args.push(Value::Text(to.to_string()));
        sql += &format!(" AND day <= ?{}", args.len());
    }
    if let Some(d) = f.direction {
        args.push(Value::Text(d.as_str().into()));
        sql += &format!(" AND direction = ?{}", args.len());
    }
    match f.review {
        Some(Some(st)) => {
            args.push(Value::Text(st.as_str().into()));
            sql += &format!(" AND review_status = ?{}", args.len());
        }
        Some(None) => sql += " AND review_status IS NULL",
        None => {}
    }
    if !f.include_deleted {
        sql += " AND deleted = 0";
    }
    sql += " ORDER BY observed_at, id";
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), from_row)?;
    rows.collect()
}

fn text_err(i: usize, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.to_string().into())
}

fn parse<T: std::str::FromStr>(row: &Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let s: String = row.get(i)?;
    s.parse().map_err(|e| text_err(i, e))
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<(StoredSubmission, bool)> {
    let observed: String = r.get(4)?;
    let observed_at = DateTime::parse_from_rfc3339(&observed)
        .map_err(|e| text_err(4, e))?
        .with_timezone(&Utc);
    let mut nationalities = BTreeMap::new();
    if let Some(s) = r.get::<_, Option<String>>(30)? {
        for part in s.split(',') {
            if let Some((c, n)) = part.split_once('=') {
                nationalities.insert(c.to_string(), n.parse().map_err(|e| text_err(30, e))?);
            }
        }
    }
    let id: Uuid = parse(r, 0)?;
    let submission = Submission {
        id: Some(id),
        form: r.get(1)?,
        form_version: r.get(2)?,
        fmp: r.get(3)?,
        observed_at,
        direction: parse(r, 5)?,
        transport: parse(r, 6)?,
        movement_type: parse(r, 7)?,
        departure: Place {
            country: r.get(8)?,
            place: r.get(9)?,
        },
        next_destination: Place {
            country: r.get(10)?,
            place: r.get(11)?,
        },
        final_destination: Place {
            country: r.get(12)?,
            place: r.get(13)?,
        },
        people: People {
            adult_male: r.get(14)?,
            adult_female: r.get(15)?,
            minor_male: r.get(16)?,
            minor_female: r.get(17)?,
        },
        vulnerable: Vulnerable {
            under5: r.get(18)?,
            elderly: r.get(19)?,
            disability: r.get(20)?,
            pregnant: r.get(21)?,
            unaccompanied_children: r.get(22)?,
        },
        nationalities,
        notes: r.get(23)?,
    };
    let review = match r.get::<_, Option<String>>(24)? {
        Some(st) => {
            let at: String = r.get::<_, Option<String>>(27)?.unwrap_or_default();
            Some(Review {
                status: st.parse().map_err(|e| text_err(24, e))?,
                comment: r.get::<_, Option<String>>(25)?.unwrap_or_default(),
                by: r.get::<_, Option<String>>(26)?.unwrap_or_default(),
                at: DateTime::parse_from_rfc3339(&at)
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or_default(),
            })
        }
        None => None,
    };
    let has_conflicts = r.get::<_, i64>(29)? > 0;
    let stored = StoredSubmission {
        submission,
        review,
        deleted: r.get(28)?,
        conflicts: Vec::new(),
    };
    Ok((stored, has_conflicts))
}
