//! One-time enrollment codes: ten characters from an alphabet without
//! look-alikes (read aloud or put in a QR code), about 49 bits; only their
//! SHA-256 is stored.

use std::time::Duration;

use fmp_core::store::Store;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use crate::db;
use crate::error::HubError;

const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 10;

/// A code in its canonical form: upper case, no dashes or spaces.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_uppercase)
        .collect()
}

/// The stored hash of a code.
pub fn hash_code(code: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, normalize(code).as_bytes())
        .as_ref()
        .to_vec()
}

/// Parses a duration like `90s`, `30m`, `24h` or `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, HubError> {
    let s = s.trim();
    let bad = || HubError::Usage(format!("{s:?} is not a duration like 30m, 24h or 7d"));
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = s[..split].parse().map_err(|_| bad())?;
    let unit = match &s[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.saturating_mul(unit)))
}

/// Creates a one-time code for `fmps` valid for `ttl`; `may_enroll` for a
/// supervisor's hub joining HQ. Returns the code, formatted `XXXXX-XXXXX`.
pub fn create_code(
    store: &Store,
    fmps: &[String],
    ttl: Duration,
    may_enroll: bool,
) -> Result<String, HubError> {
    if fmps.is_empty() {
        return Err(HubError::Usage(
            "an enrollment code needs at least one --fmp".into(),
        ));
    }
    for f in fmps {
        if store.registry().get(f).is_none() {
            return Err(HubError::Usage(format!("{f} is not a known FMP code")));
        }
    }
    db::ensure_tables(store)?;
    let rng = SystemRandom::new();
    let mut raw = [0u8; LEN];
    rng.fill(&mut raw)
        .map_err(|_| HubError::Usage("the system has no randomness".into()))?;
    let code: String = raw
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    let expires = chrono::Utc::now().timestamp_millis()
        + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    db::insert_code(store, &hash_code(&code), fmps, may_enroll, expires)?;
    Ok(format!("{}-{}", &code[..5], &code[5..]))
}
