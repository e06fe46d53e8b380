//! TEMPORARY: the code lists and labels of fmp-core's reference-data branch
//! (`fmp_core::reference::{countries, Lang, *_label}`), not merged into this
//! checkout yet. Same names and signatures, so the merge is: delete this file,
//! and in `reference.rs` replace `crate::compat` with `fmp_core::reference`.

use std::sync::LazyLock;

use fmp_core::model::{Direction, MovementType, Transport};

/// A language of the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

/// One country of ISO 3166-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-3 code, e.g. `MLI`.
    pub alpha3: String,
    /// Common English name.
    pub name_en: &'static str,
    /// Common French name.
    pub name_fr: &'static str,
}

static COUNTRIES: LazyLock<Vec<Country>> = LazyLock::new(|| {
    let mut list: Vec<Country> = keshvar::CountryIterator::new()
        .map(|c| {
            let tr = c.translations();
            let name_en = tr.get("en").copied().unwrap_or(c.iso_short_name());
            let name_fr = tr.get("fr").copied().unwrap_or(name_en);
            Country {
                alpha3: c.alpha3().to_string(),
                name_en,
                name_fr,
            }
        })
        .collect();
    list.sort_by(|a, b| a.alpha3.cmp(&b.alpha3));
    list
});

/// Every ISO 3166-1 country, sorted by alpha-3 code.
pub fn countries() -> &'static [Country] {
    &COUNTRIES
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
