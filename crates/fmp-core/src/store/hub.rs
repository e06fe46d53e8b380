//! The hub's tables (schema `HUB_TABLES`) and the only code that reads or
//! writes them:
//!
//! - `hub_codes`: enrollment codes, by SHA-256 of the code (the code itself
//!   is never stored), with the FMPs they grant, expiry and use.
//! - `hub_devices`: devices enrolled here: key, FMPs (`NULL`: any), whether
//!   they may enroll others, revocation, last sync; the rows a hub's trust
//!   is made of.
//! - `hub_upstream`: the hub this store joined (a phone's hub, a hub's HQ):
//!   address, device id and key, pinned TLS certificate, granted FMPs.
//! - `hub_quarantine`: this store's changes a hub refused, with its reason.
//!
//! Rows in, rows out: fmp-hub decides what they mean (codes' validity,
//! trust, which quarantined changes are released).

use crate::store::ops::*;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::{Store, StoreError, access::SqlReader, access::SqlWriter};
use crate::store::authority::Authority;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn join_fmps(fmps: Option<&[String]>) -> Option<String> {
    fmps.map(|l| l.join(","))
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// FMPs it grants.
    pub fmps: Vec<String>,
    /// Whether the joining device may enroll others.
    pub may_enroll: bool,
    /// Expiry (ms since the epoch).
    pub expires_at: i64,
    /// The device that used it (as stored).
    pub used_by: Option<String>,
}

/// An enrollment code not used yet, as `fmp codes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedCode {
    /// SHA-256 of the code's canonical form (the code is never stored).
    pub hash: Vec<u8>,
    /// FMPs it grants.
    pub fmps: Vec<String>,
    /// Whether the joining device may enroll others (a hub code).
    pub may_enroll: bool,
    /// When it was made (ms since the epoch).
    pub created_at: i64,
    /// Expiry (ms since the epoch).
    pub expires_at: i64,
}

/// What a hub knows of a device enrolled here: what it trusts it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRow {
    /// Its device id.
    pub device: Uuid,
    /// Its Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The FMPs it may write and read (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// A hub that may enroll devices of its own.
    pub may_enroll: bool,
    /// Revoked, and when (ms since the epoch).
    pub revoked_at: Option<i64>,
}

/// A device enrolled on this hub, as `fmp devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledDevice {
    /// Its device id (nil if the stored one does not parse).
    pub device: Uuid,
    /// Its name.
    pub name: String,
    /// Its Ed25519 public key.
    pub public_key: Vec<u8>,
    /// FMPs it may write (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// A hub that may enroll devices of its own.
    pub may_enroll: bool,
    /// When it joined (ms since the epoch).
    pub enrolled_at: i64,
    /// When it was revoked, if it was (ms).
    pub revoked_at: Option<i64>,
    /// Its last successful sync here, if any (ms).
    pub last_sync: Option<i64>,
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

/// A change of this store set aside because a hub refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// The change's hash.
    pub hash: [u8; 32],
    /// The record (document id) it belongs to.
    pub record: String,
    /// The device that made the change, where this store has it.
    pub author: Option<String>,
    /// The record's FMP now, if it is a submission.
    pub fmp: Option<String>,
    /// The hub's reason.
    pub reason: String,
    /// When it was set aside (ms since the epoch).
    pub at: i64,
    /// The record was changed here (not received) after the refused change.
    pub edited_since: bool,
}

/// Where a hub's trust stood when read: changes whenever a device is
/// enrolled, revoked or reinstated, or the upstream hub is set, by any
/// process. Equal versions read the same trust rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustVersion(pub(crate) Option<String>);

const TRUST_VERSION_KEY: &str = "hub_trust_version";

impl SqlWriter<'_> {
    /// Gives the trust rows a new [`TrustVersion`] (in this transaction).
    pub(crate) fn trust_changed(&self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute([TRUST_VERSION_KEY, &Uuid::now_v7().to_string()]))
            .map_err(self.sql())?;
        Ok(())
    }
}

const TRUST_COLUMNS: &str = "device, public_key, fmps, may_enroll, revoked_at";

fn trust_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, TrustRow)> {
    let id: String = r.get(0)?;
    Ok((
        id,
        TrustRow {
            device: Uuid::nil(),
            public_key: r.get(1)?,
            fmps: split_fmps(r.get(2)?),
            may_enroll: r.get(3)?,
            revoked_at: r.get(4)?,
        },
    ))
}

