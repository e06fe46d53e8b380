//! Versioned questionnaire definitions.
//!
//! A [`Form`] lists the fields an enumerator fills, by field path of the
//! canonical submission JSON (`people.adult_male`), with their kind, whether
//! they are required and their English and French labels. Forms are data: a
//! form is identified by id and version, a version never changes once
//! published, and every submission records the form id and version it was
//! filled with, so old versions stay readable. [`Forms::builtin`] holds
//! `dtm-fmp-flow` version 1, the questionnaire of DESIGN.md.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::model::{Direction, MovementType, People, Place, Submission, Transport, Vulnerable};
use crate::reference::{Lang, direction_label, movement_type_label, transport_label};

/// Id of the FMP flow questionnaire.
pub const FLOW_FORM_ID: &str = "dtm-fmp-flow";

/// Top-level submission fields that identify the record and its form rather
/// than answer a question; no form describes them.
pub const ENVELOPE_FIELDS: &[&str] = &["id", "form", "form_version"];

/// One allowed value of an enumerated field, with its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumOption {
    /// The value stored in the submission, e.g. `seasonal`.
    pub value: String,
    /// English label.
    pub label_en: String,
    /// French label.
    pub label_fr: String,
}

/// What a field holds, which decides how it is entered and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    /// A count of people (non-negative integer).
    Integer,
    /// Free text.
    Text,
    /// An ISO 3166-1 alpha-3 country code.
    Country,
    /// One value of a closed list.
    Enum {
        /// The allowed values.
        options: Vec<EnumOption>,
    },
    /// A date and time in UTC (RFC 3339).
    Datetime,
    /// An FMP code of the registry.
    Fmp,
    /// Counts of people by country (alpha-3 code → count).
    CountryCounts,
}

/// One question of a form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Field path in the canonical submission JSON, e.g. `people.adult_male`.
    pub path: String,
    /// What the field holds.
    pub kind: FieldKind,
    /// True if a submission must carry the field.
    pub required: bool,
    /// English label.
    pub label_en: String,
    /// French label.
    pub label_fr: String,
}

impl FieldDef {
    /// The field's label in `lang`.
    pub fn label(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.label_en,
            Lang::Fr => &self.label_fr,
        }
    }
}

/// A versioned questionnaire definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    /// Form id, e.g. `dtm-fmp-flow`.
    pub id: String,
    /// Version, from 1; a published version never changes.
    pub version: u32,
    /// English title.
    pub title_en: String,
    /// French title.
    pub title_fr: String,
    /// The questions, in the order they are asked.
    pub fields: Vec<FieldDef>,
}

/// Why a form or a set of forms is refused.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// The JSON could not be read as a form.
    #[error("the form is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A different form was already published under the same id and version.
    #[error(
        "form {id} version {version} already exists with different content; publish a new version instead"
    )]
    Conflict {
        /// Form id.
        id: String,
        /// Form version.
        version: u32,
    },
    /// Two fields of one form share a path.
    #[error("form {id} version {version} describes field {path} twice")]
    DuplicateField {
        /// Form id.
        id: String,
        /// Form version.
        version: u32,
        /// The repeated path.
        path: String,
    },
}

fn field(path: &str, kind: FieldKind, required: bool, en: &str, fr: &str) -> FieldDef {
    FieldDef {
        path: path.to_string(),
        kind,
        required,
        label_en: en.to_string(),
        label_fr: fr.to_string(),
    }
}

fn options<T: Copy>(
    all: &[T],
    code: fn(T) -> &'static str,
    label: fn(T, Lang) -> &'static str,
) -> FieldKind {
    FieldKind::Enum {
        options: all
            .iter()
            .map(|&v| EnumOption {
                value: code(v).to_string(),
                label_en: label(v, Lang::En).to_string(),
                label_fr: label(v, Lang::Fr).to_string(),
            })
            .collect(),
    }
}

