//! How a month's records stand for the report: how many there are at each
//! FMP, by review status, so the report can say what it counted and what
//! it left out.

use super::ops::CountReads;
use std::collections::BTreeMap;

use super::{StoreError, access::SqlReader};

/// A month's live (not deleted) records at some FMPs, by review status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthCounts {
    /// Every live record.
    pub total: u64,
    /// Reviewed approved.
    pub approved: u64,
    /// Reviewed rejected.
    pub rejected: u64,
    /// Reviewed has_issues.
    pub has_issues: u64,
}

impl CountReads for SqlReader<'_> {
    fn month_counts(
        &self,
        month: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<MonthCounts, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT fmp, coalesce(review_status, ''), count(*) FROM submissions
                 WHERE deleted = 0 AND month = ?1 GROUP BY fmp, review_status",
            )
            .and_then(|mut stmt| {
                stmt.query_map([month], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.sql())?;
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = MonthCounts::default();
        for (fmp, status, n) in rows {
            if !keep(&fmp) {
                continue;
            }
            let n = u64::try_from(n).unwrap_or(0);
            out.total += n;
            *by.entry(status).or_default() += n;
        }
        out.approved = by.get("approved").copied().unwrap_or(0);
        out.rejected = by.get("rejected").copied().unwrap_or(0);
        out.has_issues = by.get("has_issues").copied().unwrap_or(0);
        Ok(out)
    }
}
