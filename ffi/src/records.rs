//! Plain records and enums that cross the FFI, mirroring fmp-core's model
//! field for field, and their conversions (the only place they are written).
//!
//! Times are `SystemTime` (Kotlin `java.time.Instant`), ids are UUID strings,
//! counts are `u32` (Kotlin `UInt`), nationalities a map alpha-3 → count.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use fmp_core::model as core;
use uuid::Uuid;

use crate::error::FmpError;

/// Mirrors a core enum as a uniffi enum, with conversions both ways.
macro_rules! mirror_enum {
    ($(#[$m:meta])* $name:ident => $core:path { $($(#[$vm:meta])* $var:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl From<$name> for $core {
            fn from(v: $name) -> $core {
                match v { $($name::$var => <$core>::$var),+ }
            }
        }
        impl From<$core> for $name {
            fn from(v: $core) -> $name {
                match v { $(<$core>::$var => $name::$var),+ }
            }
        }
    };
}

mirror_enum!(
    /// Direction of a group's movement through the FMP.
    Direction => core::Direction {
        /// Entering the country.
        Incoming,
        /// Leaving it.
        Outgoing,
    }
);

mirror_enum!(
    /// Means of transport of the observed group.
    Transport => core::Transport {
        /// Bus.
        Bus,
        /// Truck.
        Truck,
        /// Private car or taxi.
        Car,
        /// Motorbike.
        Motorbike,
        /// Tricycle.
        Tricycle,
        /// On foot.
        Foot,
        /// Anything else.
        Other,
    }
);

mirror_enum!(
    /// Type of movement, as the FMP questionnaire asks it.
    MovementType => core::MovementType {
        /// Economic migration of more than six months.
        EconomicLongTerm,
        /// Seasonal migration.
        Seasonal,
        /// Short-term local movement.
        ShortTermLocal,
        /// Tourism.
        Tourism,
        /// Forced movement (conflict, disaster).
        Forced,
        /// Anything else.
        Other,
    }
);

mirror_enum!(
    /// Review status a supervisor gives a submission.
    ReviewStatus => core::ReviewStatus {
        /// Checked and accepted.
        Approved,
        /// Refused: left out of reports by default.
        Rejected,
        /// Needs a correction from the enumerator.
        HasIssues,
    }
);

/// A place: a country (ISO 3166-1 alpha-3) and optionally a town.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Place {
    /// ISO 3166-1 alpha-3 country code, e.g. `BFA`.
    pub country: String,
    /// Town or locality, free text.
    #[uniffi(default)]
    pub place: Option<String>,
}

/// Head count of the group by age and sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct People {
    /// Adult men.
    pub adult_male: u32,
    /// Adult women.
    pub adult_female: u32,
    /// Boys under 18.
    pub minor_male: u32,
    /// Girls under 18.
    pub minor_female: u32,
}

/// Vulnerabilities observed in the group (counts of individuals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Vulnerable {
    /// Children under five.
    #[uniffi(default = 0)]
    pub under5: u32,
    /// Elderly people.
    #[uniffi(default = 0)]
    pub elderly: u32,
    /// People with a disability.
    #[uniffi(default = 0)]
    pub disability: u32,
    /// Pregnant women.
    #[uniffi(default = 0)]
    pub pregnant: u32,
    /// Unaccompanied children, when asked.
    #[uniffi(default)]
    pub unaccompanied_children: Option<u32>,
}

/// One observed group at one FMP: every field of the canonical submission.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SubmissionRecord {
    /// UUID; the store assigns a v7 one when absent.
    #[uniffi(default)]
    pub id: Option<String>,
    /// Form id.
    #[uniffi(default = "dtm-fmp-flow")]
    pub form: String,
    /// Form version the submission was filled with.
    #[uniffi(default = 1)]
    pub form_version: u32,
    /// FMP code, e.g. `ML-HER`.
    pub fmp: String,
    /// When the group was observed.
    pub observed_at: SystemTime,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// Means of transport.
    pub transport: Transport,
    /// Where the group departed from.
    pub departure: Place,
    /// The group's next destination.
    pub next_destination: Place,
    /// The group's intended final destination.
    pub final_destination: Place,
    /// Type of movement.
    pub movement_type: MovementType,
    /// Head count by age and sex.
    pub people: People,
    /// Vulnerabilities.
    pub vulnerable: Vulnerable,
    /// Head count by nationality (alpha-3 code → individuals).
    pub nationalities: HashMap<String, u32>,
    /// Free-text notes.
    #[uniffi(default = "")]
    pub notes: String,
}

