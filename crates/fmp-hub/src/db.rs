//! The hub's own tables (part of the store's schema since version 4,
//! `fmp_core::store::schema`):
//!
//! - `hub_codes`: enrollment codes, by SHA-256 of the code (the code itself
//!   is never stored), with the FMPs they grant, expiry and use.
//! - `hub_devices`: devices enrolled here: key, FMPs (`NULL`: any), whether
//!   they may enroll others (a supervisor's hub joining HQ), revocation, last sync.
//! - `hub_upstream`: the hub this store joined (a phone's hub, a hub's HQ):
//!   address, device id and key, pinned TLS certificate, granted FMPs.
//! - `hub_quarantine`: this store's changes a hub refused, with its reason;
//!   set aside so they never block the rest.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use fmp_core::store::Store;
use fmp_core::store::enrollment::{self, DeviceMatch};
use fmp_sync::{AuthorInfo, StaticTrust};

use crate::error::HubError;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn join_fmps(fmps: &Option<Vec<String>>) -> Option<String> {
    fmps.as_ref().map(|l| l.join(","))
}

fn split_fmps(s: Option<String>) -> Option<Vec<String>> {
    s.map(|s| {
        s.split(',')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect()
    })
}

/// An enrollment code as the hub keeps it.
#[derive(Debug, Clone)]
pub struct CodeRow {
    /// FMPs it grants.
    pub fmps: Vec<String>,
    /// Whether the joining device may enroll others.
    pub may_enroll: bool,
    /// Expiry (ms since the epoch).
    pub expires_at: i64,
    /// The device that used it.
    pub used_by: Option<String>,
}

/// Stores the hash of a new enrollment code.
pub fn insert_code(
    store: &Store,
    hash: &[u8],
    fmps: &[String],
    may_enroll: bool,
    expires_at: i64,
) -> Result<(), HubError> {
    store.write(|tx| -> Result<(), HubError> {
        tx.execute(
            "INSERT INTO hub_codes (hash, fmps, may_enroll, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash, fmps.join(","), may_enroll, now_ms(), expires_at],
        )?;
        Ok(())
    })
}

