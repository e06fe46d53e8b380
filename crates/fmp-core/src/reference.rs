//! Reference data: the FMP registry and the code lists. Data, not code: HQ
//! edits it and it reaches devices by sync; Mali's nine FMPs ship as the default.
//!
//! - [`Registry`]: the Flow Monitoring Points, loaded from JSON
//!   ([`Registry::from_json`]) or the built-in [`Registry::mali_default`], and
//!   checked as a whole ([`Registry::check`]) before it is used.
//! - [`countries`] / [`country`]: every ISO 3166-1 alpha-3 country with its
//!   English and French name, built once from the `keshvar` crate.
//! - [`direction_label`], [`transport_label`], [`movement_type_label`]: the
//!   English and French labels of the closed code lists, for pick lists.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::{Direction, MovementType, Transport};

/// Kind of FMP: transit FMPs are left out of national totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FmpKind {
    /// A border post: counts towards national totals.
    EntryExit,
    /// A transit hub (bus station, crossroads town).
    Transit,
}

impl FmpKind {
    /// The snake_case name used in JSON and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            FmpKind::EntryExit => "entry_exit",
            FmpKind::Transit => "transit",
        }
    }
}

/// One Flow Monitoring Point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fmp {
    /// Code, e.g. `ML-HER`.
    pub code: String,
    /// Name, e.g. `Heremakono`.
    pub name: String,
    /// First-level administrative region, e.g. `Sikasso`.
    pub admin1: String,
    /// ISO 3166-1 alpha-3 country code.
    pub country: String,
    /// Entry/exit or transit.
    pub kind: FmpKind,
    /// Latitude in degrees (WGS 84).
    pub lat: f64,
    /// Longitude in degrees (WGS 84).
    pub lon: f64,
    /// First day data may be recorded there.
    pub active_since: NaiveDate,
    /// Last day data may be recorded there, once the FMP is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<NaiveDate>,
    /// Alpha-3 code of the neighbouring country, for a border post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub border_with: Option<String>,
}

impl Fmp {
    /// True if data may be recorded at this FMP on `date`.
    pub fn is_active_on(&self, date: NaiveDate) -> bool {
        date >= self.active_since && self.active_until.is_none_or(|until| date <= until)
    }

    /// True if the FMP's flows count towards national totals (entry/exit points only).
    pub fn counts_in_national_totals(&self) -> bool {
        self.kind == FmpKind::EntryExit
    }
}

/// Why a registry is refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The JSON could not be read as a registry.
    #[error("the FMP registry is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An FMP has an empty code or name.
    #[error("FMP number {index} in the registry has an empty {field}")]
    Empty {
        /// Position of the FMP in the list (from 1).
        index: usize,
        /// `code` or `name`.
        field: &'static str,
    },
    /// Two FMPs share a code.
    #[error("FMP code {0} appears more than once in the registry")]
    DuplicateCode(String),
    /// An FMP's country (or neighbouring country) is not a known alpha-3 code.
    #[error("FMP {code}: {field} {country} is not a known ISO 3166-1 alpha-3 country code")]
    UnknownCountry {
        /// The FMP's code.
        code: String,
        /// `country` or `border_with`.
        field: &'static str,
        /// The unknown value.
        country: String,
    },
    /// An FMP's coordinates are outside the globe.
    #[error("FMP {code}: coordinates {lat}, {lon} are not a valid latitude and longitude")]
    BadCoordinates {
        /// The FMP's code.
        code: String,
        /// Latitude given.
        lat: f64,
        /// Longitude given.
        lon: f64,
    },
    /// An FMP closes before it opens.
    #[error("FMP {code}: active_until {until} is before active_since {since}")]
    BadDates {
        /// The FMP's code.
        code: String,
        /// First active day.
        since: NaiveDate,
        /// Last active day.
        until: NaiveDate,
    },
}

/// The FMP registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Every FMP, active or not.
    pub fmps: Vec<Fmp>,
}

/// Builds one entry of the built-in registry.
fn mali_fmp(
    code: &str,
    name: &str,
    admin1: &str,
    kind: FmpKind,
    lat: f64,
    lon: f64,
    border_with: Option<&str>,
) -> Fmp {
    Fmp {
        code: code.to_string(),
        name: name.to_string(),
        admin1: admin1.to_string(),
        country: "MLI".to_string(),
        kind,
        lat,
        lon,
        active_since: MALI_ACTIVE_SINCE,
        active_until: None,
        border_with: border_with.map(str::to_string),
    }
}

