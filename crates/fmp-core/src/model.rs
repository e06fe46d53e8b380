//! The canonical submission JSON (see DESIGN.md) as Rust types.
//!
//! `Submission` is what an enumerator records: one observed group at one FMP.
//! Parsing is strict (unknown fields are refused) and names the field path of
//! any type error; the semantic rules live in `validate.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Direction of a group's movement through the FMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Entering the country (or the FMP's area).
    Incoming,
    /// Leaving it.
    Outgoing,
}

/// Means of transport of the observed group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
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

/// Type of movement, as the FMP questionnaire asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementType {
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

/// Review status a supervisor gives a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Checked and accepted.
    Approved,
    /// Refused: left out of reports by default.
    Rejected,
    /// Needs a correction from the enumerator.
    HasIssues,
}

macro_rules! str_enum {
    ($ty:ty { $($var:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$var),+];
            /// The snake_case name used in JSON and SQL.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$var => $s),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(<$ty>::$var),)+
                    other => Err(format!(
                        "`{other}` is not one of {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

str_enum!(Direction { Incoming => "incoming", Outgoing => "outgoing" });
str_enum!(Transport {
    Bus => "bus", Truck => "truck", Car => "car", Motorbike => "motorbike",
    Tricycle => "tricycle", Foot => "foot", Other => "other",
});
str_enum!(MovementType {
    EconomicLongTerm => "economic_long_term", Seasonal => "seasonal",
    ShortTermLocal => "short_term_local", Tourism => "tourism", Forced => "forced",
    Other => "other",
});
str_enum!(ReviewStatus { Approved => "approved", Rejected => "rejected", HasIssues => "has_issues" });

/// A place: a country (ISO 3166-1 alpha-3) and optionally a town.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// ISO 3166-1 alpha-3 country code.
    pub country: String,
    /// Town or locality, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

/// Head count of the group by age and sex.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl People {
    /// Total number of individuals in the group.
    pub fn total(&self) -> u64 {
        u64::from(self.adult_male)
            + u64::from(self.adult_female)
            + u64::from(self.minor_male)
            + u64::from(self.minor_female)
    }
    /// Number of minors.
    pub fn minors(&self) -> u64 {
        u64::from(self.minor_male) + u64::from(self.minor_female)
    }
}

/// Vulnerabilities observed in the group (counts of individuals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerable {
    /// Children under five.
    pub under5: u32,
    /// Elderly people.
    pub elderly: u32,
    /// People with a disability.
    pub disability: u32,
    /// Pregnant women.
    pub pregnant: u32,
    /// Unaccompanied children (optional on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unaccompanied_children: Option<u32>,
}

/// One observed group at one FMP: the canonical submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// UUID v7; assigned by the store when absent on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Form id, e.g. `dtm-fmp-flow`.
    pub form: String,
    /// Form version the submission was filled with.
    pub form_version: u32,
    /// FMP code, e.g. `ML-HER`.
    pub fmp: String,
    /// When the group was observed (UTC).
    pub observed_at: DateTime<Utc>,
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
    pub nationalities: BTreeMap<String, u32>,
    /// Free-text notes.
    #[serde(default)]
    pub notes: String,
}

/// A parse error of submission JSON: every structural problem (missing,
/// unknown or mistyped fields, values outside their list), each with the
/// path of its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ParseError {
    /// Field path of the first problem (`people.adult_male`), or empty for
    /// the whole document (malformed JSON, not an object).
    pub path: String,
    /// What is wrong there.
    pub message: String,
    /// The other problems, as (path, message), in field order.
    pub more: Vec<(String, String)>,
}

impl ParseError {
    fn one(path: String, message: String) -> ParseError {
        ParseError {
            path,
            message,
            more: Vec::new(),
        }
    }

    /// Every problem as (path, message), the first one first.
    pub fn problems(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once((self.path.as_str(), self.message.as_str()))
            .chain(self.more.iter().map(|(p, m)| (p.as_str(), m.as_str())))
    }

    fn describe(&self) -> String {
        self.problems()
            .map(|(p, m)| {
                if p.is_empty() {
                    m.to_string()
                } else {
                    format!("{p}: {m}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Submission {
    /// Parses one submission from JSON text, naming every structural problem.
    pub fn from_json(text: &str) -> Result<Submission, ParseError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ParseError::one(String::new(), describe_json_error(&e)))?;
        // A value keeps the last of a duplicated key: strict parsing refuses
        // them, with every other structural problem at once.
        let mut found = crate::shape::duplicate_keys(text);
        if !found.is_empty() {
            found.extend(crate::shape::problems(&value));
            let mut found = found.into_iter();
            if let Some((path, message)) = found.next() {
                return Err(ParseError {
                    path,
                    message,
                    more: found.collect(),
                });
            }
        }
        Submission::from_value(value)
    }

    /// Parses one submission from an already-parsed JSON value, naming
    /// every structural problem.
    pub fn from_value(value: serde_json::Value) -> Result<Submission, ParseError> {
        let mut found = crate::shape::problems(&value).into_iter();
        if let Some((path, message)) = found.next() {
            return Err(ParseError {
                path,
                message,
                more: found.collect(),
            });
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let path = if path == "." { String::new() } else { path };
            ParseError::one(path, describe_json_error(&inner))
        })
    }

    /// The canonical JSON value of this submission.
    pub fn to_value(&self) -> serde_json::Value {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json appends " at line L column C"; keep it only for syntax errors,
    // where the position is what the user needs.
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("malformed JSON: {msg}")
        }
        _ => match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        },
    }
}

/// A supervisor's review of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Approved, rejected or has_issues.
    pub status: ReviewStatus,
    /// The supervisor's comment.
    #[serde(default)]
    pub comment: String,
    /// Device id of the reviewer.
    pub by: String,
    /// When the review was made (reviewer's clock).
    pub at: DateTime<Utc>,
}

/// A field where concurrent edits disagreed: the winner is in the submission,
/// the other values stay here until a review or an edit resolves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Field path, e.g. `people.adult_male`.
    pub field: String,
    /// The value every replica shows.
    pub winner: serde_json::Value,
    /// The values that lost the deterministic merge.
    pub others: Vec<serde_json::Value>,
}

/// A submission as stored: the canonical JSON plus its review and merge state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSubmission {
    /// The submission, with its `id` set.
    #[serde(flatten)]
    pub submission: Submission,
    /// The current review, if any.
    pub review: Option<Review>,
    /// True once deleted (a tombstone kept for sync).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Fields with unresolved concurrent values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}