/// A supervisor's review of a submission.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReviewRecord {
    /// Approved, rejected or has_issues.
    pub status: ReviewStatus,
    /// The supervisor's comment.
    pub comment: String,
    /// Device id of the reviewer.
    pub by: String,
    /// When the review was made (reviewer's clock).
    pub at: SystemTime,
}

/// A field where concurrent edits disagreed; values are JSON text.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConflictRecord {
    /// Field path, e.g. `people.adult_male`.
    pub field: String,
    /// The value every replica shows, as JSON.
    pub winner: String,
    /// The values that lost the deterministic merge, as JSON.
    pub others: Vec<String>,
}

/// A submission as stored: the submission plus its review and merge state.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoredRecord {
    /// The submission, with its `id` set.
    pub submission: SubmissionRecord,
    /// The current review, if any.
    pub review: Option<ReviewRecord>,
    /// True once deleted (a tombstone kept for sync).
    pub deleted: bool,
    /// Fields with unresolved concurrent values.
    pub conflicts: Vec<ConflictRecord>,
}

/// One change in a submission's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// Position in this store's change log.
    pub seq: i64,
    /// Content hash of the change (hex).
    pub hash: String,
    /// Device that made it.
    pub author: String,
    /// When, by the author's clock.
    pub time: SystemTime,
    /// What it did: `record`, `edit`, `delete` or `review`.
    pub op: String,
}

/// Which review state `FmpStore.list` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ReviewFilter {
    /// Not reviewed yet.
    NotReviewed,
    /// Reviewed with this status.
    Is {
        /// The status.
        status: ReviewStatus,
    },
}

/// Filters for `FmpStore.list`; every field is optional (Kotlin: `ListFilter()` lists all).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ListFilter {
    /// Only this FMP code.
    #[uniffi(default)]
    pub fmp: Option<String>,
    /// Observed on or after this UTC day, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub from: Option<String>,
    /// Observed on or before this UTC day, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub to: Option<String>,
    /// Only this direction.
    #[uniffi(default)]
    pub direction: Option<Direction>,
    /// Only this review state.
    #[uniffi(default)]
    pub review: Option<ReviewFilter>,
    /// Include deleted submissions (tombstones).
    #[uniffi(default)]
    pub include_deleted: bool,
}

// ---- conversions --------------------------------------------------------

/// A chrono time as `SystemTime` (exact to the nanosecond, before 1970 too).
pub(crate) fn to_system_time(t: DateTime<Utc>) -> SystemTime {
    let secs = t.timestamp();
    let nanos = Duration::from_nanos(u64::from(t.timestamp_subsec_nanos()));
    let whole = Duration::from_secs(secs.unsigned_abs());
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    base.and_then(|b| b.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}

/// A `SystemTime` from Kotlin as a chrono time; out of chrono's range is a field error.
pub(crate) fn from_system_time(t: SystemTime, field: &str) -> Result<DateTime<Utc>, FmpError> {
    let dt = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, d.subsec_nanos())),
        Err(before) => {
            let d = before.duration();
            i64::try_from(d.as_secs()).ok().and_then(|s| {
                if d.subsec_nanos() == 0 {
                    DateTime::from_timestamp(-s, 0)
                } else {
                    DateTime::from_timestamp(-s - 1, 1_000_000_000 - d.subsec_nanos())
                }
            })
        }
    };
    dt.ok_or_else(|| FmpError::field(field, "the time is out of the supported range"))
}