/// Mali's FMPs were installed progressively from July 2016 (seed report, p. 1).
const MALI_ACTIVE_SINCE: NaiveDate = match NaiveDate::from_ymd_opt(2016, 7, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

impl Registry {
    /// Mali's nine FMPs, as described in the June 2020 Mali FMP report.
    ///
    /// Coordinates are approximate (town or border-post level).
    pub fn mali_default() -> Registry {
        use FmpKind::{EntryExit, Transit};
        Registry {
            fmps: vec![
                mali_fmp("ML-WAB", "Wabaria", "Gao", Transit, 16.255, -0.035, None),
                mali_fmp(
                    "ML-PKI",
                    "Place Kidal",
                    "Gao",
                    EntryExit,
                    16.285,
                    -0.040,
                    None,
                ),
                mali_fmp(
                    "ML-TBK",
                    "Timbuktu",
                    "Tombouctou",
                    EntryExit,
                    16.773,
                    -3.007,
                    None,
                ),
                mali_fmp("ML-MNK", "Menaka", "Menaka", EntryExit, 15.918, 2.402, None),
                mali_fmp("ML-SEV", "Sevare", "Mopti", Transit, 14.533, -4.096, None),
                mali_fmp(
                    "ML-GOG",
                    "Gogui",
                    "Kayes",
                    EntryExit,
                    15.545,
                    -9.358,
                    Some("MRT"),
                ),
                mali_fmp(
                    "ML-BEN",
                    "Benena",
                    "Segou",
                    EntryExit,
                    12.985,
                    -4.380,
                    Some("BFA"),
                ),
                mali_fmp(
                    "ML-HER",
                    "Heremakono",
                    "Sikasso",
                    EntryExit,
                    11.050,
                    -5.345,
                    Some("BFA"),
                ),
                mali_fmp("ML-BKO", "Bamako", "Bamako", Transit, 12.639, -8.003, None),
            ],
        }
    }

    /// Reads a registry from JSON (`{"fmps": [...]}`) and checks it.
    pub fn from_json(text: &str) -> Result<Registry, RegistryError> {
        let registry: Registry = serde_json::from_str(text)?;
        registry.check()?;
        Ok(registry)
    }

    /// The registry as pretty JSON, the form HQ edits and ships.
    pub fn to_json(&self) -> String {
        // Plain data with string keys always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the registry as a whole: non-empty and unique codes, known countries,
    /// coordinates on the globe, dates in order. Returns the first problem found.
    pub fn check(&self) -> Result<(), RegistryError> {
        let mut seen = BTreeSet::new();
        for (i, fmp) in self.fmps.iter().enumerate() {
            let index = i + 1;
            if fmp.code.trim().is_empty() {
                return Err(RegistryError::Empty {
                    index,
                    field: "code",
                });
            }
            if fmp.name.trim().is_empty() {
                return Err(RegistryError::Empty {
                    index,
                    field: "name",
                });
            }
            if !seen.insert(fmp.code.as_str()) {
                return Err(RegistryError::DuplicateCode(fmp.code.clone()));
            }
            let countries = std::iter::once(("country", &fmp.country))
                .chain(fmp.border_with.iter().map(|c| ("border_with", c)));
            for (field, c) in countries {
                if country(c).is_none() {
                    return Err(RegistryError::UnknownCountry {
                        code: fmp.code.clone(),
                        field,
                        country: c.clone(),
                    });
                }
            }
            let lat_ok = fmp.lat.is_finite() && (-90.0..=90.0).contains(&fmp.lat);
            let lon_ok = fmp.lon.is_finite() && (-180.0..=180.0).contains(&fmp.lon);
            if !(lat_ok && lon_ok) {
                return Err(RegistryError::BadCoordinates {
                    code: fmp.code.clone(),
                    lat: fmp.lat,
                    lon: fmp.lon,
                });
            }
            if let Some(until) = fmp.active_until
                && until < fmp.active_since
            {
                return Err(RegistryError::BadDates {
                    code: fmp.code.clone(),
                    since: fmp.active_since,
                    until,
                });
            }
        }
        Ok(())
    }

    /// Looks an FMP up by code.
    pub fn get(&self, code: &str) -> Option<&Fmp> {
        self.fmps.iter().find(|f| f.code == code)
    }

    /// The FMPs active on `date`.
    pub fn active_on(&self, date: NaiveDate) -> impl Iterator<Item = &Fmp> {
        self.fmps.iter().filter(move |f| f.is_active_on(date))
    }

    /// Codes of the entry/exit FMPs, the only ones counted in national totals.
    pub fn entry_exit_codes(&self) -> Vec<&str> {
        self.codes_of_kind(FmpKind::EntryExit)
    }

    /// Codes of the transit FMPs, left out of national totals.
    pub fn transit_codes(&self) -> Vec<&str> {
        self.codes_of_kind(FmpKind::Transit)
    }

    /// Codes of the FMPs of one kind, in registry order.
    pub fn codes_of_kind(&self, kind: FmpKind) -> Vec<&str> {
        self.fmps
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.code.as_str())
            .collect()
    }

    /// The FMPs of one country (alpha-3), in registry order.
    pub fn in_country<'a>(&'a self, alpha3: &'a str) -> impl Iterator<Item = &'a Fmp> {
        self.fmps.iter().filter(move |f| f.country == alpha3)
    }
}

/// A language of the labels: field teams in West Africa work in French.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

/// One country of ISO 3166-1, with what the forms and the report need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Country {
    /// ISO 3166-1 alpha-3 code, e.g. `MLI`.
    pub alpha3: String,
    /// ISO 3166-1 alpha-2 code, e.g. `ML`.
    pub alpha2: String,
    /// Common English name, e.g. `Côte d'Ivoire`.
    pub name_en: &'static str,
    /// Common French name, e.g. `Côte d'Ivoire`.
    pub name_fr: &'static str,
    /// Continent, in lower case: africa, antarctica, asia, australia, europe,
    /// north-america, south-america.
    pub continent: &'static str,
    /// In Europe for the report's "final intended destination in Europe": the UN
    /// geoscheme region Europe, plus Cyprus (an EU member the geoscheme puts in Asia).
    pub in_europe: bool,
}

