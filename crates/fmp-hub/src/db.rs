//! The hub's tables as fmp-hub uses them, over the store's API
//! (`fmp_core::store::hub`, which owns the tables and their SQL):
//! enrollment codes, the devices enrolled here and the [`StaticTrust`] they
//! make, the hub this store joined, and the quarantine of changes a hub
//! refused, with which of them go again.

use fmp_core::store::enrollment::DeviceMatch;
pub use fmp_core::store::hub::{CodeRow, TrustRow, Upstream};
use fmp_core::store::hub::{EnrolledDevice, QuarantineEntry};
use fmp_core::store::ops::*;
use fmp_core::store::{Reader, Store, StoreError};
use fmp_sync::{AuthorInfo, StaticTrust};
use uuid::Uuid;

use crate::error::HubError;

/// Stores the hash of a new enrollment code.
pub fn insert_code(
    store: &Store,
    hash: &[u8],
    fmps: &[String],
    may_enroll: bool,
    expires_at: i64,
) -> Result<(), HubError> {
    Ok(store.add_enrollment_code(hash, fmps, may_enroll, expires_at)?)
}

/// A device enrolled on this hub.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub device: Uuid,
    /// Its name.
    pub name: String,
    /// Ed25519 public key (hex).
    pub public_key: String,
    /// FMPs it may write (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// A hub that may enroll devices of its own.
    pub may_enroll: bool,
    /// When it joined (RFC 3339).
    pub enrolled_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// Its last successful sync here, if any.
    pub last_sync: Option<String>,
}