impl HubReads for SqlReader<'_> {
    fn enrollment_code(&self, hash: &[u8]) -> Result<Option<CodeRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT fmps, may_enroll, expires_at, used_by FROM hub_codes WHERE hash = ?1",
            )
            .and_then(|mut st| {
                st.query_row([hash], |r| {
                    Ok(CodeRow {
                        fmps: split_fmps(Some(r.get(0)?)).unwrap_or_default(),
                        may_enroll: r.get(1)?,
                        expires_at: r.get(2)?,
                        used_by: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(self.sql())
    }

    fn device_name(&self, device: &str) -> Result<Option<String>, StoreError> {
        let me = self.store.identity();
        if me.device_id.to_string() == device {
            return Ok(Some(me.name.clone()));
        }
        self.conn
            .prepare_cached(
                "SELECT name FROM hub_upstream WHERE hub = ?1
                 UNION ALL SELECT name FROM hub_devices WHERE device = ?1 LIMIT 1",
            )
            .and_then(|mut st| st.query_row([device], |r| r.get(0)).optional())
            .map_err(self.sql())
    }

    fn unused_codes(&self, now_ms: i64) -> Result<Vec<UnusedCode>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT hash, fmps, may_enroll, created_at, expires_at FROM hub_codes
                 WHERE used_by IS NULL AND expires_at > ?1 ORDER BY created_at, hash",
            )
            .and_then(|mut st| {
                st.query_map([now_ms], |r| {
                    Ok(UnusedCode {
                        hash: r.get(0)?,
                        fmps: split_fmps(Some(r.get(1)?)).unwrap_or_default(),
                        may_enroll: r.get(2)?,
                        created_at: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                })?
                .collect()
            })
            .map_err(self.sql())
    }

    fn enrolled_device(&self, device: Uuid) -> Result<Option<TrustRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {TRUST_COLUMNS} FROM hub_devices WHERE device = ?1"
            ))
            .and_then(|mut st| st.query_row([device.to_string()], trust_row).optional())
            .map(|row| row.map(|(_, t)| TrustRow { device, ..t }))
            .map_err(self.sql())
    }

    fn trust_version(&self) -> Result<TrustVersion, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([TRUST_VERSION_KEY], |r| r.get(0)).optional())
            .map(TrustVersion)
            .map_err(self.sql())
    }

    fn trust_rows(&self) -> Result<Vec<TrustRow>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(&format!("SELECT {TRUST_COLUMNS} FROM hub_devices"))
            .and_then(|mut st| {
                st.query_map([], trust_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.sql())?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, t)| {
                Some(TrustRow {
                    device: Uuid::parse_str(&id).ok()?,
                    ..t
                })
            })
            .collect())
    }

    fn enrolled_devices(&self) -> Result<Vec<EnrolledDevice>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT device, name, public_key, fmps, may_enroll, enrolled_at, revoked_at, last_sync
                 FROM hub_devices ORDER BY enrolled_at, device",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    let id: String = r.get(0)?;
                    Ok(EnrolledDevice {
                        device: Uuid::parse_str(&id).unwrap_or_default(),
                        name: r.get(1)?,
                        public_key: r.get(2)?,
                        fmps: split_fmps(r.get(3)?),
                        may_enroll: r.get(4)?,
                        enrolled_at: r.get(5)?,
                        revoked_at: r.get(6)?,
                        last_sync: r.get(7)?,
                    })
                })?
                .collect()
            })
            .map_err(self.sql())
    }

    fn upstream(&self) -> Result<Option<Upstream>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT hub, url, name, public_key, fmps, tls_cert FROM hub_upstream LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row([], |r| {
                    let id: String = r.get(0)?;
                    Ok(Upstream {
                        hub: Uuid::parse_str(&id).unwrap_or_default(),
                        url: r.get(1)?,
                        name: r.get(2)?,
                        public_key: r.get(3)?,
                        fmps: split_fmps(r.get(4)?),
                        tls_cert: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(self.sql())
    }

    fn hq_identity(&self) -> Result<Option<Authority>, StoreError> {
        crate::store::hub::hq_identity(self, self.store.identity())
    }

    fn quarantined(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT q.hash, q.doc_id, s.fmp, q.reason, q.at, c.author,
                   EXISTS (SELECT 1 FROM changes c2 WHERE c2.doc_id = q.doc_id
                     AND c2.origin IS NULL AND c2.seq > (SELECT seq FROM changes WHERE hash = q.hash))
                 FROM hub_quarantine q
                 LEFT JOIN submissions s ON s.id = q.doc_id
                 LEFT JOIN changes c ON c.hash = q.hash ORDER BY q.at, q.doc_id",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        QuarantineEntry {
                            hash: [0; 32],
                            record: r.get(1)?,
                            fmp: r.get(2)?,
                            reason: r.get(3)?,
                            at: r.get(4)?,
                            author: r.get(5)?,
                            edited_since: r.get(6)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.sql())?;
        // Only change hashes are ever set aside.
        Ok(rows
            .into_iter()
            .filter_map(|(hash, q)| {
                Some(QuarantineEntry {
                    hash: hash.try_into().ok()?,
                    ..q
                })
            })
            .collect())
    }
}

impl HubWrites for SqlWriter<'_> {
    fn add_enrollment_code(
        &self,
        hash: &[u8],
        fmps: &[String],
        may_enroll: bool,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO hub_codes (hash, fmps, may_enroll, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, fmps.join(","), may_enroll, now_ms(), expires_at],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    fn cancel_enrollment_code(&self, hash: &[u8]) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM hub_codes WHERE hash = ?1 AND used_by IS NULL")
            .and_then(|mut st| st.execute([hash]))
            .map(|n| n > 0)
            .map_err(self.sql())
    }

    fn use_enrollment_code(&self, hash: &[u8], device: Uuid) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE hub_codes SET used_by = ?2, used_at = ?3 WHERE hash = ?1")
            .and_then(|mut st| st.execute(params![hash, device.to_string(), now_ms()]))
            .map_err(self.sql())?;
        Ok(())
    }

    fn enroll_device(
        &self,
        device: Uuid,
        name: &str,
        public_key: &[u8],
        fmps: Option<&[String]>,
        may_enroll: bool,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO hub_devices (device, name, public_key, fmps, may_enroll, enrolled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(device) DO UPDATE SET name = ?2, fmps = ?4,
                   may_enroll = ?5, enrolled_at = ?6
                 WHERE hub_devices.public_key = ?3 AND hub_devices.revoked_at IS NULL",
            )
            .and_then(|mut st| {
                st.execute(params![
                    device.to_string(),
                    name,
                    public_key,
                    join_fmps(fmps),
                    may_enroll,
                    now_ms()
                ])
            })
            .map_err(self.sql())?;
        self.trust_changed()
    }

    fn revoke_device(&self, device: Uuid) -> Result<usize, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE hub_devices SET revoked_at = ?2 WHERE device = ?1 AND revoked_at IS NULL",
                params![device.to_string(), now_ms()],
            )
            .map_err(self.sql())?;
        self.trust_changed()?;
        Ok(n)
    }

    fn note_sync(&self, device: Uuid) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE hub_devices SET last_sync = ?2 WHERE device = ?1")
            .and_then(|mut st| st.execute(params![device.to_string(), now_ms()]))
            .map_err(self.sql())?;
        Ok(())
    }

    fn set_upstream(&self, up: &Upstream) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM hub_upstream", [])
            .and_then(|_| {
                self.conn.execute(
                    "INSERT INTO hub_upstream (hub, url, name, public_key, fmps, tls_cert, joined_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        up.hub.to_string(),
                        up.url,
                        up.name,
                        up.public_key,
                        join_fmps(up.fmps.as_deref()),
                        up.tls_cert,
                        now_ms()
                    ],
                )
            })
            .map_err(self.sql())?;
        self.trust_changed()
    }

    fn quarantine<'s>(
        &self,
        peer: Uuid,
        refused: impl IntoIterator<Item = ([u8; 32], &'s str)>,
    ) -> Result<(), StoreError> {
        let sql = self.sql();
        let mut doc_of = self
            .conn
            .prepare_cached("SELECT doc_id FROM changes WHERE hash = ?1")
            .map_err(&sql)?;
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO hub_quarantine (hash, doc_id, peer, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(&sql)?;
        for (hash, reason) in refused {
            let doc: Option<String> = doc_of
                .query_row([hash.as_slice()], |r| r.get(0))
                .optional()
                .map_err(&sql)?;
            insert
                .execute(params![
                    hash.as_slice(),
                    doc.unwrap_or_default(),
                    peer.to_string(),
                    reason,
                    now_ms()
                ])
                .map_err(&sql)?;
        }
        Ok(())
    }

    fn unquarantine(&self, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        let sql = self.sql();
        let mut st = self
            .conn
            .prepare_cached("DELETE FROM hub_quarantine WHERE hash = ?1")
            .map_err(&sql)?;
        for h in hashes {
            st.execute([h.as_slice()]).map_err(&sql)?;
        }
        Ok(())
    }
}

impl Store {
    /// Stores the hash of a new enrollment code granting `fmps`, valid
    /// until `expires_at` (ms since the epoch).
    pub fn add_enrollment_code(
        &self,
        hash: &[u8],
        fmps: &[String],
        may_enroll: bool,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.transaction(|w| w.add_enrollment_code(hash, fmps, may_enroll, expires_at))
    }
}

/// Whose signature this store accepts as HQ's, on either backend: the
/// pinned authority; none when it has an upstream but nothing pinned
/// yet; else itself (it is HQ).
pub(crate) fn hq_identity(
    r: &(impl AuthorityReads + HubReads),
    me: &crate::store::Identity,
) -> Result<Option<Authority>, StoreError> {
    if let Some(a) = r.pinned_authority()? {
        return Ok(Some(a));
    }
    if r.upstream()?.is_some() {
        return Ok(None);
    }
    Ok(Some(Authority {
        device_id: me.device_id,
        public_key: me.public_key().to_vec(),
    }))
}
