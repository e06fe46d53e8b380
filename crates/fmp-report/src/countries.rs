//! Country names and the "is it in Europe" question the report asks, behind a
//! trait so the report does not depend on how the reference data is built.

/// What the report needs to know about a country code (ISO 3166-1 alpha-3).
pub trait CountryInfo {
    /// Display name of the country, if known.
    fn name(&self, code: &str) -> Option<String>;
    /// True when the country is in Europe (for the "final destination in Europe" share).
    fn in_europe(&self, code: &str) -> bool;
}

/// Every ISO 3166-1 country from fmp-core's reference data; the countries
/// seen at Mali's FMPs carry the short names the DTM reports use.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinCountries;

/// (alpha-3, name, in Europe).
const TABLE: &[(&str, &str, bool)] = &[
    ("BEN", "Benin", false),
    ("BFA", "Burkina Faso", false),
    ("CIV", "Côte d'Ivoire", false),
    ("CMR", "Cameroon", false),
    ("COD", "DR Congo", false),
    ("DZA", "Algeria", false),
    ("EGY", "Egypt", false),
    ("GAB", "Gabon", false),
    ("GHA", "Ghana", false),
    ("GIN", "Guinea-Conakry", false),
    ("GMB", "Gambia", false),
    ("GNB", "Guinea-Bissau", false),
    ("GNQ", "Equatorial Guinea", false),
    ("LBR", "Liberia", false),
    ("LBY", "Libya", false),
    ("MAR", "Morocco", false),
    ("MLI", "Mali", false),
    ("MRT", "Mauritania", false),
    ("NER", "Niger", false),
    ("NGA", "Nigeria", false),
    ("SDN", "Sudan", false),
    ("SEN", "Senegal", false),
    ("SLE", "Sierra Leone", false),
    ("TCD", "Chad", false),
    ("TGO", "Togo", false),
    ("TUN", "Tunisia", false),
    ("BEL", "Belgium", true),
    ("CHE", "Switzerland", true),
    ("DEU", "Germany", true),
    ("ESP", "Spain", true),
    ("FRA", "France", true),
    ("GBR", "United Kingdom", true),
    ("GRC", "Greece", true),
    ("ITA", "Italy", true),
    ("MLT", "Malta", true),
    ("NLD", "Netherlands", true),
    ("PRT", "Portugal", true),
];

impl CountryInfo for BuiltinCountries {
    fn name(&self, code: &str) -> Option<String> {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|(_, n, _)| (*n).to_string())
            .or_else(|| fmp_core::reference::country(code).map(|c| c.name_en.to_string()))
    }

    fn in_europe(&self, code: &str) -> bool {
        fmp_core::reference::country(code).is_some_and(|c| c.in_europe)
    }
}
