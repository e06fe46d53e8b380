//! Reference data for the app's pick lists: FMPs, countries with English and
//! French names, and the closed code lists with their labels.

use fmp_core::model as core;
use fmp_core::reference::{Fmp, FmpKind as CoreFmpKind, Registry};

use crate::records::{Direction, MovementType, Transport};
use fmp_core::reference as core_ref;
use fmp_core::reference::Lang;

/// Kind of FMP: transit FMPs are left out of national totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FmpKind {
    /// A border post: counts towards national totals.
    EntryExit,
    /// A transit hub (bus station, crossroads town).
    Transit,
}

/// One Flow Monitoring Point.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FmpInfo {
    /// Code, e.g. `ML-HER`; what a submission's `fmp` holds.
    pub code: String,
    /// Name, e.g. `Heremakono`.
    pub name: String,
    /// First-level administrative region, e.g. `Sikasso`.
    pub admin1: String,
    /// ISO 3166-1 alpha-3 country code.
    pub country: String,
    /// Entry/exit or transit.
    pub kind: FmpKind,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// First day data may be recorded there, `YYYY-MM-DD`.
    pub active_since: String,
}

/// A country for pick lists.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CountryInfo {
    /// ISO 3166-1 alpha-3 code, what submissions hold (`MLI`).
    pub code: String,
    /// English name.
    pub name_en: String,
    /// French name.
    pub name_fr: String,
}

/// A movement type with its labels.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MovementTypeOption {
    /// The value to put in a submission.
    pub value: MovementType,
    /// English label.
    pub label_en: String,
    /// French label.
    pub label_fr: String,
}

/// A means of transport with its labels.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransportOption {
    /// The value to put in a submission.
    pub value: Transport,
    /// English label.
    pub label_en: String,
    /// French label.
    pub label_fr: String,
}

/// A direction with its labels.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DirectionOption {
    /// The value to put in a submission.
    pub value: Direction,
    /// English label.
    pub label_en: String,
    /// French label.
    pub label_fr: String,
}

impl From<&Fmp> for FmpInfo {
    fn from(f: &Fmp) -> FmpInfo {
        FmpInfo {
            code: f.code.clone(),
            name: f.name.clone(),
            admin1: f.admin1.clone(),
            country: f.country.clone(),
            kind: match f.kind {
                CoreFmpKind::EntryExit => FmpKind::EntryExit,
                CoreFmpKind::Transit => FmpKind::Transit,
            },
            lat: f.lat,
            lon: f.lon,
            active_since: f.active_since.to_string(),
        }
    }
}

/// The FMPs of a registry, in registry order.
pub(crate) fn fmp_infos(registry: &Registry) -> Vec<FmpInfo> {
    registry.fmps.iter().map(FmpInfo::from).collect()
}

/// Every ISO 3166-1 country, sorted by alpha-3 code, with English and French names.
#[uniffi::export]
pub fn countries() -> Vec<CountryInfo> {
    core_ref::countries()
        .iter()
        .map(|c| CountryInfo {
            code: c.alpha3.clone(),
            name_en: c.name_en.to_string(),
            name_fr: c.name_fr.to_string(),
        })
        .collect()
}

/// The movement types in questionnaire order, with English and French labels.
#[uniffi::export]
pub fn movement_types() -> Vec<MovementTypeOption> {
    core::MovementType::ALL
        .iter()
        .map(|&m| MovementTypeOption {
            value: m.into(),
            label_en: core_ref::movement_type_label(m, Lang::En).to_string(),
            label_fr: core_ref::movement_type_label(m, Lang::Fr).to_string(),
        })
        .collect()
}

/// The means of transport in questionnaire order, with English and French labels.
#[uniffi::export]
pub fn transport_modes() -> Vec<TransportOption> {
    core::Transport::ALL
        .iter()
        .map(|&t| TransportOption {
            value: t.into(),
            label_en: core_ref::transport_label(t, Lang::En).to_string(),
            label_fr: core_ref::transport_label(t, Lang::Fr).to_string(),
        })
        .collect()
}

/// The directions, with English and French labels.
#[uniffi::export]
pub fn directions() -> Vec<DirectionOption> {
    core::Direction::ALL
        .iter()
        .map(|&d| DirectionOption {
            value: d.into(),
            label_en: core_ref::direction_label(d, Lang::En).to_string(),
            label_fr: core_ref::direction_label(d, Lang::Fr).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_lists_cover_every_value() {
        assert_eq!(movement_types().len(), core::MovementType::ALL.len());
        assert_eq!(transport_modes().len(), core::Transport::ALL.len());
        let mli = countries().into_iter().find(|c| c.code == "MLI");
        assert_eq!(mli.map(|c| c.name_fr), Some("Mali".to_string()));
    }
}