/// Parses a submission id; a malformed one names the field.
pub(crate) fn parse_id(id: &str) -> Result<Uuid, FmpError> {
    Uuid::parse_str(id).map_err(|e| FmpError::other(format!("`{id}` is not a submission id: {e}")))
}

impl From<Place> for core::Place {
    fn from(p: Place) -> core::Place {
        core::Place {
            country: p.country,
            place: p.place,
        }
    }
}

impl From<core::Place> for Place {
    fn from(p: core::Place) -> Place {
        Place {
            country: p.country,
            place: p.place,
        }
    }
}

impl From<People> for core::People {
    fn from(p: People) -> core::People {
        core::People {
            adult_male: p.adult_male,
            adult_female: p.adult_female,
            minor_male: p.minor_male,
            minor_female: p.minor_female,
        }
    }
}

impl From<core::People> for People {
    fn from(p: core::People) -> People {
        People {
            adult_male: p.adult_male,
            adult_female: p.adult_female,
            minor_male: p.minor_male,
            minor_female: p.minor_female,
        }
    }
}

impl From<Vulnerable> for core::Vulnerable {
    fn from(v: Vulnerable) -> core::Vulnerable {
        core::Vulnerable {
            under5: v.under5,
            elderly: v.elderly,
            disability: v.disability,
            pregnant: v.pregnant,
            unaccompanied_children: v.unaccompanied_children,
        }
    }
}

impl From<core::Vulnerable> for Vulnerable {
    fn from(v: core::Vulnerable) -> Vulnerable {
        Vulnerable {
            under5: v.under5,
            elderly: v.elderly,
            disability: v.disability,
            pregnant: v.pregnant,
            unaccompanied_children: v.unaccompanied_children,
        }
    }
}

impl TryFrom<SubmissionRecord> for core::Submission {
    type Error = FmpError;

    fn try_from(s: SubmissionRecord) -> Result<core::Submission, FmpError> {
        let id = match s.id {
            Some(id) => Some(
                Uuid::parse_str(&id)
                    .map_err(|e| FmpError::field("id", format!("`{id}` is not a UUID: {e}")))?,
            ),
            None => None,
        };
        Ok(core::Submission {
            id,
            form: s.form,
            form_version: s.form_version,
            fmp: s.fmp,
            observed_at: from_system_time(s.observed_at, "observed_at")?,
            direction: s.direction.into(),
            transport: s.transport.into(),
            departure: s.departure.into(),
            next_destination: s.next_destination.into(),
            final_destination: s.final_destination.into(),
            movement_type: s.movement_type.into(),
            people: s.people.into(),
            vulnerable: s.vulnerable.into(),
            nationalities: s.nationalities.into_iter().collect(),
            notes: s.notes,
        })
    }
}

impl From<core::Submission> for SubmissionRecord {
    fn from(s: core::Submission) -> SubmissionRecord {
        SubmissionRecord {
            id: s.id.map(|id| id.to_string()),
            form: s.form,
            form_version: s.form_version,
            fmp: s.fmp,
            observed_at: to_system_time(s.observed_at),
            direction: s.direction.into(),
            transport: s.transport.into(),
            departure: s.departure.into(),
            next_destination: s.next_destination.into(),
            final_destination: s.final_destination.into(),
            movement_type: s.movement_type.into(),
            people: s.people.into(),
            vulnerable: s.vulnerable.into(),
            nationalities: s.nationalities.into_iter().collect(),
            notes: s.notes,
        }
    }
}

impl From<core::Review> for ReviewRecord {
    fn from(r: core::Review) -> ReviewRecord {
        ReviewRecord {
            status: r.status.into(),
            comment: r.comment,
            by: r.by,
            at: to_system_time(r.at),
        }
    }
}

impl From<core::Conflict> for ConflictRecord {
    fn from(c: core::Conflict) -> ConflictRecord {
        ConflictRecord {
            field: c.field,
            winner: c.winner.to_string(),
            others: c.others.iter().map(|v| v.to_string()).collect(),
        }
    }
}

