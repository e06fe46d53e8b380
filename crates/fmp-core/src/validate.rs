//! Validation of submissions: every failing field reported at once.
//!
//! [`validate`] applies exactly the rules of DESIGN.md to a parsed
//! [`Submission`] (parsing already refused unknown fields and wrong types):
//!
//! | field | rule |
//! |---|---|
//! | `form` | the form id and version are known |
//! | `people` | the group has at least one person |
//! | `nationalities` | the counts by nationality sum to the people counts |
//! | `nationalities.XXX` | each nationality is a known alpha-3 country code |
//! | `vulnerable.under5` | at most the number of minors |
//! | `vulnerable.pregnant` | at most adult_female + minor_female |
//! | `vulnerable.*` | every other count at most the group's total |
//! | `departure.country`, `next_destination.country`, `final_destination.country` | known alpha-3 codes |
//! | `fmp` | known, and active on the (UTC) date of `observed_at` |
//! | `observed_at` | not more than 24 hours after the device clock |
//! | `notes` | at most [`MAX_NOTES_BYTES`] bytes of UTF-8 |
//! | `departure.place`, `next_destination.place`, `final_destination.place` | at most [`MAX_PLACE_BYTES`] bytes of UTF-8 each |
//! | `nationalities` | at most [`MAX_NATIONALITIES`] countries |
//!
//! The three size limits make the worst case of a record (every limit
//! reached, text that does not compress) fit the smallest sync message
//! (2048 bytes after compression) across two hops, so a record can never
//! block its phone's sync (see `crates/fmp-sync/tests/fits.rs`); limits are
//! in bytes, not characters, since a character takes 1 to 4 bytes (800
//! bytes: 800 Latin letters, about 400 Arabic or 266 Chinese ones).
//!
//! Counts are `u32`; every sum is taken in `u64`, so no input overflows.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::form::Forms;
use crate::model::Submission;
use crate::reference::{Registry, country};

/// How far after the device clock an observation may be dated.
pub const MAX_CLOCK_AHEAD: Duration = Duration::hours(24);
/// Longest `notes`, in bytes of UTF-8.
pub const MAX_NOTES_BYTES: usize = 800;
/// Longest place name (`departure.place`…), in bytes of UTF-8.
pub const MAX_PLACE_BYTES: usize = 100;
/// Most countries in `nationalities`.
pub const MAX_NATIONALITIES: usize = 30;

fn too_long(what: &str, len: usize, max: usize) -> String {
    format!(
        "{len} bytes of text; at most {max} bytes (UTF-8) for {what}, so that the record fits the smallest sync message (2048 bytes)"
    )
}

/// One failing field: its path and a sentence a field supervisor understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Field path, e.g. `vulnerable.under5` or `nationalities.XYZ`.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A refused submission: every failing field, in the order of the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationError {
    /// The failing fields; never empty.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationError {
    /// The paths of the failing fields.
    pub fn fields(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.field.as_str()).collect()
    }
}

/// Collects field errors in order.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

fn people_word(n: u64) -> &'static str {
    if n == 1 { "person" } else { "people" }
}

fn unknown_country_message(code: &str) -> String {
    let upper = code.trim().to_ascii_uppercase();
    if upper != code && country(&upper).is_some() {
        format!("{code:?} is not a known ISO 3166-1 alpha-3 country code; write it {upper}")
    } else {
        format!("{code:?} is not a known ISO 3166-1 alpha-3 country code (e.g. MLI, BFA, CIV)")
    }
}

/// Checks a submission against DESIGN.md's rules; on failure, names every failing field.
///
/// `now` is the device clock: an observation may be dated at most
/// [`MAX_CLOCK_AHEAD`] after it.
pub fn validate(
    sub: &Submission,
    registry: &Registry,
    forms: &Forms,
    now: DateTime<Utc>,
) -> Result<(), ValidationError> {
    check(sub, registry, forms, Some(now))
}

/// [`validate`] without the rule that depends on the local clock
/// (`observed_at` at most a day after the device clock): the rules a
/// replica applies to a submission it receives, whose author's clock it
/// does not know. The form version it names and the registry as of its
/// date are checked as on the phone.
pub fn validate_received(
    sub: &Submission,
    registry: &Registry,
    forms: &Forms,
) -> Result<(), ValidationError> {
    check(sub, registry, forms, None)
}