impl Country {
    /// The country's name in `lang`.
    pub fn name(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.name_en,
            Lang::Fr => self.name_fr,
        }
    }
}

fn continent_name(c: keshvar::Continent) -> &'static str {
    use keshvar::Continent as C;
    match c {
        C::Africa => "africa",
        C::Antarctica => "antarctica",
        C::Asia => "asia",
        C::Australia => "australia",
        C::Europe => "europe",
        C::NorthAmerica => "north-america",
        C::SouthAmerica => "south-america",
    }
}

static COUNTRIES: LazyLock<Vec<Country>> = LazyLock::new(|| {
    let mut list: Vec<Country> = keshvar::CountryIterator::new()
        .map(|c| {
            let tr = c.translations();
            let name_en = tr.get("en").copied().unwrap_or(c.iso_short_name());
            let name_fr = tr.get("fr").copied().unwrap_or(name_en);
            Country {
                alpha3: c.alpha3().to_string(),
                alpha2: c.alpha2().to_string(),
                name_en,
                name_fr,
                continent: continent_name(c.continent()),
                in_europe: c.maybe_region() == Some(keshvar::Region::Europe)
                    || c.alpha3() == keshvar::Alpha3::CYP,
            }
        })
        .collect();
    list.sort_by(|a, b| a.alpha3.cmp(&b.alpha3));
    list
});

/// Every ISO 3166-1 country, sorted by alpha-3 code (built once).
pub fn countries() -> &'static [Country] {
    &COUNTRIES
}

/// The country with this alpha-3 code (exact, upper case), if any.
pub fn country(alpha3: &str) -> Option<&'static Country> {
    let list = countries();
    list.binary_search_by(|c| c.alpha3.as_str().cmp(alpha3))
        .ok()
        .and_then(|i| list.get(i))
}

/// The English or French label of a direction.
pub fn direction_label(d: Direction, lang: Lang) -> &'static str {
    match (d, lang) {
        (Direction::Incoming, Lang::En) => "Incoming",
        (Direction::Incoming, Lang::Fr) => "Entrant",
        (Direction::Outgoing, Lang::En) => "Outgoing",
        (Direction::Outgoing, Lang::Fr) => "Sortant",
    }
}

/// The English or French label of a means of transport.
pub fn transport_label(t: Transport, lang: Lang) -> &'static str {
    match (t, lang) {
        (Transport::Bus, Lang::En) => "Bus",
        (Transport::Bus, Lang::Fr) => "Bus",
        (Transport::Truck, Lang::En) => "Truck",
        (Transport::Truck, Lang::Fr) => "Camion",
        (Transport::Car, Lang::En) => "Car (private car or taxi)",
        (Transport::Car, Lang::Fr) => "Voiture (particulière ou taxi)",
        (Transport::Motorbike, Lang::En) => "Motorbike",
        (Transport::Motorbike, Lang::Fr) => "Moto",
        (Transport::Tricycle, Lang::En) => "Tricycle",
        (Transport::Tricycle, Lang::Fr) => "Tricycle",
        (Transport::Foot, Lang::En) => "On foot",
        (Transport::Foot, Lang::Fr) => "À pied",
        (Transport::Other, Lang::En) => "Other",
        (Transport::Other, Lang::Fr) => "Autre",
    }
}