impl From<EnrolledDevice> for DeviceRow {
    fn from(d: EnrolledDevice) -> DeviceRow {
        DeviceRow {
            device: d.device,
            name: d.name,
            public_key: hex::encode(d.public_key),
            fmps: d.fmps,
            may_enroll: d.may_enroll,
            enrolled_at: rfc3339(d.enrolled_at),
            revoked_at: d.revoked_at.map(rfc3339),
            last_sync: d.last_sync.map(rfc3339),
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Every device enrolled here, oldest first.
pub fn devices(store: &Store) -> Result<Vec<DeviceRow>, HubError> {
    let rows = store.snapshot(|r| r.enrolled_devices())?;
    Ok(rows.into_iter().map(DeviceRow::from).collect())
}

/// Revokes a device (by id or name); the number of devices revoked. A name
/// that several active devices share is refused, listing their ids.
pub fn revoke(store: &Store, who: &str) -> Result<usize, HubError> {
    Ok(revoke_ids(store, who)?.len())
}

/// Revokes a device (by id or name) as [`revoke`] does; the ids revoked.
pub fn revoke_ids(store: &Store, who: &str) -> Result<Vec<Uuid>, HubError> {
    store.transaction(|w| -> Result<Vec<Uuid>, HubError> {
        let active: Vec<DeviceMatch> = w
            .devices_matching(who)?
            .into_iter()
            .filter(|d| !d.revoked)
            .collect();
        if active.len() > 1 {
            return Err(ambiguous(who, &active, "revoke"));
        }
        let Some(id) = active.first().and_then(|d| Uuid::parse_str(&d.device).ok()) else {
            return Ok(Vec::new());
        };
        Ok(if w.revoke_device(id)? > 0 {
            vec![id]
        } else {
            Vec::new()
        })
    })
}

/// The active devices other than `device` whose name compares equal to
/// its name (case, end spaces and dashes folded): a reinstated device
/// whose name was taken meanwhile.
pub fn name_clashes(store: &Store, device: Uuid) -> Result<Vec<DeviceMatch>, HubError> {
    store.snapshot(|r| -> Result<_, HubError> {
        let Some(me) = r
            .enrolled_devices()?
            .into_iter()
            .find(|d| d.device == device)
        else {
            return Ok(Vec::new());
        };
        Ok(r.active_named(&me.name, device)?)
    })
}

/// Lifts the revocation of a device (by id, or a name only one revoked
/// device has), keeping its key and FMPs: the supervisor's explicit
/// re-enrollment (an enrollment code alone never brings a revoked device
/// back). The device reinstated.
pub fn reinstate(store: &Store, who: &str) -> Result<Uuid, HubError> {
    store.transaction(|w| -> Result<Uuid, HubError> {
        let revoked: Vec<DeviceMatch> = w
            .devices_matching(who)?
            .into_iter()
            .filter(|d| d.revoked)
            .collect();
        if revoked.len() > 1 {
            return Err(ambiguous(who, &revoked, "reinstate"));
        }
        let found = revoked
            .first()
            .and_then(|d| Uuid::parse_str(&d.device).ok());
        let Some(id) = found else {
            return Err(HubError::Usage(format!(
                "no revoked device {} on this hub (see `fmp devices`)",
                printable(who)
            )));
        };
        w.reinstate_device(id)?;
        Ok(id)
    })
}

fn ambiguous(who: &str, list: &[DeviceMatch], what: &str) -> HubError {
    HubError::Usage(format!(
        "{} devices on this hub are named {}; {what} one by its id: {}",
        list.len(),
        printable(who),
        list.iter()
            .map(|d| d.device.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub use fmp_core::names::{hidden, printable};

/// A name as a listing shows it: [`printable`], and quoted when spaces at
/// either end would make it look like another (`"gogui-phone-1 "`).
pub fn listed_name(name: &str) -> String {
    let p = printable(name);
    if p.trim() != p { format!("\"{p}\"") } else { p }
}

/// The hub this store joined, if any.
pub fn upstream(store: &Store) -> Result<Option<Upstream>, HubError> {
    Ok(store.snapshot(|r| r.upstream())?)
}

/// What the hub's trust says of one device enrolled here: refused
/// (revoked), with why, or known with its scope and role (`may_enroll`: a
/// supervisor's hub, else an enumerator's phone).
pub fn author_of(row: &TrustRow) -> Result<AuthorInfo, String> {
    match row.revoked_at {
        Some(at) => Err(format!("it was revoked on this hub at {}", rfc3339(at))),
        None => Ok(AuthorInfo {
            public_key: row.public_key.clone(),
            fmps: row.fmps.clone(),
            may_enroll: row.may_enroll,
            role: fmp_sync::Role::from_may_enroll(row.may_enroll),
        }),
    }
}

/// The hub this store joined as an author: any FMP, may enroll, a
/// supervisor (it may be HQ, whose rights are the same).
pub fn upstream_author(up: &Upstream) -> AuthorInfo {
    AuthorInfo {
        public_key: up.public_key.clone(),
        fmps: None,
        may_enroll: true,
        role: fmp_sync::Role::Supervisor,
    }
}

/// The trust of this store: the devices enrolled here (not revoked) with
/// their scopes and roles, and the hub it joined. Revoked devices are
/// refused whatever certificate comes for them.
pub fn trust_on(r: &Reader<'_>) -> Result<StaticTrust, StoreError> {
    let mut t = StaticTrust::new(true);
    for row in r.trust_rows()? {
        match author_of(&row) {
            Ok(info) => t.insert(row.device, info),
            Err(why) => t.refuse(row.device, why),
        }
    }
    if let Some(up) = r.upstream()? {
        t.insert(up.hub, upstream_author(&up));
    }
    Ok(t)
}

/// [`trust_on`] a snapshot of the store.
pub fn trust(store: &Store) -> Result<StaticTrust, HubError> {
    Ok(store.snapshot(trust_on)?)
}

/// A change set aside on this store because a hub refused it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    /// The change's hash (hex).
    pub hash: String,
    /// The record it belongs to.
    pub record: String,
    /// The device that made the change, where this store has it.
    pub author: Option<String>,
    /// The record's FMP now, if it is a submission.
    pub fmp: Option<String>,
    /// The hub's reason.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
    /// Sent again at the next sync: the record was edited back into this
    /// device's FMPs since (a scope refusal), or edited here since (a
    /// record that broke a rule); never for a refusal of the role.
    pub released: bool,
}

/// Sets refused changes aside, with the hub's reasons.
pub fn quarantine(
    store: &Store,
    peer: Uuid,
    refused: &[fmp_sync::wire::Refusal],
) -> Result<(), HubError> {
    Ok(store
        .transaction(|w| w.quarantine(peer, refused.iter().map(|r| (r.hash, r.reason.as_str()))))?)
}

/// The quarantined changes; a record back in scope shows as released.
pub fn quarantined(r: &Reader<'_>) -> Result<Vec<Quarantined>, StoreError> {
    let scope = r.upstream()?.and_then(|u| u.fmps);
    Ok(r.quarantined()?
        .into_iter()
        .map(|q: QuarantineEntry| {
            let in_scope = match (&scope, &q.fmp) {
                (Some(s), Some(f)) => s.contains(f),
                _ => false,
            };
            Quarantined {
                hash: hex::encode(q.hash),
                record: q.record,
                author: q.author,
                released: match fmp_sync::refusal_kind(&q.reason) {
                    fmp_sync::RefusalKind::Role => false,
                    fmp_sync::RefusalKind::Invalid => in_scope && q.edited_since,
                    fmp_sync::RefusalKind::Other => in_scope,
                },
                fmp: q.fmp,
                reason: q.reason,
                at: rfc3339(q.at),
            }
        })
        .collect())
}

/// The quarantined changes to push again: those whose record is back in
/// this device's FMPs, so the hub judges them with the edit that released
/// them, and those the hub could not verify yet (their author's
/// certificate, or a change they depend on, may have arrived since;
/// [`fmp_sync::may_pass_later`]), offered once per sync until accepted.
pub fn released(store: &Store) -> Result<Vec<fmp_sync::wire::Hash>, HubError> {
    Ok(store
        .snapshot(quarantined)?
        .into_iter()
        .filter(|q| q.released || fmp_sync::may_pass_later(&q.reason))
        .filter_map(|q| hex::decode(&q.hash).ok()?.try_into().ok())
        .collect())
}

/// Takes changes out of quarantine (the hub accepted them).
pub fn unquarantine(store: &Store, hashes: &[fmp_sync::wire::Hash]) -> Result<(), HubError> {
    Ok(store.transaction(|w| w.unquarantine(hashes))?)
}
