//! Writing a submission's current state into the `submissions` and
//! `submission_nationalities` tables (the materialized columns).

use rusqlite::{Connection, params};

use crate::model::StoredSubmission;

/// The materialized columns of a submission that are computed from it
/// rather than copied, the same on either backend.
pub(crate) struct Derived {
    /// The record's id, '' when it has none.
    pub id: String,
    /// When it was observed, RFC 3339 to the second.
    pub observed: String,
    /// The day observed, `YYYY-MM-DD`.
    pub day: String,
    /// The month observed, `YYYY-MM`.
    pub month: String,
    /// Individuals counted.
    pub total: i64,
    /// When it was reviewed, RFC 3339 to the second, if it was.
    pub review_at: Option<String>,
    /// Its conflicts, one more when its merged state is invalid.
    pub conflicts: i64,
}

/// The [`Derived`] columns of `s`; `invalid` as for [`write_row_flagged`].
pub(crate) fn derived(s: &StoredSubmission, invalid: bool) -> Derived {
    let sub = &s.submission;
    Derived {
        id: sub.id.map(|u| u.to_string()).unwrap_or_default(),
        observed: sub
            .observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        day: sub.observed_at.format("%Y-%m-%d").to_string(),
        month: sub.observed_at.format("%Y-%m").to_string(),
        total: i64::try_from(sub.people.total()).unwrap_or(i64::MAX),
        review_at: s
            .review
            .as_ref()
            .map(|r| r.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        conflicts: i64::try_from(s.conflicts.len())
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(invalid)),
    }
}

/// Replaces the materialized row of one submission with its current state.
pub fn write_row(conn: &Connection, s: &StoredSubmission, seq: i64) -> rusqlite::Result<()> {
    write_row_flagged(conn, s, seq, false)
}

/// [`write_row`], with `invalid` true when the current state fails
/// validation (two valid concurrent edits merged into an invalid record):
/// the `conflicts` column then counts one more, so the record shows as
/// needing review (see [`crate::store::Store::flagged`]).
pub fn write_row_flagged(
    conn: &Connection,
    s: &StoredSubmission,
    seq: i64,
    invalid: bool,
) -> rusqlite::Result<()> {
    let sub = &s.submission;
    let Derived {
        id,
        observed,
        day,
        month,
        total,
        review_at,
        conflicts,
    } = derived(s, invalid);
    conn.prepare_cached("DELETE FROM submission_nationalities WHERE submission_id = ?1")?
        .execute([&id])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO submissions (id, form, form_version, fmp, observed_at, day, month,
            direction, transport, movement_type, departure_country, departure_place,
            next_country, next_place, final_country, final_place,
            adult_male, adult_female, minor_male, minor_female, total,
            under5, elderly, disability, pregnant, unaccompanied, notes,
            review_status, review_comment, review_by, review_at, deleted, conflicts, updated_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)",
    )?
    .execute(params![
            id,
            sub.form,
            sub.form_version,
            sub.fmp,
            observed,
            day,
            month,
            sub.direction.as_str(),
            sub.transport.as_str(),
            sub.movement_type.as_str(),
            sub.departure.country,
            sub.departure.place,
            sub.next_destination.country,
            sub.next_destination.place,
            sub.final_destination.country,
            sub.final_destination.place,
            sub.people.adult_male,
            sub.people.adult_female,
            sub.people.minor_male,
            sub.people.minor_female,
            total,
            sub.vulnerable.under5,
            sub.vulnerable.elderly,
            sub.vulnerable.disability,
            sub.vulnerable.pregnant,
            sub.vulnerable.unaccompanied_children,
            sub.notes,
            s.review.as_ref().map(|r| r.status.as_str()),
            s.review.as_ref().map(|r| r.comment.as_str()),
            s.review.as_ref().map(|r| r.by.as_str()),
            review_at,
            s.deleted,
            conflicts,
        seq,
    ])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO submission_nationalities (submission_id, country, count) VALUES (?1, ?2, ?3)",
    )?;
    for (country, count) in &sub.nationalities {
        ins.execute(params![id, country, count])?;
    }
    Ok(())
}