/// Reads a code by its hash.
pub fn code(conn: &Connection, hash: &[u8]) -> rusqlite::Result<Option<CodeRow>> {
    conn.query_row(
        "SELECT fmps, may_enroll, expires_at, used_by FROM hub_codes WHERE hash = ?1",
        [hash],
        |r| {
            Ok(CodeRow {
                fmps: split_fmps(Some(r.get(0)?)).unwrap_or_default(),
                may_enroll: r.get(1)?,
                expires_at: r.get(2)?,
                used_by: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Marks a code used by `device`.
pub fn use_code(conn: &Connection, hash: &[u8], device: Uuid) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_codes SET used_by = ?2, used_at = ?3 WHERE hash = ?1",
        params![hash, device.to_string(), now_ms()],
    )?;
    Ok(())
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

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Enrolls a device, or re-enrolls one with the same key that is not
/// revoked (new FMPs, name); a device id stays bound to its first key and a
/// revoked device stays revoked (see [`reinstate`]).
pub fn upsert_device(
    conn: &Connection,
    device: Uuid,
    name: &str,
    public_key: &[u8],
    fmps: &Option<Vec<String>>,
    may_enroll: bool,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO hub_devices (device, name, public_key, fmps, may_enroll, enrolled_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(device) DO UPDATE SET name = ?2, fmps = ?4,
           may_enroll = ?5, enrolled_at = ?6
         WHERE hub_devices.public_key = ?3 AND hub_devices.revoked_at IS NULL",
        params![
            device.to_string(),
            name,
            public_key,
            join_fmps(fmps),
            may_enroll,
            now_ms()
        ],
    )?;
    Ok(())
}

/// Every device enrolled here, oldest first.
pub fn devices(conn: &Connection) -> rusqlite::Result<Vec<DeviceRow>> {
    let mut stmt = conn.prepare(
        "SELECT device, name, public_key, fmps, may_enroll, enrolled_at, revoked_at, last_sync
         FROM hub_devices ORDER BY enrolled_at, device",
    )?;
    let rows = stmt.query_map([], |r| {
        let id: String = r.get(0)?;
        let pk: Vec<u8> = r.get(2)?;
        Ok(DeviceRow {
            device: Uuid::parse_str(&id).unwrap_or_default(),
            name: r.get(1)?,
            public_key: hex::encode(pk),
            fmps: split_fmps(r.get(3)?),
            may_enroll: r.get(4)?,
            enrolled_at: rfc3339(r.get(5)?),
            revoked_at: r.get::<_, Option<i64>>(6)?.map(rfc3339),
            last_sync: r.get::<_, Option<i64>>(7)?.map(rfc3339),
        })
    })?;
    rows.collect()
}

/// What the hub knows of a device that signs a request.
#[derive(Debug, Clone)]
pub struct Known {
    /// Its public key.
    pub public_key: Vec<u8>,
    /// Revoked, and when (ms).
    pub revoked_at: Option<i64>,
    /// The FMPs it may write and read (`None`: any).
    pub fmps: Option<Vec<String>>,
}

/// Looks up a device enrolled here.
pub fn known(conn: &Connection, device: Uuid) -> rusqlite::Result<Option<Known>> {
    let d = conn
        .query_row(
            "SELECT public_key, revoked_at, fmps FROM hub_devices WHERE device = ?1",
            [device.to_string()],
            |r| {
                Ok(Known {
                    public_key: r.get(0)?,
                    revoked_at: r.get(1)?,
                    fmps: split_fmps(r.get(2)?),
                })
            },
        )
        .optional()?;
    Ok(d)
}

/// Revokes a device (by id or name); the number of devices revoked. A name
/// that several active devices share is refused, listing their ids.
pub fn revoke(store: &Store, who: &str) -> Result<usize, HubError> {
    store.write(|tx| -> Result<usize, HubError> {
        let active: Vec<DeviceMatch> = enrollment::devices_matching(tx, who)?
            .into_iter()
            .filter(|d| !d.revoked)
            .collect();
        if active.len() > 1 {
            return Err(ambiguous(who, &active, "revoke"));
        }
        let Some(d) = active.first() else {
            return Ok(0);
        };
        Ok(tx.execute(
            "UPDATE hub_devices SET revoked_at = ?2 WHERE device = ?1 AND revoked_at IS NULL",
            params![d.device, now_ms()],
        )?)
    })
}

/// Lifts the revocation of a device (by id, or a name only one revoked
/// device has), keeping its key and FMPs: the supervisor's explicit
/// re-enrollment (an enrollment code alone never brings a revoked device
/// back). The device reinstated.
pub fn reinstate(store: &Store, who: &str) -> Result<Uuid, HubError> {
    store.write(|tx| -> Result<Uuid, HubError> {
        let revoked: Vec<DeviceMatch> = enrollment::devices_matching(tx, who)?
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
        enrollment::reinstate_device(tx, id)?;
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

/// A control character (newline, terminal escape) or an invisible
/// formatting one (zero width, bidirectional override): never printed raw.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// `s` with control and invisible formatting characters escaped (`\n`,
/// `\u{1b}`), for printing names an older store may hold on a terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Notes a device's successful sync.
pub fn touch(conn: &Connection, device: Uuid) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_devices SET last_sync = ?2 WHERE device = ?1",
        params![device.to_string(), now_ms()],
    )?;
    Ok(())
}

/// The hub this store joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its device id.
    pub hub: Uuid,
    /// Its address.
    pub url: String,
    /// Its name.
    pub name: String,
    /// Its public key.
    pub public_key: Vec<u8>,
    /// The FMPs this store was enrolled for (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// Its TLS certificate (DER), pinned at join.
    pub tls_cert: Option<Vec<u8>>,
}

/// Records the hub joined (replacing any previous one).
pub fn set_upstream(conn: &Connection, up: &Upstream) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM hub_upstream", [])?;
    conn.execute(
        "INSERT INTO hub_upstream (hub, url, name, public_key, fmps, tls_cert, joined_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            up.hub.to_string(),
            up.url,
            up.name,
            up.public_key,
            join_fmps(&up.fmps),
            up.tls_cert,
            now_ms()
        ],
    )?;
    Ok(())
}

/// The hub this store joined, if any.
pub fn upstream(conn: &Connection) -> rusqlite::Result<Option<Upstream>> {
    conn.query_row(
        "SELECT hub, url, name, public_key, fmps, tls_cert FROM hub_upstream LIMIT 1",
        [],
        |r| {
            let id: String = r.get(0)?;
            Ok(Upstream {
                hub: Uuid::parse_str(&id).unwrap_or_default(),
                url: r.get(1)?,
                name: r.get(2)?,
                public_key: r.get(3)?,
                fmps: split_fmps(r.get(4)?),
                tls_cert: r.get(5)?,
            })
        },
    )
    .optional()
}

/// The trust of this store: the devices enrolled here (not revoked) with
/// their scopes and roles (`may_enroll`: a supervisor's hub, else an
/// enumerator's phone), and the hub it joined (any FMP, may enroll, a
/// supervisor: it may be HQ, whose rights are the same). Revoked devices
/// are refused whatever certificate comes for them.
pub fn trust(conn: &Connection) -> rusqlite::Result<StaticTrust> {
    let mut t = StaticTrust::new(true);
    let mut stmt =
        conn.prepare("SELECT device, public_key, fmps, may_enroll, revoked_at FROM hub_devices")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, Option<i64>>(4)?,
        ))
    })?;
    for row in rows {
        let (id, pk, fmps, may_enroll, revoked_at) = row?;
        if let Ok(id) = Uuid::parse_str(&id) {
            if let Some(at) = revoked_at {
                t.refuse(id, format!("it was revoked on this hub at {}", rfc3339(at)));
                continue;
            }
            t.insert(
                id,
                AuthorInfo {
                    public_key: pk,
                    fmps: split_fmps(fmps),
                    may_enroll,
                    role: fmp_sync::Role::from_may_enroll(may_enroll),
                },
            );
        }
    }
    if let Some(up) = upstream(conn)? {
        t.insert(
            up.hub,
            AuthorInfo {
                public_key: up.public_key,
                fmps: None,
                may_enroll: true,
                role: fmp_sync::Role::Supervisor,
            },
        );
    }
    Ok(t)
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
    conn: &Connection,
    peer: Uuid,
    refused: &[fmp_sync::wire::Refusal],
) -> rusqlite::Result<()> {
    for r in refused {
        let doc: Option<String> = conn
            .query_row(
                "SELECT doc_id FROM changes WHERE hash = ?1",
                [r.hash.to_vec()],
                |row| row.get(0),
            )
            .optional()?;
        conn.execute(
            "INSERT OR REPLACE INTO hub_quarantine (hash, doc_id, peer, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                r.hash.to_vec(),
                doc.unwrap_or_default(),
                peer.to_string(),
                r.reason,
                now_ms()
            ],
        )?;
    }
    Ok(())
}