/// The English or French label of a movement type.
pub fn movement_type_label(m: MovementType, lang: Lang) -> &'static str {
    match (m, lang) {
        (MovementType::EconomicLongTerm, Lang::En) => "Economic migration (more than 6 months)",
        (MovementType::EconomicLongTerm, Lang::Fr) => "Migration économique (plus de 6 mois)",
        (MovementType::Seasonal, Lang::En) => "Seasonal migration",
        (MovementType::Seasonal, Lang::Fr) => "Migration saisonnière",
        (MovementType::ShortTermLocal, Lang::En) => "Short-term local movement",
        (MovementType::ShortTermLocal, Lang::Fr) => "Mouvement local de courte durée",
        (MovementType::Tourism, Lang::En) => "Tourism",
        (MovementType::Tourism, Lang::Fr) => "Tourisme",
        (MovementType::Forced, Lang::En) => "Forced movement (conflict, disaster)",
        (MovementType::Forced, Lang::Fr) => "Déplacement forcé (conflit, catastrophe)",
        (MovementType::Other, Lang::En) => "Other",
        (MovementType::Other, Lang::Fr) => "Autre",
    }
}

/// The English or French label of an FMP kind.
pub fn fmp_kind_label(k: FmpKind, lang: Lang) -> &'static str {
    match (k, lang) {
        (FmpKind::EntryExit, Lang::En) => "Entry/exit point",
        (FmpKind::EntryExit, Lang::Fr) => "Point d'entrée/sortie",
        (FmpKind::Transit, Lang::En) => "Transit point",
        (FmpKind::Transit, Lang::Fr) => "Point de transit",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn mali_default_has_the_nine_fmps_of_the_seed() {
        let r = Registry::mali_default();
        r.check().unwrap();
        let codes: Vec<&str> = r.fmps.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "ML-WAB", "ML-PKI", "ML-TBK", "ML-MNK", "ML-SEV", "ML-GOG", "ML-BEN", "ML-HER",
                "ML-BKO"
            ]
        );
        assert!(r.fmps.iter().all(|f| f.country == "MLI"));
        // Mali lies within 10°N–25°N, 12.5°W–4.5°E.
        assert!(r.fmps.iter().all(|f| (10.0..25.0).contains(&f.lat)));
        assert!(r.fmps.iter().all(|f| (-12.5..4.5).contains(&f.lon)));
        assert_eq!(r.transit_codes(), ["ML-WAB", "ML-SEV", "ML-BKO"]);
        assert_eq!(
            r.entry_exit_codes(),
            ["ML-PKI", "ML-TBK", "ML-MNK", "ML-GOG", "ML-BEN", "ML-HER"]
        );
        let her = r.get("ML-HER").unwrap();
        assert_eq!(
            (her.name.as_str(), her.admin1.as_str()),
            ("Heremakono", "Sikasso")
        );
        assert_eq!(her.border_with.as_deref(), Some("BFA"));
        assert_eq!(r.get("ML-GOG").unwrap().border_with.as_deref(), Some("MRT"));
        assert_eq!(r.get("ML-TBK").unwrap().admin1, "Tombouctou");
        assert!(r.get("ML-XYZ").is_none());
        assert_eq!(r.in_country("MLI").count(), 9);
        assert_eq!(r.in_country("NER").count(), 0);
    }

    #[test]
    fn is_active_on_respects_since_and_until() {
        let mut fmp = Registry::mali_default().get("ML-HER").unwrap().clone();
        assert!(fmp.is_active_on(d(2020, 6, 14)));
        assert!(fmp.is_active_on(fmp.active_since));
        assert!(!fmp.is_active_on(d(2015, 3, 2)));
        fmp.active_until = Some(d(2019, 12, 31));
        assert!(fmp.is_active_on(d(2019, 12, 31)));
        assert!(!fmp.is_active_on(d(2020, 1, 1)));
        let r = Registry::mali_default();
        assert_eq!(r.active_on(d(2020, 6, 1)).count(), 9);
        assert_eq!(r.active_on(d(2016, 6, 30)).count(), 0);
    }

    #[test]
    fn registry_round_trips_through_json() {
        let r = Registry::mali_default();
        let back = Registry::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn registry_json_is_stable() {
        insta::assert_snapshot!(Registry::mali_default().to_json());
    }

    fn edited(f: impl FnOnce(&mut Registry)) -> Result<Registry, RegistryError> {
        let mut r = Registry::mali_default();
        f(&mut r);
        Registry::from_json(&r.to_json())
    }

    #[test]
    fn registry_with_duplicate_code_is_refused() {
        let err = edited(|r| r.fmps[1].code = "ML-WAB".into()).unwrap_err();
        assert!(matches!(&err, RegistryError::DuplicateCode(c) if c == "ML-WAB"));
        assert_eq!(
            err.to_string(),
            "FMP code ML-WAB appears more than once in the registry"
        );
    }

    #[test]
    fn registry_with_unknown_country_is_refused() {
        let err = edited(|r| r.fmps[0].country = "XXX".into()).unwrap_err();
        assert!(matches!(
            &err,
            RegistryError::UnknownCountry {
                field: "country",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "FMP ML-WAB: country XXX is not a known ISO 3166-1 alpha-3 country code"
        );
        let err = edited(|r| r.fmps[5].border_with = Some("mrt".into())).unwrap_err();
        assert!(matches!(
            &err,
            RegistryError::UnknownCountry {
                field: "border_with",
                ..
            }
        ));
    }

    #[test]
    fn registry_with_other_defects_is_refused() {
        let err = edited(|r| r.fmps[2].code = " ".into()).unwrap_err();
        assert!(matches!(
            err,
            RegistryError::Empty {
                index: 3,
                field: "code"
            }
        ));
        let err = edited(|r| r.fmps[2].name = String::new()).unwrap_err();
        assert!(matches!(
            err,
            RegistryError::Empty {
                index: 3,
                field: "name"
            }
        ));
        let err = edited(|r| r.fmps[0].lat = 91.0).unwrap_err();
        assert!(matches!(err, RegistryError::BadCoordinates { .. }));
        let err = edited(|r| r.fmps[0].active_until = Some(d(2016, 1, 1))).unwrap_err();
        assert!(matches!(err, RegistryError::BadDates { .. }));
        let err = Registry::from_json("{\"fmps\": [{\"code\": 3}]}").unwrap_err();
        assert!(matches!(err, RegistryError::Json(_)));
    }

    #[test]
    fn countries_have_english_and_french_names() {
        assert!(countries().len() >= 249, "{}", countries().len());
        let mli = country("MLI").unwrap();
        assert_eq!(
            (mli.name_en, mli.name_fr, mli.alpha2.as_str()),
            ("Mali", "Mali", "ML")
        );
        assert_eq!(mli.continent, "africa");
        let civ = country("CIV").unwrap();
        assert_eq!(civ.name_fr, "Côte d'Ivoire");
        assert_eq!(civ.name(Lang::Fr), "Côte d'Ivoire");
        assert_eq!(country("GIN").unwrap().name(Lang::Fr), "Guinée");
        assert_eq!(country("DZA").unwrap().name(Lang::Fr), "Algérie");
        assert!(country("mli").is_none());
        assert!(country("ML").is_none());
        assert!(country("").is_none());
        for c in countries() {
            assert_eq!(c.alpha3.len(), 3, "{c:?}");
            assert!(!c.name_en.is_empty() && !c.name_fr.is_empty(), "{c:?}");
            assert_eq!(country(&c.alpha3), Some(c));
        }
    }

    #[test]
    fn europe_is_what_the_report_expects() {
        for code in [
            "FRA", "ESP", "ITA", "DEU", "GBR", "CHE", "NOR", "CYP", "MLT",
        ] {
            assert!(country(code).unwrap().in_europe, "{code}");
        }
        // Overseas parts of EU members and Türkiye are not Europe here.
        for code in [
            "BFA", "MLI", "DZA", "LBY", "MAR", "MRT", "USA", "CHN", "TUR", "GUF", "REU",
        ] {
            assert!(!country(code).unwrap().in_europe, "{code}");
        }
    }

    #[test]
    fn code_lists_have_labels_in_both_languages() {
        for &m in MovementType::ALL {
            assert!(!movement_type_label(m, Lang::En).is_empty());
            assert!(!movement_type_label(m, Lang::Fr).is_empty());
        }
        for &t in Transport::ALL {
            assert!(!transport_label(t, Lang::Fr).is_empty());
        }
        for &dir in Direction::ALL {
            assert!(!direction_label(dir, Lang::Fr).is_empty());
        }
        assert_eq!(
            movement_type_label(MovementType::Seasonal, Lang::Fr),
            "Migration saisonnière"
        );
        assert_eq!(transport_label(Transport::Foot, Lang::Fr), "À pied");
        assert_eq!(fmp_kind_label(FmpKind::Transit, Lang::En), "Transit point");
    }
}
