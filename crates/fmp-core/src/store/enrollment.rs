//! Enrollment facts a hub keeps beside its own tables (`hub_devices`, see
//! `hub.rs`): whether the hub this store joined lets it enroll devices,
//! devices by id or name, and reinstating a revoked device. Statements
//! only; the hub decides what they mean.

use super::ops::{EnrollmentReads, EnrollmentWrites};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{StoreError, access::SqlReader, access::SqlWriter};

const MAY_ENROLL_KEY: &str = "upstream_may_enroll";
/// `meta` key of the addresses `fmp serve` last told phones to use, one a line.
const SERVED_AT_KEY: &str = "hub_served_at";

/// Records whether the hub this store joined granted it enrollment (a code
/// made with `--hub`).
fn set_upstream_may_enroll(conn: &Connection, may_enroll: bool) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![MAY_ENROLL_KEY, if may_enroll { "1" } else { "0" }],
    )?;
    Ok(())
}

/// Whether the hub this store joined granted it enrollment; `None` if this
/// store never recorded it (no upstream, or joined before it was kept).
fn upstream_may_enroll(conn: &Connection) -> rusqlite::Result<Option<bool>> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [MAY_ENROLL_KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.map(|v| v == "1"))
}

/// A device enrolled on a hub, as found by id or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMatch {
    /// Its id (as stored).
    pub device: String,
    /// Its name.
    pub name: String,
    /// Whether it is revoked.
    pub revoked: bool,
}

/// The devices enrolled on a hub whose id or name is `who`, oldest first.
fn devices_matching(conn: &Connection, who: &str) -> rusqlite::Result<Vec<DeviceMatch>> {
    let mut stmt = conn.prepare_cached(
        "SELECT device, name, revoked_at IS NOT NULL FROM hub_devices
         WHERE device = ?1 OR name = ?1 ORDER BY enrolled_at, device",
    )?;
    let rows = stmt.query_map([who], |r| {
        Ok(DeviceMatch {
            device: r.get(0)?,
            name: r.get(1)?,
            revoked: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// The active (not revoked) devices other than `except` whose name is
/// `name` in the form names are compared in ([`crate::names::name_key`]:
/// case, spaces at the ends, dashes and full-width letters folded).
fn active_named(conn: &Connection, name: &str, except: Uuid) -> rusqlite::Result<Vec<DeviceMatch>> {
    let key = crate::names::name_key(name);
    let mut stmt = conn.prepare_cached(
        "SELECT device, name FROM hub_devices
         WHERE revoked_at IS NULL AND device <> ?1 ORDER BY enrolled_at, device",
    )?;
    let rows = stmt.query_map([except.to_string()], |r| {
        Ok(DeviceMatch {
            device: r.get(0)?,
            name: r.get(1)?,
            revoked: false,
        })
    })?;
    let mut out = Vec::new();
    for d in rows {
        let d = d?;
        if crate::names::name_key(&d.name) == key {
            out.push(d);
        }
    }
    Ok(out)
}

/// Lifts the revocation of a device (its key and FMPs stay as they were);
/// the number of devices reinstated (0 if it is unknown or not revoked).
fn reinstate_device(conn: &Connection, device: Uuid) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE hub_devices SET revoked_at = NULL WHERE device = ?1 AND revoked_at IS NOT NULL",
        [device.to_string()],
    )
}

impl EnrollmentReads for SqlReader<'_> {
    fn upstream_may_enroll(&self) -> Result<Option<bool>, StoreError> {
        upstream_may_enroll(self.conn).map_err(self.sql())
    }

    fn devices_matching(&self, who: &str) -> Result<Vec<DeviceMatch>, StoreError> {
        devices_matching(self.conn, who).map_err(self.sql())
    }

    fn served_at(&self) -> Result<Vec<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [SERVED_AT_KEY],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|v| {
                v.map(|v| v.lines().map(str::to_string).collect())
                    .unwrap_or_default()
            })
            .map_err(self.sql())
    }

    fn active_named(&self, name: &str, except: Uuid) -> Result<Vec<DeviceMatch>, StoreError> {
        active_named(self.conn, name, except).map_err(self.sql())
    }
}

impl EnrollmentWrites for SqlWriter<'_> {
    fn set_upstream_may_enroll(&self, may_enroll: bool) -> Result<(), StoreError> {
        set_upstream_may_enroll(self.conn, may_enroll).map_err(self.sql())
    }

    fn set_served_at(&self, urls: &[String]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![SERVED_AT_KEY, urls.join("\n")],
            )
            .map(drop)
            .map_err(self.sql())
    }

    fn reinstate_device(&self, device: Uuid) -> Result<usize, StoreError> {
        let n = reinstate_device(self.conn, device).map_err(self.sql())?;
        self.trust_changed()?;
        Ok(n)
    }
}
