//! What an enumerator must correct: the records this device recorded that
//! a supervisor marked has_issues or rejected, with the reviewer's comment,
//! and whether the record was edited since the review.

use crate::store::ops::*;
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};

/// One record a review sent back to this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToCorrect {
    /// The record.
    pub id: String,
    /// Its FMP.
    pub fmp: String,
    /// `has_issues` or `rejected`.
    pub status: String,
    /// The reviewer's comment.
    pub comment: String,
    /// The reviewer (device id).
    pub by: String,
    /// The reviewer's name, where this store knows it (the hub it joined).
    pub by_name: Option<String>,
    /// Edited since the review (the reviewer has not looked again yet).
    pub edited_since: bool,
}

impl Store {
    /// The records this device recorded whose review is has_issues or
    /// rejected, oldest first (one snapshot).
    pub fn to_correct(&self) -> Result<Vec<ToCorrect>, StoreError> {
        let me = self.identity.device_id;
        self.snapshot(|r| {
            let rows = r.to_correct_rows()?;
            let mut out = Vec::new();
            for t in rows {
                let Ok(id) = Uuid::parse_str(&t.id) else {
                    continue;
                };
                if r.record_author(id)? == Some(me) {
                    let by_name = r.device_name(&t.by)?;
                    out.push(ToCorrect { by_name, ..t });
                }
            }
            Ok(out)
        })
    }
}