impl From<core::StoredSubmission> for StoredRecord {
    fn from(s: core::StoredSubmission) -> StoredRecord {
        StoredRecord {
            submission: s.submission.into(),
            review: s.review.map(Into::into),
            deleted: s.deleted,
            conflicts: s.conflicts.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<fmp_core::store::HistoryEntry> for HistoryEntry {
    fn from(h: fmp_core::store::HistoryEntry) -> HistoryEntry {
        HistoryEntry {
            seq: h.seq,
            hash: h.hash,
            author: h.author,
            time: to_system_time(h.time),
            op: h.op,
        }
    }
}

/// Parses an optional `YYYY-MM-DD` filter bound, naming the field if malformed.
fn parse_day(day: Option<String>, field: &str) -> Result<Option<chrono::NaiveDate>, FmpError> {
    day.map(|d| {
        d.parse()
            .map_err(|e| FmpError::field(field, format!("`{d}` is not a day (YYYY-MM-DD): {e}")))
    })
    .transpose()
}

impl TryFrom<ListFilter> for fmp_core::store::Filter {
    type Error = FmpError;

    fn try_from(f: ListFilter) -> Result<fmp_core::store::Filter, FmpError> {
        Ok(fmp_core::store::Filter {
            fmp: f.fmp,
            from: parse_day(f.from, "from")?,
            to: parse_day(f.to, "to")?,
            direction: f.direction.map(Into::into),
            review: f.review.map(|r| match r {
                ReviewFilter::NotReviewed => None,
                ReviewFilter::Is { status } => Some(status.into()),
            }),
            include_deleted: f.include_deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_exactly_both_sides_of_the_epoch() {
        for s in [
            "2020-06-14T09:30:00Z",
            "2020-06-14T09:30:00.123456789Z",
            "1969-12-31T23:59:59.5Z",
            "1900-01-01T00:00:00Z",
        ] {
            let t: DateTime<Utc> = s.parse().expect("test time");
            let back = from_system_time(to_system_time(t), "t").expect("in range");
            assert_eq!(back, t, "{s}");
        }
    }

    #[test]
    fn every_submission_field_survives_the_mirror() {
        let json = r#"{"id":"01890a5d-ac96-774b-bcce-b302099a8057","form":"dtm-fmp-flow","form_version":1,
            "fmp":"ML-HER","observed_at":"2020-06-14T09:30:00Z","direction":"outgoing","transport":"foot",
            "departure":{"country":"BFA","place":"Bobo-Dioulasso"},"next_destination":{"country":"MLI"},
            "final_destination":{"country":"SEN","place":"Dakar"},"movement_type":"forced",
            "people":{"adult_male":1,"adult_female":2,"minor_male":3,"minor_female":4},
            "vulnerable":{"under5":5,"elderly":6,"disability":7,"pregnant":8,"unaccompanied_children":9},
            "nationalities":{"BFA":4,"MLI":6},"notes":"n"}"#;
        let core = core::Submission::from_json(json).expect("test json");
        let rec = SubmissionRecord::from(core.clone());
        assert_eq!(rec.people.minor_male, 3);
        assert_eq!(rec.vulnerable.pregnant, 8);
        assert_eq!(core::Submission::try_from(rec).expect("converts"), core);
    }

    #[test]
    fn a_bad_id_names_the_field() {
        let json = r#"{"form":"f","form_version":1,"fmp":"X","observed_at":"2020-06-14T09:30:00Z",
            "direction":"incoming","transport":"bus","departure":{"country":"BFA"},
            "next_destination":{"country":"MLI"},"final_destination":{"country":"MLI"},
            "movement_type":"seasonal","people":{"adult_male":1,"adult_female":0,"minor_male":0,"minor_female":0},
            "vulnerable":{"under5":0,"elderly":0,"disability":0,"pregnant":0},"nationalities":{"MLI":1}}"#;
        let mut rec = SubmissionRecord::from(core::Submission::from_json(json).expect("test json"));
        rec.id = Some("nope".into());
        let Err(FmpError::Validation { fields }) = core::Submission::try_from(rec) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields[0].field, "id");
    }
}
