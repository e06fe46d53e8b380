//! One-time enrollment codes: ten characters from an alphabet without
//! look-alikes (read aloud or put in a QR code), about 49 bits; only their
//! SHA-256 is stored.

use fmp_core::store::ops::*;
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

/// Refuses an enrollment this store could not vouch for upstream: on a
/// store that joined a hub (a supervisor's hub), codes only for FMPs within
/// the scope it was granted, and only if it was granted enrollment (joined
/// with a code made with `--hub`). A hub code from a hub makes a hub below
/// it: HQ verifies that hub's phones through the chain of certificates
/// their bundles carry. A store that joined no hub (HQ) enrolls anything.
pub fn check_may_enroll(store: &Store, fmps: &[String]) -> Result<(), HubError> {
    let (up, granted) = store
        .snapshot(|r| -> Result<_, HubError> { Ok((r.upstream()?, r.upstream_may_enroll()?)) })?;
    let Some(up) = up else {
        return Ok(());
    };
    if granted == Some(false) {
        return Err(HubError::Usage(format!(
            "this store joined {} with a device code, so it may not enroll devices: \
             what it enrolls would be refused upstream. Ask {} for a code made with \
             `fmp enroll-code --hub`, and `fmp join` again with it",
            up.name, up.name
        )));
    }
    if let Some(scope) = &up.fmps {
        let outside: Vec<&String> = fmps.iter().filter(|f| !scope.contains(f)).collect();
        if !outside.is_empty() {
            return Err(HubError::Usage(format!(
                "{} is outside this hub's FMPs: it may enroll devices only for {} (granted by {})",
                outside
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                scope.join(", "),
                up.name
            )));
        }
    }
    Ok(())
}

/// Creates a one-time code for `fmps` valid for `ttl`; `may_enroll` for a
/// supervisor's hub joining HQ. Returns the code, formatted `XXXXX-XXXXX`.
/// Refused where [`check_may_enroll`] refuses.
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
    check_may_enroll(store, fmps)?;
    let rng = SystemRandom::new();
    // Rejection sampling: bytes of 240 and up (256 is not a multiple of 30)
    // are drawn again, so every character is equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut code = String::with_capacity(LEN);
    while code.len() < LEN {
        let mut raw = [0u8; 32];
        rng.fill(&mut raw)
            .map_err(|_| HubError::Usage("the system has no randomness".into()))?;
        for b in raw.iter().filter(|b| **b < limit) {
            if code.len() < LEN {
                code.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
            }
        }
    }
    let expires = chrono::Utc::now().timestamp_millis()
        + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    db::insert_code(store, &hash_code(&code), fmps, may_enroll, expires)?;
    Ok(format!("{}-{}", &code[..5], &code[5..]))
}

/// An unused enrollment code as `fmp codes` lists it. The code itself is
/// never stored: `id` (the first 8 hex digits of its SHA-256) names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnusedCode {
    /// The first 8 hex digits of the code's SHA-256: what `--cancel` takes
    /// when the code itself is lost.
    pub id: String,
    /// FMPs it grants.
    pub fmps: Vec<String>,
    /// Whether it enrolls a supervisor's hub (made with `--hub`).
    pub hub: bool,
    /// When it was made (RFC 3339, UTC).
    pub created_at: String,
    /// When it expires (RFC 3339, UTC).
    pub expires_at: String,
}

/// The id `fmp codes` shows for `code`: the first 8 hex digits of its SHA-256.
pub fn code_id(code: &str) -> String {
    hex::encode(&hash_code(code)[..4])
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn shown(c: fmp_core::store::hub::UnusedCode) -> UnusedCode {
    UnusedCode {
        id: hex::encode(&c.hash[..c.hash.len().min(4)]),
        fmps: c.fmps,
        hub: c.may_enroll,
        created_at: rfc3339(c.created_at),
        expires_at: rfc3339(c.expires_at),
    }
}

/// The codes of this hub not used yet and still valid, oldest first.
pub fn unused(store: &Store) -> Result<Vec<UnusedCode>, HubError> {
    let now = chrono::Utc::now().timestamp_millis();
    Ok(store
        .snapshot(|r| r.unused_codes(now))?
        .into_iter()
        .map(shown)
        .collect())
}

/// Cancels an unused code, named by the code itself (`K7QM2-XR4TD`) or by
/// its id from [`unused`]: a join with it is then refused (`unknown_code`).
/// Returns what was cancelled; an error names what to do when nothing
/// unused matches, or when an id matches several.
pub fn cancel(store: &Store, which: &str) -> Result<UnusedCode, HubError> {
    let canonical = normalize(which);
    let is_code = canonical.len() == LEN && canonical.bytes().all(|b| ALPHABET.contains(&b));
    let now = chrono::Utc::now().timestamp_millis();
    let all = store.snapshot(|r| r.unused_codes(now))?;
    let matching: Vec<_> = if is_code {
        let h = hash_code(&canonical);
        all.into_iter().filter(|c| c.hash == h).collect()
    } else {
        let id = which.trim().to_ascii_lowercase();
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HubError::Usage(format!(
                "{} is neither a code (XXXXX-XXXXX) nor a code's id from `fmp codes`",
                db::printable(which)
            )));
        }
        all.into_iter()
            .filter(|c| hex::encode(&c.hash).starts_with(&id))
            .collect()
    };
    let c = match matching.len() {
        0 => {
            return Err(HubError::Usage(format!(
                "no unused code {} on this hub: it was used, has expired, was cancelled \
                 or was not made here (`fmp codes` lists the unused ones)",
                db::printable(which)
            )));
        }
        1 => matching
            .into_iter()
            .next()
            .ok_or_else(|| HubError::Usage("no unused code".into()))?,
        n => {
            return Err(HubError::Usage(format!(
                "{n} unused codes have ids beginning {}: give more of the id",
                db::printable(which)
            )));
        }
    };
    // Between the read and the write the code may have been used: then it
    // stays (cancel deletes only an unused one) and the error says so.
    if !store.transaction(|w| w.cancel_enrollment_code(&c.hash))? {
        return Err(HubError::Usage(format!(
            "the code {} was used while it was being cancelled",
            db::printable(which)
        )));
    }
    Ok(shown(c))
}
