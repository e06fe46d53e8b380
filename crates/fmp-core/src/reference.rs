//! Reference data: the FMP registry and the code lists. Data, not code: HQ
//! edits it and it reaches devices by sync; Mali's nine FMPs ship as the default.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Kind of FMP: transit FMPs are left out of national totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FmpKind {
    /// A border post: counts towards national totals.
    EntryExit,
    /// A transit hub (bus station, crossroads town).
    Transit,
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
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// First day data may be recorded there.
    pub active_since: NaiveDate,
}

/// The FMP registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Every FMP, active or not.
    pub fmps: Vec<Fmp>,
}

impl Registry {
    /// Looks an FMP up by code.
    pub fn get(&self, code: &str) -> Option<&Fmp> {
        self.fmps.iter().find(|f| f.code == code)
    }
}

impl Registry {
    /// TEMPORARY stand-in, replaced by the reference-data branch.
    pub fn mali_default() -> Registry {
        Registry { fmps: Vec::new() }
    }
}
