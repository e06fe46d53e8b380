//! Signed requests: every request to a hub carries the device id, a
//! timestamp, a random nonce and an Ed25519 signature by the device key
//! over (method, path, timestamp, nonce, SHA-256 of the body). The hub
//! accepts a timestamp within [`WINDOW_SECS`] of its clock and each
//! (device, nonce) once within that window, so a captured request cannot
//! be replayed.

use std::collections::HashMap;
use std::sync::Mutex;

use fmp_core::store::Identity;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

/// Header naming the signing device.
pub const H_DEVICE: &str = "x-fmp-device";
/// Header with the request time (seconds since the epoch).
pub const H_TIME: &str = "x-fmp-time";
/// Header with the request's random nonce (hex).
pub const H_NONCE: &str = "x-fmp-nonce";
/// Header with the signature (hex).
pub const H_SIG: &str = "x-fmp-signature";
/// How far a request's time may be from the hub's clock, either way.
pub const WINDOW_SECS: i64 = 300;

const DOMAIN: &str = "fmp-hub request v1";

/// The bytes a request signature covers.
pub fn payload(method: &str, path: &str, time: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let h = digest::digest(&digest::SHA256, body);
    format!(
        "{DOMAIN}\n{method}\n{path}\n{time}\n{nonce}\n{}",
        hex::encode(h.as_ref())
    )
    .into_bytes()
}

/// The four headers of a signed request.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Device id.
    pub device: Uuid,
    /// Seconds since the epoch.
    pub time: i64,
    /// Random nonce (hex).
    pub nonce: String,
    /// Signature (hex).
    pub sig: String,
}

impl Signed {
    /// Signs a request as `identity`, now.
    pub fn new(identity: &Identity, method: &str, path: &str, body: &[u8]) -> Signed {
        Signed::at(identity, method, path, body, chrono::Utc::now().timestamp())
    }

    /// Signs a request as `identity` with the given time (seconds since the
    /// epoch): the hub's clock, when the device's own is wrong.
    pub fn at(identity: &Identity, method: &str, path: &str, body: &[u8], time: i64) -> Signed {
        let mut n = [0u8; 16];
        // SystemRandom fails only if the OS has no randomness at all; a zero
        // nonce then is refused as a replay at worst, never accepted twice.
        let _ = SystemRandom::new().fill(&mut n);
        let nonce = hex::encode(n);
        let sig = hex::encode(identity.sign(&payload(method, path, time, &nonce, body)));
        Signed {
            device: identity.device_id,
            time,
            nonce,
            sig,
        }
    }

    /// The headers, as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (H_DEVICE, self.device.to_string()),
            (H_TIME, self.time.to_string()),
            (H_NONCE, self.nonce.clone()),
            (H_SIG, self.sig.clone()),
        ]
    }
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header is missing or unreadable.
    #[error("the request is not signed: {0}")]
    Unsigned(String),
    /// The signature does not verify.
    #[error("the request signature does not verify with the key of device {0}")]
    BadSignature(Uuid),
    /// The timestamp is outside the window.
    #[error(
        "the request time is {0} s away from the hub's clock (at most {WINDOW_SECS} s); check the device's clock"
    )]
    Stale(i64),
    /// The nonce was seen before.
    #[error("this request was already received (replayed nonce); nothing was stored")]
    Replayed,
}

/// Reads the signature headers with `get(name)`.
pub fn read_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Signed, AuthError> {
    let field =
        |name: &str| get(name).ok_or_else(|| AuthError::Unsigned(format!("no {name} header")));
    let device = Uuid::parse_str(field(H_DEVICE)?)
        .map_err(|e| AuthError::Unsigned(format!("{H_DEVICE}: {e}")))?;
    let time = field(H_TIME)?
        .parse::<i64>()
        .map_err(|e| AuthError::Unsigned(format!("{H_TIME}: {e}")))?;
    let nonce = field(H_NONCE)?.to_string();
    if nonce.len() < 16 || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Unsigned(format!(
            "{H_NONCE}: 16 to 64 hex digits expected"
        )));
    }
    let sig = field(H_SIG)?.to_string();
    Ok(Signed {
        device,
        time,
        nonce,
        sig,
    })
}

/// Checks a signature with `public_key` and the time window.
pub fn verify(
    signed: &Signed,
    public_key: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(), AuthError> {
    let skew = chrono::Utc::now().timestamp() - signed.time;
    if skew.abs() > WINDOW_SECS {
        return Err(AuthError::Stale(skew));
    }
    let sig = hex::decode(&signed.sig).map_err(|_| AuthError::BadSignature(signed.device))?;
    let msg = payload(method, path, signed.time, &signed.nonce, body);
    if !fmp_core::store::identity::verify(public_key, &msg, &sig) {
        return Err(AuthError::BadSignature(signed.device));
    }
    Ok(())
}

/// Nonces seen within the window, per device.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: Mutex<HashMap<(Uuid, String), i64>>,
}

impl Nonces {
    /// Records a nonce; `Err(Replayed)` if it was seen within the window.
    pub fn check(&self, device: Uuid, nonce: &str, time: i64) -> Result<(), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, t| (now - *t).abs() <= WINDOW_SECS);
        }
        match seen.entry((device, nonce.to_string())) {
            std::collections::hash_map::Entry::Occupied(_) => Err(AuthError::Replayed),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(time);
                Ok(())
            }
        }
    }
}
