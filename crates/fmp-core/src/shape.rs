//! The shape of a submission's JSON, checked before it is read into
//! [`Submission`](crate::Submission): every missing, unknown or mistyped
//! field and every value outside its list, all at once, each named by a
//! path a person reads (`people.adult_male`, `departure.country`).
//!
//! serde stops at the first problem; a field enumerator fixing a refused
//! line wants them all. The semantic rules (sums, known countries…) are in
//! `validate.rs`; this module knows only the structure.

use serde_json::{Map, Value};

/// What a field holds.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Count,
    Uuid,
    Time,
    Choice(&'static [&'static str]),
    Place,
    People,
    Vulnerable,
    Nationalities,
}

/// One field of an object: name, kind, required.
type Field = (&'static str, Kind, bool);

const DIRECTIONS: &[&str] = &["incoming", "outgoing"];
const TRANSPORTS: &[&str] = &[
    "bus",
    "truck",
    "car",
    "motorbike",
    "tricycle",
    "foot",
    "other",
];
const MOVEMENTS: &[&str] = &[
    "economic_long_term",
    "seasonal",
    "short_term_local",
    "tourism",
    "forced",
    "other",
];

const SUBMISSION: &[Field] = &[
    ("id", Kind::Uuid, false),
    ("form", Kind::Text, true),
    ("form_version", Kind::Count, true),
    ("fmp", Kind::Text, true),
    ("observed_at", Kind::Time, true),
    ("direction", Kind::Choice(DIRECTIONS), true),
    ("transport", Kind::Choice(TRANSPORTS), true),
    ("departure", Kind::Place, true),
    ("next_destination", Kind::Place, true),
    ("final_destination", Kind::Place, true),
    ("movement_type", Kind::Choice(MOVEMENTS), true),
    ("people", Kind::People, true),
    ("vulnerable", Kind::Vulnerable, true),
    ("nationalities", Kind::Nationalities, true),
    ("notes", Kind::Text, false),
];

const PLACE: &[Field] = &[("country", Kind::Text, true), ("place", Kind::Text, false)];

const PEOPLE: &[Field] = &[
    ("adult_male", Kind::Count, true),
    ("adult_female", Kind::Count, true),
    ("minor_male", Kind::Count, true),
    ("minor_female", Kind::Count, true),
];

const VULNERABLE: &[Field] = &[
    ("under5", Kind::Count, true),
    ("elderly", Kind::Count, true),
    ("disability", Kind::Count, true),
    ("pregnant", Kind::Count, true),
    ("unaccompanied_children", Kind::Count, false),
];

/// Every structural problem of `value` as a submission: (path, message),
/// in field order; empty if its shape is right.
pub fn problems(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => object(map, SUBMISSION, "", &mut out),
        other => out.push((
            String::new(),
            format!("a submission is a JSON object, not {}", describe(other)),
        )),
    }
    out
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn object(
    map: &Map<String, Value>,
    fields: &[Field],
    prefix: &str,
    out: &mut Vec<(String, String)>,
) {
    for (name, kind, required) in fields {
        let path = join(prefix, name);
        match map.get(*name) {
            None | Some(Value::Null) if *required => {
                out.push((path, "missing: this field is required".into()));
            }
            None | Some(Value::Null) => {}
            Some(v) => field(v, *kind, &path, out),
        }
    }
    for key in map.keys() {
        if !fields.iter().any(|(name, _, _)| name == key) {
            let known: Vec<&str> = fields.iter().map(|(n, _, _)| *n).collect();
            out.push((
                join(prefix, key),
                format!("unknown field (known here: {})", known.join(", ")),
            ));
        }
    }
}

fn field(v: &Value, kind: Kind, path: &str, out: &mut Vec<(String, String)>) {
    let mut wrong = |what: &str| {
        out.push((
            path.to_string(),
            format!("expected {what}, found {}", describe(v)),
        ));
    };
    match kind {
        Kind::Text => {
            if !v.is_string() {
                wrong("text");
            }
        }
        Kind::Count => {
            if v.as_u64().is_none_or(|n| n > u64::from(u32::MAX)) {
                wrong("a whole number from 0 to 4294967295");
            }
        }
        Kind::Uuid => match v.as_str() {
            Some(s) if uuid::Uuid::parse_str(s).is_ok() => {}
            Some(_) => wrong("a UUID such as 0190f5e2-7c1a-7b3e-9d4f-2a6b8c0d1e2f"),
            None => wrong("a UUID string"),
        },
        Kind::Time => match v.as_str() {
            Some(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {}
            _ => wrong("an RFC 3339 date-time such as 2020-06-14T09:30:00Z"),
        },
        Kind::Choice(values) => match v.as_str() {
            Some(s) if values.contains(&s) => {}
            Some(s) => out.push((
                path.to_string(),
                format!("{s:?} is not one of {}", values.join(", ")),
            )),
            None => wrong(&format!("one of {}", values.join(", "))),
        },
        Kind::Place | Kind::People | Kind::Vulnerable => match v.as_object() {
            Some(map) => {
                let fields = match kind {
                    Kind::Place => PLACE,
                    Kind::People => PEOPLE,
                    _ => VULNERABLE,
                };
                object(map, fields, path, out);
            }
            None => wrong("an object"),
        },
        Kind::Nationalities => match v.as_object() {
            Some(map) => {
                for (code, n) in map {
                    field(n, Kind::Count, &join(path, code), out);
                }
            }
            None => wrong("an object of country code to number of people"),
        },
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            format!("the text {short:?}")
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Every key given more than once in one object of the JSON text, as
/// (path, message); a JSON value keeps only the last one, so this reads the
/// text itself. Empty when the text is not JSON (the syntax error says so).
pub fn duplicate_keys(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let walk = Walk {
        path: String::new(),
        out: &mut out,
    };
    if serde::de::DeserializeSeed::deserialize(walk, &mut de).is_err() {
        return Vec::new();
    }
    out
}

/// Walks a JSON document, noting duplicated keys under their path.
struct Walk<'a> {
    path: String,
    out: &'a mut Vec<(String, String)>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let walk = Walk {
                path: format!("{}[{i}]", self.path),
                out: &mut *self.out,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            if !seen.insert(key) && !self.out.iter().any(|(p, _)| *p == path) {
                self.out.push((
                    path.clone(),
                    "duplicated key: given more than once in this object; give it once".into(),
                ));
            }
            map.next_value_seed(Walk {
                path,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }
}

// The lists above are the enums' own values: a test keeps them in step.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use crate::model::{Direction, MovementType, Transport};

    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| name(*v)).collect()
    }

    #[test]
    fn the_choice_lists_are_the_enums() {
        assert_eq!(names(Direction::ALL, Direction::as_str), DIRECTIONS);
        assert_eq!(names(Transport::ALL, Transport::as_str), TRANSPORTS);
        assert_eq!(names(MovementType::ALL, MovementType::as_str), MOVEMENTS);
    }

    #[test]
    fn the_example_has_no_problem() {
        let v = crate::form::example_submission().to_value();
        assert_eq!(problems(&v), Vec::<(String, String)>::new());
    }

    #[test]
    fn every_structural_problem_is_named_with_its_path() {
        let mut v = crate::form::example_submission().to_value();
        let o = v.as_object_mut().unwrap();
        o.remove("form_version");
        o.insert("colour".into(), "red".into());
        o.insert("direction".into(), "sideways".into());
        o.insert("transport".into(), "camel".into());
        o["people"]["adult_male"] = "thirty".into();
        o["people"].as_object_mut().unwrap().remove("minor_female");
        o["departure"]["country"] = 12.into();
        o["nationalities"]["BFA"] = (-3).into();
        let found = problems(&v);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "form_version",
                "direction",
                "transport",
                "departure.country",
                "people.adult_male",
                "people.minor_female",
                "nationalities.BFA",
                "colour",
            ]
        );
        assert!(
            found[1]
                .1
                .contains("\"sideways\" is not one of incoming, outgoing")
        );
        assert!(found[0].1.contains("missing"));
        assert!(found[7].1.contains("unknown field"));
    }

    #[test]
    fn a_document_that_is_not_an_object_is_named_as_such() {
        let found = problems(&serde_json::json!([1, 2]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "");
        assert!(found[0].1.contains("JSON object, not a list"));
    }

    #[test]
    fn duplicated_keys_are_found_at_any_depth_once_each() {
        let text = r#"{"a":1,"a":2,"a":3,"b":[{"c":1,"c":2}],"d":{"e":{"f":0,"f":1}}}"#;
        let found: Vec<String> = duplicate_keys(text).into_iter().map(|(p, _)| p).collect();
        assert_eq!(found, ["a", "b[0].c", "d.e.f"]);
        assert!(duplicate_keys(r#"{"a":1,"b":{"a":1}}"#).is_empty());
        assert!(duplicate_keys("{not json").is_empty());
    }
}