fn check(
    sub: &Submission,
    registry: &Registry,
    forms: &Forms,
    now: Option<DateTime<Utc>>,
) -> Result<(), ValidationError> {
    let mut errs = Errors::default();

    // The form the submission was filled with.
    if forms.get(&sub.form, sub.form_version).is_none() {
        let known: Vec<String> = forms
            .iter()
            .filter(|f| f.id == sub.form)
            .map(|f| f.version.to_string())
            .collect();
        let msg = if known.is_empty() {
            format!("{:?} is not a known form", sub.form)
        } else {
            format!(
                "{} has no version {} (known versions: {})",
                sub.form,
                sub.form_version,
                known.join(", ")
            )
        };
        errs.push(
            if known.is_empty() {
                "form"
            } else {
                "form_version"
            },
            msg,
        );
    }

    // The FMP, and whether it was open on the day of the observation (UTC).
    let date = sub.observed_at.date_naive();
    match registry.get(&sub.fmp) {
        None => errs.push("fmp", format!("{} is not a known FMP", sub.fmp)),
        Some(fmp) if date < fmp.active_since => errs.push(
            "fmp",
            format!(
                "{} is active only since {}, not on {date}",
                fmp.code, fmp.active_since
            ),
        ),
        Some(fmp) if !fmp.is_active_on(date) => {
            let until = fmp.active_until.map(|d| d.to_string()).unwrap_or_default();
            errs.push(
                "fmp",
                format!(
                    "{} was closed after {until}, not active on {date}",
                    fmp.code
                ),
            );
        }
        Some(_) => {}
    }

    // The device clock.
    if let Some(now) = now
        && sub.observed_at > now + MAX_CLOCK_AHEAD
    {
        errs.push(
            "observed_at",
            format!(
                "{} is more than a day after the device clock ({}); check the date and the phone's clock",
                sub.observed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        );
    }

    // Places.
    for (path, place) in [
        ("departure.country", &sub.departure),
        ("next_destination.country", &sub.next_destination),
        ("final_destination.country", &sub.final_destination),
    ] {
        if country(&place.country).is_none() {
            errs.push(path, unknown_country_message(&place.country));
        }
        if let Some(name) = &place.place
            && name.len() > MAX_PLACE_BYTES
        {
            let field = path.replace(".country", ".place");
            errs.push(field, too_long("a place name", name.len(), MAX_PLACE_BYTES));
        }
    }

    // The group.
    let p = &sub.people;
    let total = p.total();
    if total == 0 {
        errs.push(
            "people",
            "adult_male+adult_female+minor_male+minor_female = 0; a group has at least one person",
        );
    }

    let v = &sub.vulnerable;
    let minors = p.minors();
    let under5 = u64::from(v.under5);
    if under5 > minors {
        errs.push(
            "vulnerable.under5",
            format!(
                "{under5} children under five but minor_male+minor_female = {minors}; \
                 children under five are counted among the minors"
            ),
        );
    }
    let females = u64::from(p.adult_female) + u64::from(p.minor_female);
    let pregnant = u64::from(v.pregnant);
    if pregnant > females {
        errs.push(
            "vulnerable.pregnant",
            format!(
                "{pregnant} pregnant women but adult_female+minor_female = {females}; \
                 pregnant women are counted among the women and girls"
            ),
        );
    }
    let others = [
        ("vulnerable.elderly", Some(v.elderly)),
        ("vulnerable.disability", Some(v.disability)),
        (
            "vulnerable.unaccompanied_children",
            v.unaccompanied_children,
        ),
    ];
    for (path, count) in others {
        if let Some(n) = count.map(u64::from)
            && n > total
        {
            errs.push(
                path,
                format!(
                    "{n} is more than the {total} {} in the group",
                    people_word(total)
                ),
            );
        }
    }

    // Nationalities.
    let by_nationality: u64 = sub.nationalities.values().map(|&n| u64::from(n)).sum();
    if by_nationality != total {
        errs.push(
            "nationalities",
            format!(
                "adult_male+adult_female+minor_male+minor_female = {total} \
                 but nationalities sum to {by_nationality}"
            ),
        );
    }
    if sub.nationalities.len() > MAX_NATIONALITIES {
        errs.push(
            "nationalities",
            format!(
                "{} countries; at most {MAX_NATIONALITIES} in one group, so that the record fits the smallest sync message (2048 bytes)",
                sub.nationalities.len()
            ),
        );
    }
    for code in sub.nationalities.keys() {
        if country(code).is_none() {
            errs.push(
                format!("nationalities.{code}"),
                unknown_country_message(code),
            );
        }
    }

    if sub.notes.len() > MAX_NOTES_BYTES {
        errs.push("notes", too_long("notes", sub.notes.len(), MAX_NOTES_BYTES));
    }

    if errs.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { errors: errs.0 })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use crate::form::{Form, example_submission};
    use crate::reference::Registry;
    use chrono::NaiveDate;

    fn now() -> DateTime<Utc> {
        "2020-06-14T10:00:00Z".parse().unwrap()
    }

    /// Validates a changed copy of the example submission.
    fn check(change: impl FnOnce(&mut Submission)) -> Result<(), ValidationError> {
        let mut sub = example_submission();
        change(&mut sub);
        validate(&sub, &Registry::mali_default(), &Forms::builtin(), now())
    }

    /// Asserts the change fails exactly one field, with this message.
    fn fails(change: impl FnOnce(&mut Submission), field: &str, message: &str) {
        let err = check(change).unwrap_err();
        assert_eq!(
            err.errors,
            vec![FieldError {
                field: field.into(),
                message: message.into()
            }],
            "{err}"
        );
    }

    fn passes(change: impl FnOnce(&mut Submission)) {
        if let Err(e) = check(change) {
            panic!("expected valid, got:\n{e}");
        }
    }

    #[test]
    fn text_and_nationalities_past_their_limits_are_refused_by_name() {
        passes(|s| s.notes = "é".repeat(MAX_NOTES_BYTES / 2));
        passes(|s| s.departure.place = Some("x".repeat(MAX_PLACE_BYTES)));
        fails(
            |s| s.notes = "é".repeat(MAX_NOTES_BYTES / 2 + 1),
            "notes",
            "802 bytes of text; at most 800 bytes (UTF-8) for notes, so that the record fits the smallest sync message (2048 bytes)",
        );
        fails(
            |s| s.final_destination.place = Some("x".repeat(MAX_PLACE_BYTES + 1)),
            "final_destination.place",
            "101 bytes of text; at most 100 bytes (UTF-8) for a place name, so that the record fits the smallest sync message (2048 bytes)",
        );
        let err = check(|s| {
            let total: u32 = s.nationalities.values().sum();
            s.nationalities.clear();
            for (i, c) in crate::reference::countries()
                .iter()
                .take(MAX_NATIONALITIES + 1)
                .enumerate()
            {
                s.nationalities
                    .insert(c.alpha3.clone(), if i == 0 { total } else { 0 });
            }
        })
        .unwrap_err();
        assert_eq!(err.fields(), vec!["nationalities"], "{err}");
        assert!(err.to_string().contains("at most 30"), "{err}");
    }

    #[test]
    fn example_is_valid() {
        passes(|_| {});
    }

    #[test]
    fn form_must_be_known() {
        passes(|s| s.form_version = 1);
        fails(
            |s| s.form = "dtm-fmp-census".into(),
            "form",
            "\"dtm-fmp-census\" is not a known form",
        );
        fails(
            |s| s.form_version = 2,
            "form_version",
            "dtm-fmp-flow has no version 2 (known versions: 1)",
        );
        // A later version is accepted once it is in the set of forms.
        let mut forms = Forms::builtin();
        let mut v2 = Form::dtm_fmp_flow_v1();
        v2.version = 2;
        forms.insert(v2).unwrap();
        let mut sub = example_submission();
        sub.form_version = 2;
        validate(&sub, &Registry::mali_default(), &forms, now()).unwrap();
    }

    #[test]
    fn group_has_at_least_one_person() {
        passes(|s| {
            s.people = crate::model::People {
                adult_male: 0,
                adult_female: 0,
                minor_male: 0,
                minor_female: 1,
            };
            s.nationalities = [("MLI".to_string(), 1)].into();
        });
        fails(
            |s| {
                s.people = crate::model::People::default();
                s.nationalities.clear();
            },
            "people",
            "adult_male+adult_female+minor_male+minor_female = 0; a group has at least one person",
        );
    }

    #[test]
    fn nationalities_sum_to_the_total() {
        passes(|s| {
            s.people.adult_male = 31;
            s.nationalities.insert("BFA".into(), 32);
        });
        fails(
            |s| {
                s.nationalities.insert("BFA".into(), 29);
            },
            "nationalities",
            "adult_male+adult_female+minor_male+minor_female = 33 but nationalities sum to 31",
        );
    }

    #[test]
    fn sums_do_not_overflow() {
        passes(|s| {
            s.people = crate::model::People {
                adult_male: u32::MAX,
                adult_female: u32::MAX,
                minor_male: u32::MAX,
                minor_female: u32::MAX,
            };
            s.nationalities = [
                ("BFA".to_string(), u32::MAX),
                ("MLI".to_string(), u32::MAX),
                ("NER".to_string(), u32::MAX),
                ("CIV".to_string(), u32::MAX),
            ]
            .into();
            s.vulnerable.elderly = u32::MAX;
        });
        fails(
            |s| {
                s.people.adult_male = u32::MAX;
                s.nationalities =
                    [("BFA".to_string(), u32::MAX), ("MLI".to_string(), u32::MAX)].into();
            },
            "nationalities",
            "adult_male+adult_female+minor_male+minor_female = 4294967298 \
             but nationalities sum to 8589934590",
        );
    }

    #[test]
    fn nationality_codes_are_known_countries() {
        passes(|s| {
            s.nationalities = [("CIV".to_string(), 11), ("GIN".to_string(), 22)].into();
        });
        fails(
            |s| {
                s.nationalities = [("BFA".to_string(), 31), ("QQQ".to_string(), 2)].into();
            },
            "nationalities.QQQ",
            "\"QQQ\" is not a known ISO 3166-1 alpha-3 country code (e.g. MLI, BFA, CIV)",
        );
        fails(
            |s| {
                s.nationalities = [("BFA".to_string(), 31), ("mli".to_string(), 2)].into();
            },
            "nationalities.mli",
            "\"mli\" is not a known ISO 3166-1 alpha-3 country code; write it MLI",
        );
    }

    #[test]
    fn under5_at_most_minors() {
        passes(|s| s.vulnerable.under5 = 1);
        fails(
            |s| s.vulnerable.under5 = 2,
            "vulnerable.under5",
            "2 children under five but minor_male+minor_female = 1; \
             children under five are counted among the minors",
        );
    }

    #[test]
    fn pregnant_at_most_women_and_girls() {
        passes(|s| s.vulnerable.pregnant = 2);
        passes(|s| {
            s.people.minor_female = 1;
            s.nationalities.insert("MLI".into(), 3);
            s.vulnerable.pregnant = 3;
        });
        fails(
            |s| s.vulnerable.pregnant = 3,
            "vulnerable.pregnant",
            "3 pregnant women but adult_female+minor_female = 2; \
             pregnant women are counted among the women and girls",
        );
    }

    #[test]
    fn vulnerabilities_at_most_total() {
        passes(|s| {
            s.vulnerable.elderly = 33;
            s.vulnerable.disability = 33;
            s.vulnerable.unaccompanied_children = Some(33);
        });
        fails(
            |s| s.vulnerable.elderly = 34,
            "vulnerable.elderly",
            "34 is more than the 33 people in the group",
        );
        fails(
            |s| s.vulnerable.disability = 40,
            "vulnerable.disability",
            "40 is more than the 33 people in the group",
        );
        fails(
            |s| s.vulnerable.unaccompanied_children = Some(34),
            "vulnerable.unaccompanied_children",
            "34 is more than the 33 people in the group",
        );
        // under5 and pregnant above the total fail their stricter rule, once.
        let err = check(|s| s.vulnerable.under5 = 50).unwrap_err();
        assert_eq!(err.fields(), ["vulnerable.under5"]);
        let err = check(|s| s.vulnerable.pregnant = 50).unwrap_err();
        assert_eq!(err.fields(), ["vulnerable.pregnant"]);
        fails(
            |s| {
                s.people = crate::model::People {
                    adult_male: 1,
                    ..Default::default()
                };
                s.nationalities = [("MLI".to_string(), 1)].into();
                s.vulnerable.elderly = 2;
            },
            "vulnerable.elderly",
            "2 is more than the 1 person in the group",
        );
    }

    #[test]
    fn place_countries_are_known() {
        passes(|s| {
            s.departure.country = "CIV".into();
            s.next_destination.country = "DZA".into();
            s.final_destination.country = "FRA".into();
        });
        fails(
            |s| s.departure.country = "BF".into(),
            "departure.country",
            "\"BF\" is not a known ISO 3166-1 alpha-3 country code (e.g. MLI, BFA, CIV)",
        );
        fails(
            |s| s.next_destination.country = "".into(),
            "next_destination.country",
            "\"\" is not a known ISO 3166-1 alpha-3 country code (e.g. MLI, BFA, CIV)",
        );
        fails(
            |s| s.final_destination.country = "Europe".into(),
            "final_destination.country",
            "\"Europe\" is not a known ISO 3166-1 alpha-3 country code (e.g. MLI, BFA, CIV)",
        );
    }

    #[test]
    fn fmp_is_known() {
        passes(|s| s.fmp = "ML-BKO".into());
        fails(
            |s| s.fmp = "ML-XYZ".into(),
            "fmp",
            "ML-XYZ is not a known FMP",
        );
        fails(
            |s| s.fmp = "ml-her".into(),
            "fmp",
            "ml-her is not a known FMP",
        );
    }

    #[test]
    fn fmp_is_active_on_the_observation_date() {
        let mut registry = Registry::mali_default();
        let her = registry
            .fmps
            .iter_mut()
            .find(|f| f.code == "ML-HER")
            .unwrap();
        her.active_since = NaiveDate::from_ymd_opt(2016, 1, 1).unwrap();
        let forms = Forms::builtin();
        let mut sub = example_submission();
        sub.observed_at = "2016-01-01T00:00:00Z".parse().unwrap();
        validate(&sub, &registry, &forms, now()).unwrap();

        sub.observed_at = "2015-03-02T09:30:00Z".parse().unwrap();
        let err = validate(&sub, &registry, &forms, now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fmp: ML-HER is active only since 2016-01-01, not on 2015-03-02"
        );

        // A closed FMP refuses observations after its last day.
        let her = registry
            .fmps
            .iter_mut()
            .find(|f| f.code == "ML-HER")
            .unwrap();
        her.active_until = NaiveDate::from_ymd_opt(2020, 6, 13);
        sub.observed_at = "2020-06-13T23:59:59Z".parse().unwrap();
        validate(&sub, &registry, &forms, now()).unwrap();
        sub.observed_at = "2020-06-14T00:00:00Z".parse().unwrap();
        let err = validate(&sub, &registry, &forms, now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fmp: ML-HER was closed after 2020-06-13, not active on 2020-06-14"
        );
    }

    #[test]
    fn observed_at_not_more_than_a_day_ahead_of_the_device_clock() {
        passes(|s| s.observed_at = now() + Duration::hours(24));
        passes(|s| s.observed_at = now() - Duration::days(30));
        fails(
            |s| s.observed_at = now() + Duration::hours(24) + Duration::seconds(1),
            "observed_at",
            "2020-06-15T10:00:01Z is more than a day after the device clock \
             (2020-06-14T10:00:00Z); check the date and the phone's clock",
        );
    }

    #[test]
    fn a_received_submission_is_checked_by_every_rule_but_the_local_clock() {
        let mut sub = crate::form::example_submission();
        sub.observed_at = now() + Duration::days(400);
        let (registry, forms) = (Registry::mali_default(), Forms::builtin());
        assert!(validate(&sub, &registry, &forms, now()).is_err());
        validate_received(&sub, &registry, &forms).unwrap();
        sub.people.adult_male += 1;
        sub.departure.country = "XXX".into();
        let err = validate_received(&sub, &registry, &forms).unwrap_err();
        assert_eq!(err.fields(), ["departure.country", "nationalities"]);
    }

    #[test]
    fn every_failing_field_is_reported_at_once() {
        let err = check(|s| {
            s.form_version = 9;
            s.fmp = "ML-XYZ".into();
            s.observed_at = now() + Duration::days(3);
            s.departure.country = "XXX".into();
            s.final_destination.country = "YYY".into();
            s.vulnerable.under5 = 5;
            s.vulnerable.pregnant = 7;
            s.vulnerable.elderly = 99;
            s.nationalities.insert("ZZZ".into(), 1);
        })
        .unwrap_err();
        assert_eq!(
            err.fields(),
            [
                "form_version",
                "fmp",
                "observed_at",
                "departure.country",
                "final_destination.country",
                "vulnerable.under5",
                "vulnerable.pregnant",
                "vulnerable.elderly",
                "nationalities",
                "nationalities.ZZZ",
            ]
        );
        let text = err.to_string();
        assert_eq!(text.lines().count(), 10);
        assert!(
            text.starts_with("form_version: dtm-fmp-flow has no version 9"),
            "{text}"
        );
        assert!(text.contains(
            "\nnationalities: adult_male+adult_female+minor_male+minor_female = 33 but nationalities sum to 34\n"
        ));
    }

    #[test]
    fn validation_error_serializes_its_fields() {
        let err = check(|s| s.fmp = "ML-XYZ".into()).unwrap_err();
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            serde_json::json!({"errors": [{"field": "fmp", "message": "ML-XYZ is not a known FMP"}]})
        );
    }
}