/// The quarantined changes; a record back in scope shows as released.
pub fn quarantined(conn: &Connection) -> rusqlite::Result<Vec<Quarantined>> {
    let scope = upstream(conn)?.and_then(|u| u.fmps);
    let mut stmt = conn.prepare(
        "SELECT q.hash, q.doc_id, s.fmp, q.reason, q.at, c.author,
           EXISTS (SELECT 1 FROM changes c2 WHERE c2.doc_id = q.doc_id
             AND c2.origin IS NULL AND c2.seq > (SELECT seq FROM changes WHERE hash = q.hash))
         FROM hub_quarantine q
         LEFT JOIN submissions s ON s.id = q.doc_id
         LEFT JOIN changes c ON c.hash = q.hash ORDER BY q.at, q.doc_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let hash: Vec<u8> = r.get(0)?;
        let fmp: Option<String> = r.get(2)?;
        let reason: String = r.get(3)?;
        let in_scope = match (&scope, &fmp) {
            (Some(s), Some(f)) => s.contains(f),
            _ => false,
        };
        let edited_since: bool = r.get(6)?;
        Ok(Quarantined {
            hash: hex::encode(hash),
            record: r.get(1)?,
            author: r.get(5)?,
            released: match fmp_sync::refusal_kind(&reason) {
                fmp_sync::RefusalKind::Role => false,
                fmp_sync::RefusalKind::Invalid => in_scope && edited_since,
                fmp_sync::RefusalKind::Other => in_scope,
            },
            fmp,
            reason,
            at: rfc3339(r.get(4)?),
        })
    })?;
    rows.collect()
}

/// The quarantined changes to push again: those whose record is back in
/// this device's FMPs, so the hub judges them with the edit that released
/// them, and those the hub could not verify yet (their author's
/// certificate, or a change they depend on, may have arrived since;
/// [`fmp_sync::may_pass_later`]), offered once per sync until accepted.
pub fn released(conn: &Connection) -> rusqlite::Result<Vec<fmp_sync::wire::Hash>> {
    Ok(quarantined(conn)?
        .into_iter()
        .filter(|q| q.released || fmp_sync::may_pass_later(&q.reason))
        .filter_map(|q| hex::decode(&q.hash).ok()?.try_into().ok())
        .collect())
}

/// Takes changes out of quarantine (the hub accepted them).
pub fn unquarantine(conn: &Connection, hashes: &[fmp_sync::wire::Hash]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("DELETE FROM hub_quarantine WHERE hash = ?1")?;
    for h in hashes {
        stmt.execute([h.to_vec()])?;
    }
    Ok(())
}