impl Form {
    /// `dtm-fmp-flow` version 1: the fields of DESIGN.md's canonical submission.
    pub fn dtm_fmp_flow_v1() -> Form {
        use FieldKind::{Country, CountryCounts, Datetime, Fmp, Integer, Text};
        Form {
            id: FLOW_FORM_ID.to_string(),
            version: 1,
            title_en: "Flow monitoring: observed group".to_string(),
            title_fr: "Suivi des flux : groupe observé".to_string(),
            fields: vec![
                field(
                    "fmp",
                    Fmp,
                    true,
                    "Flow Monitoring Point",
                    "Point de suivi des flux",
                ),
                field(
                    "observed_at",
                    Datetime,
                    true,
                    "Date and time of observation",
                    "Date et heure de l'observation",
                ),
                field(
                    "direction",
                    options(Direction::ALL, Direction::as_str, direction_label),
                    true,
                    "Direction",
                    "Sens du flux",
                ),
                field(
                    "transport",
                    options(Transport::ALL, Transport::as_str, transport_label),
                    true,
                    "Means of transport",
                    "Moyen de transport",
                ),
                field(
                    "departure.country",
                    Country,
                    true,
                    "Country of departure",
                    "Pays de départ",
                ),
                field(
                    "departure.place",
                    Text,
                    false,
                    "Town of departure",
                    "Localité de départ",
                ),
                field(
                    "next_destination.country",
                    Country,
                    true,
                    "Country of next destination",
                    "Pays de la prochaine destination",
                ),
                field(
                    "next_destination.place",
                    Text,
                    false,
                    "Town of next destination",
                    "Localité de la prochaine destination",
                ),
                field(
                    "final_destination.country",
                    Country,
                    true,
                    "Country of intended final destination",
                    "Pays de destination finale prévue",
                ),
                field(
                    "final_destination.place",
                    Text,
                    false,
                    "Town of intended final destination",
                    "Localité de destination finale prévue",
                ),
                field(
                    "movement_type",
                    options(MovementType::ALL, MovementType::as_str, movement_type_label),
                    true,
                    "Type of movement",
                    "Type de mouvement",
                ),
                field(
                    "people.adult_male",
                    Integer,
                    true,
                    "Adult men",
                    "Hommes adultes",
                ),
                field(
                    "people.adult_female",
                    Integer,
                    true,
                    "Adult women",
                    "Femmes adultes",
                ),
                field(
                    "people.minor_male",
                    Integer,
                    true,
                    "Boys (under 18)",
                    "Garçons (moins de 18 ans)",
                ),
                field(
                    "people.minor_female",
                    Integer,
                    true,
                    "Girls (under 18)",
                    "Filles (moins de 18 ans)",
                ),
                field(
                    "vulnerable.under5",
                    Integer,
                    true,
                    "Children under 5 years old",
                    "Enfants de moins de 5 ans",
                ),
                field(
                    "vulnerable.elderly",
                    Integer,
                    true,
                    "Elderly persons",
                    "Personnes âgées",
                ),
                field(
                    "vulnerable.disability",
                    Integer,
                    true,
                    "Persons living with a mental or physical disability",
                    "Personnes vivant avec un handicap mental ou physique",
                ),
                field(
                    "vulnerable.pregnant",
                    Integer,
                    true,
                    "Pregnant women",
                    "Femmes enceintes",
                ),
                field(
                    "vulnerable.unaccompanied_children",
                    Integer,
                    false,
                    "Unaccompanied children",
                    "Enfants non accompagnés",
                ),
                field(
                    "nationalities",
                    CountryCounts,
                    true,
                    "Number of people by nationality",
                    "Nombre de personnes par nationalité",
                ),
                field("notes", Text, false, "Notes", "Remarques"),
            ],
        }
    }

    /// Reads a form from JSON and checks it.
    pub fn from_json(text: &str) -> Result<Form, FormError> {
        let form: Form = serde_json::from_str(text)?;
        form.check()?;
        Ok(form)
    }

    /// The form as pretty JSON, the form HQ edits and ships.
    pub fn to_json(&self) -> String {
        // Plain data with string keys always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the form itself: no field path described twice.
    pub fn check(&self) -> Result<(), FormError> {
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.fields {
            if !seen.insert(f.path.as_str()) {
                return Err(FormError::DuplicateField {
                    id: self.id.clone(),
                    version: self.version,
                    path: f.path.clone(),
                });
            }
        }
        Ok(())
    }

    /// The field with this path, if the form describes it.
    pub fn field(&self, path: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// The form's title in `lang`.
    pub fn title(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.title_en,
            Lang::Fr => &self.title_fr,
        }
    }
}

/// A set of forms, by id and version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forms {
    forms: BTreeMap<(String, u32), Form>,
}

