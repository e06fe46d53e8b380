//! The store's role (from its join), who recorded a submission, and the
//! checks a replica makes of what it receives: the statements `fmp-sync`
//! and the store's own operations need about roles and validity.

use super::ops::{RoleReads, RoleWrites};
use automerge::AutoCommit;
use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use crate::form::Forms;
use crate::model::StoredSubmission;
use crate::refdoc;
use crate::reference::Registry;
use crate::role::Role;
use crate::validate::{ValidationError, validate_received};

use super::{StoreError, access::SqlReader, access::SqlWriter};

impl RoleReads for SqlReader<'_> {
    fn role(&self) -> Result<Option<Role>, StoreError> {
        role(self.conn).map_err(self.sql())
    }

    fn record_author(&self, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        record_author(self.conn, id).map_err(self.sql())
    }

    fn reference(&self) -> Result<(Registry, Forms), StoreError> {
        reference_in(self.conn).map_err(self.sql())
    }

    fn flagged(&self) -> Result<i64, StoreError> {
        flagged(self.conn).map_err(self.sql())
    }
}

impl RoleWrites for SqlWriter<'_> {
    fn set_role(&self, role: Option<Role>) -> Result<(), StoreError> {
        set_role(self.conn, role).map_err(self.sql())
    }
}

/// The role this store was enrolled with (`meta.role`, set by a join);
/// `None`: not set (never joined, or joined before roles existed).
pub(crate) fn role(conn: &Connection) -> rusqlite::Result<Option<Role>> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'role'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(v.as_deref().and_then(Role::parse))
}

/// Sets (or, with `None`, clears) the role this store was enrolled with.
fn set_role(conn: &Connection, role: Option<Role>) -> rusqlite::Result<()> {
    match role {
        Some(r) => conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('role', ?1)",
            [r.as_str()],
        )?,
        None => conn.execute("DELETE FROM meta WHERE key = 'role'", [])?,
    };
    Ok(())
}

/// The device whose change first brought submission `id` into this store
/// (its record change): the owner an enumerator's rights are judged by.
pub(crate) fn record_author(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<Uuid>> {
    let a: Option<String> = conn
        .prepare_cached("SELECT author FROM changes WHERE doc_id = ?1 ORDER BY seq LIMIT 1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?;
    Ok(a.and_then(|a| Uuid::parse_str(&a).ok()))
}

/// The registry and forms in force in this database (its synced documents,
/// else the built-in ones), as [`crate::store::Store::registry`] and
/// [`crate::store::Store::forms`] hold them (see [`crate::refdoc`]).
pub(crate) fn reference_in(conn: &Connection) -> rusqlite::Result<(Registry, Forms)> {
    // By primary key (the registry's id, the forms' id prefix): no scan of
    // the submissions' documents at open.
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT d.kind, ",
        super::log::doc_data!(),
        " FROM documents d WHERE (d.id = ?1 AND d.kind = ?2)
           OR (d.id >= 'form:' AND d.id < 'form;' AND d.kind = ?3)"
    ))?;
    let rows = stmt
        .query_map(
            [
                refdoc::REGISTRY_ID,
                refdoc::REGISTRY_KIND,
                refdoc::FORM_KIND,
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(reference_from(rows))
}

/// The registry and forms that reference documents `(kind, data)` put in
/// force over the built-in ones, on either backend: one that does not load
/// or read is passed over.
pub(crate) fn reference_from(
    rows: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> (Registry, Forms) {
    let mut registry = Registry::mali_default();
    let mut forms = Forms::builtin();
    for (kind, data) in rows {
        let Ok(d) = AutoCommit::load(&data) else {
            continue;
        };
        if kind == refdoc::REGISTRY_KIND {
            if let Ok(r) = refdoc::read_registry(&d) {
                registry = r;
            }
        } else if let Ok(f) = refdoc::read_form(&d) {
            let _ = forms.insert(f);
        }
    }
    (registry, forms)
}

/// Checks a submission's current state by the rules every replica applies
/// to what it receives ([`validate_received`]); a deleted one passes.
pub fn check_state(
    s: &StoredSubmission,
    registry: &Registry,
    forms: &Forms,
) -> Result<(), ValidationError> {
    if s.deleted {
        return Ok(());
    }
    validate_received(&s.submission, registry, forms)
}

/// Number of submissions (not deleted) flagged for review: with
/// conflicting concurrent values, or whose merged state fails validation.
pub(crate) fn flagged(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM submissions WHERE conflicts > 0 AND deleted = 0")?
        .query_row([], |r| r.get(0))
}