impl Forms {
    /// An empty set.
    pub fn new() -> Forms {
        Forms::default()
    }

    /// The forms that ship with fmp: `dtm-fmp-flow` version 1.
    pub fn builtin() -> Forms {
        let form = Form::dtm_fmp_flow_v1();
        let mut forms = BTreeMap::new();
        forms.insert((form.id.clone(), form.version), form);
        Forms { forms }
    }

    /// Adds a form; adding the same form again is a no-op, and a different
    /// form under an existing id and version is refused.
    pub fn insert(&mut self, form: Form) -> Result<(), FormError> {
        form.check()?;
        let key = (form.id.clone(), form.version);
        match self.forms.get(&key) {
            Some(existing) if *existing == form => Ok(()),
            Some(_) => Err(FormError::Conflict {
                id: key.0,
                version: key.1,
            }),
            None => {
                self.forms.insert(key, form);
                Ok(())
            }
        }
    }

    /// The form with this id and version.
    pub fn get(&self, id: &str, version: u32) -> Option<&Form> {
        self.forms.get(&(id.to_string(), version))
    }

    /// The highest version of the form with this id.
    pub fn latest(&self, id: &str) -> Option<&Form> {
        self.forms
            .range((id.to_string(), 0)..=(id.to_string(), u32::MAX))
            .next_back()
            .map(|(_, f)| f)
    }

    /// Every form, ordered by id then version.
    pub fn iter(&self) -> impl Iterator<Item = &Form> {
        self.forms.values()
    }
}

/// An example valid submission for form `dtm-fmp-flow` v1: the JSON of DESIGN.md
/// (a bus of 33 people from Bobo-Dioulasso at Heremakono on 2020-06-14).
pub fn example_submission() -> Submission {
    Submission {
        id: None,
        form: FLOW_FORM_ID.to_string(),
        form_version: 1,
        fmp: "ML-HER".to_string(),
        // 2020-06-14T09:30:00Z
        observed_at: DateTime::from_timestamp(1_592_127_000, 0).unwrap_or_default(),
        direction: Direction::Incoming,
        transport: Transport::Bus,
        departure: Place {
            country: "BFA".to_string(),
            place: Some("Bobo-Dioulasso".to_string()),
        },
        next_destination: Place {
            country: "MLI".to_string(),
            place: Some("Sikasso".to_string()),
        },
        final_destination: Place {
            country: "MLI".to_string(),
            place: None,
        },
        movement_type: MovementType::Seasonal,
        people: People {
            adult_male: 30,
            adult_female: 2,
            minor_male: 1,
            minor_female: 0,
        },
        vulnerable: Vulnerable {
            under5: 0,
            elderly: 0,
            disability: 0,
            pregnant: 0,
            unaccompanied_children: None,
        },
        nationalities: BTreeMap::from([("BFA".to_string(), 31), ("MLI".to_string(), 2)]),
        notes: String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const DESIGN_JSON: &str = r#"{
      "form": "dtm-fmp-flow", "form_version": 1,
      "fmp": "ML-HER",
      "observed_at": "2020-06-14T09:30:00Z",
      "direction": "incoming",
      "transport": "bus",
      "departure": {"country": "BFA", "place": "Bobo-Dioulasso"},
      "next_destination": {"country": "MLI", "place": "Sikasso"},
      "final_destination": {"country": "MLI"},
      "movement_type": "seasonal",
      "people": {"adult_male": 30, "adult_female": 2, "minor_male": 1, "minor_female": 0},
      "vulnerable": {"under5": 0, "elderly": 0, "disability": 0, "pregnant": 0},
      "nationalities": {"BFA": 31, "MLI": 2},
      "notes": ""
    }"#;

    #[test]
    fn example_submission_is_the_design_json() {
        assert_eq!(
            example_submission(),
            Submission::from_json(DESIGN_JSON).unwrap()
        );
        assert_eq!(
            example_submission().observed_at.to_rfc3339(),
            "2020-06-14T09:30:00+00:00"
        );
    }

    /// Field paths of a submission's JSON, stopping at map-valued fields.
    fn leaf_paths(
        value: &serde_json::Value,
        prefix: &str,
        form: &Form,
        out: &mut BTreeSet<String>,
    ) {
        let is_map_field = form
            .field(prefix)
            .is_some_and(|f| f.kind == FieldKind::CountryCounts);
        match value {
            serde_json::Value::Object(map) if !is_map_field => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_paths(v, &path, form, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }

    #[test]
    fn flow_form_describes_exactly_the_submission_fields() {
        let form = Form::dtm_fmp_flow_v1();
        // Every optional field set, so that every path appears.
        let mut sub = example_submission();
        sub.id = Some(uuid::Uuid::now_v7());
        sub.final_destination.place = Some("Bamako".into());
        sub.vulnerable.unaccompanied_children = Some(0);
        sub.notes = "bus".into();
        let mut paths = BTreeSet::new();
        leaf_paths(&sub.to_value(), "", &form, &mut paths);
        let described: BTreeSet<String> = form
            .fields
            .iter()
            .map(|f| f.path.clone())
            .chain(ENVELOPE_FIELDS.iter().map(|s| s.to_string()))
            .collect();
        assert_eq!(paths, described);
        assert_eq!(described.len(), form.fields.len() + ENVELOPE_FIELDS.len());

        // Required fields are exactly those a minimal submission must carry.
        let minimal = Submission::from_json(DESIGN_JSON).unwrap();
        let mut min_paths = BTreeSet::new();
        leaf_paths(&minimal.to_value(), "", &form, &mut min_paths);
        for f in &form.fields {
            if f.required {
                assert!(min_paths.contains(&f.path), "{} is required", f.path);
            }
        }
        for optional in [
            "final_destination.place",
            "vulnerable.unaccompanied_children",
        ] {
            assert!(!form.field(optional).unwrap().required);
        }
    }

    #[test]
    fn enum_options_match_the_model() {
        let form = Form::dtm_fmp_flow_v1();
        let values = |path: &str| match &form.field(path).unwrap().kind {
            FieldKind::Enum { options } => {
                options.iter().map(|o| o.value.clone()).collect::<Vec<_>>()
            }
            other => panic!("{path} is {other:?}"),
        };
        assert_eq!(
            values("direction"),
            Direction::ALL
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            values("transport"),
            Transport::ALL
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            values("movement_type"),
            MovementType::ALL
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
        );
        for f in &form.fields {
            assert!(
                !f.label(Lang::En).is_empty() && !f.label(Lang::Fr).is_empty(),
                "{}",
                f.path
            );
        }
        assert_eq!(form.title(Lang::Fr), "Suivi des flux : groupe observé");
    }

    #[test]
    fn forms_by_id_and_version() {
        let mut forms = Forms::builtin();
        assert_eq!(forms.get(FLOW_FORM_ID, 1), Some(&Form::dtm_fmp_flow_v1()));
        assert!(forms.get(FLOW_FORM_ID, 2).is_none());
        assert!(forms.get("other", 1).is_none());
        assert!(Forms::new().get(FLOW_FORM_ID, 1).is_none());

        // Same form again: no-op. Changed content under the same version: refused.
        forms.insert(Form::dtm_fmp_flow_v1()).unwrap();
        let mut changed = Form::dtm_fmp_flow_v1();
        changed.fields.pop();
        let err = forms.insert(changed.clone()).unwrap_err();
        assert!(matches!(err, FormError::Conflict { version: 1, .. }));

        // A new version is added; the old one stays readable.
        changed.version = 2;
        forms.insert(changed).unwrap();
        assert_eq!(forms.latest(FLOW_FORM_ID).unwrap().version, 2);
        assert_eq!(forms.get(FLOW_FORM_ID, 1).unwrap().version, 1);
        assert_eq!(forms.iter().count(), 2);
        assert!(forms.latest("dtm").is_none());
    }

    #[test]
    fn form_json_round_trips_and_is_checked() {
        let form = Form::dtm_fmp_flow_v1();
        assert_eq!(Form::from_json(&form.to_json()).unwrap(), form);
        let mut dup = form.clone();
        dup.fields.push(dup.fields[0].clone());
        let err = Form::from_json(&dup.to_json()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "form dtm-fmp-flow version 1 describes field fmp twice"
        );
        assert!(matches!(Form::from_json("[]"), Err(FormError::Json(_))));
    }

    #[test]
    fn flow_form_json_is_stable() {
        insta::assert_snapshot!(Form::dtm_fmp_flow_v1().to_json());
    }
}
