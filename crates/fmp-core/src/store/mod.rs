//! The SQLite store: one directory holding `fmp.sqlite3` (WAL, synchronous
//! FULL: a write that returned survives kill -9 and power loss) and the
//! device key.
//!
//! - `schema.rs`: the tables, `VERSION`, migrations on open.
//! - `materialize.rs`: current state of a submission → query columns.
//! - `identity.rs`: device id and Ed25519 key.
//! - `nonces.rs`: the hub's replay cache (request nonces within the window).
//! - `enrollment.rs`: a hub's enrollment facts (upstream grant, device names).
//! - `authority.rs`: HQ's identity pinned at join; a document's changes for scoped reads.
//! - `restore.rs`: actor epoch and restore facts; cursor resets after a restore.
//! - `roles.rs`: the store's role, a record's author, checks of received states.
//! - `link.rs`: the message size learnt per sync peer.
//! - `settings.rs`: enrolled FMPs and the keyed settings other areas keep.
//! - `query.rs`: listed rows, a submission's history, records to correct.
//!
//! The whole operations on [`Store`] reach the data only through the
//! operations of [`ops`] on a [`Reader`] or [`Writer`].
//!
//! Every operation that changes a record is one immediate transaction that
//! writes the automerge document, appends its change to `changes` and
//! rewrites the materialized row.

mod access;
pub mod authority;
pub mod corrections;
pub mod counts;
pub mod enrollment;
pub mod hub;
pub mod identity;
mod link;
pub mod log;
pub(crate) mod materialize;
pub mod nonces;
pub mod ops;
pub mod peers;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod report;
pub mod restore;
pub mod roles;
pub(crate) mod schema;
mod settings;
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use automerge::AutoCommit;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use uuid::Uuid;

use crate::doc::{self, DocError, Op};
use crate::form::{Form, Forms};
use crate::model::{ParseError, Review, ReviewStatus, StoredSubmission, Submission};
use crate::refdoc;
use crate::reference::Registry;
use crate::role::Role;
use crate::validate::{ValidationError, validate};
pub use access::{Reader, Writer};
pub use authority::Authority;
pub use identity::Identity;
use ops::{
    LogReads, LogWrites, RecordReads, RestoreReads, RoleReads, RoleWrites, SettingsReads,
    SettingsWrites,
};

/// File name of the database inside a store directory.
pub const DB_FILE: &str = "fmp.sqlite3";

/// File of a store directory naming its PostgreSQL database (its URL,
/// without password), in place of [`DB_FILE`].
pub const PG_FILE: &str = "postgres.url";

/// Largest first change of a record, in bytes (raw automerge chunk): one
/// this size still fits the smallest sync message (2048 bytes, with its
/// bundle and certificates) after compression.
pub const MAX_RECORD_CHANGE_BYTES: usize = 1900;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory holds no store.
    #[error("{} is not an fmp store (it has no {DB_FILE}); create one with `fmp init --store {}`", .0.display(), .0.display())]
    NotAStore(PathBuf),
    /// `init` on a directory that already holds a store.
    #[error("{} already holds an fmp store; nothing was changed", .0.display())]
    AlreadyExists(PathBuf),
    /// A device name hubs would refuse (see [`crate::names::valid_name`]).
    #[error(
        "{reason}; give the device a plain name of 1 to {max} characters (no control or invisible characters)",
        max = crate::names::MAX_NAME
    )]
    BadName {
        /// Why, in words.
        reason: String,
    },
    /// A store that joined a hub is not renamed: its hub knows it by its name.
    #[error(
        "this store joined the hub {hub}, which knows it by its name; a joined store is not renamed (nothing was changed)"
    )]
    RenameJoined {
        /// The hub's name.
        hub: String,
    },
    /// The store was written by a newer fmp.
    #[error("the store at {} has schema version {found}, newer than the {supported} this fmp understands; upgrade fmp to open it", path.display())]
    TooNew {
        /// The store directory.
        path: PathBuf,
        /// Version found in `user_version`.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },
    /// The store cannot be written (read-only directory or file).
    #[error("the store at {} is read-only ({detail}); nothing was stored", path.display())]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
        /// SQLite's words.
        detail: String,
    },
    /// Any other SQLite failure.
    #[error("database error in {}: {source}", path.display())]
    Sqlite {
        /// The store directory.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// An operation this backend does not offer yet.
    #[error("{op} is not built for the {backend} backend yet")]
    NotOnBackend {
        /// The operation.
        op: &'static str,
        /// The backend.
        backend: &'static str,
    },
    /// The store's data lives in PostgreSQL and this build has no PostgreSQL.
    #[error("the store at {} keeps its data in PostgreSQL, and this fmp was built without PostgreSQL support (feature `postgres`)", .0.display())]
    NoPostgres(PathBuf),
    /// `init` on a database that already holds a store.
    #[error(
        "the database {0} already holds an fmp store; nothing was changed (open it from that store's directory, or a copy of it)"
    )]
    DatabaseInUse(String),
    /// A PostgreSQL failure (the database named without its password).
    #[cfg(feature = "postgres")]
    #[error("database error in {database}: {source}")]
    Postgres {
        /// The database URL, password left out.
        database: String,
        /// The client's error.
        source: postgres::Error,
    },
    /// A database whose schema version no fmp ever wrote for its backend.
    #[error(
        "the database {database} says schema version {found}, which no fmp ever wrote there; it is not an fmp store"
    )]
    UnknownSchema {
        /// The database.
        database: String,
        /// The version it says.
        found: u32,
    },
    /// Stored data that does not read as this store wrote it.
    #[error("the store holds {what}; it was changed outside fmp")]
    Corrupt {
        /// What does not read.
        what: String,
    },
    /// One transaction appending more changes than a log position holds.
    #[error("one write may append at most {limit} changes; nothing was stored (split the import)")]
    TooManyChanges {
        /// The most changes one write may append.
        limit: i64,
    },
    /// The submission JSON could not be read.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The submission breaks validation rules (every failing field listed).
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// No submission with that id.
    #[error("no submission with id {0} in this store")]
    NotFound(String),
    /// The submission was deleted.
    #[error("submission {0} is deleted; it cannot be changed")]
    Deleted(String),
    /// A submission with this id is already stored.
    #[error("a submission with id {0} is already stored; nothing was changed")]
    Duplicate(String),
    /// A registry or form is not valid, or may not be changed here.
    #[error("{0}")]
    Reference(String),
    /// A registry or form document could not be read or written.
    #[error(transparent)]
    RefDoc(Box<crate::refdoc::RefDocError>),
    /// An edit patch is not usable.
    #[error("edit patch: {0}")]
    Patch(String),
    /// A document could not be read or written.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// Key generation or loading failed.
    #[error("device key: {0}")]
    Crypto(String),
    /// The store's key file holds another key than the one the store
    /// recorded at init (a key copied from another device).
    #[error(
        "{} is not this store's key: it holds public key {found}, and the store was created with public key {expected}; \
         put this store's own device.key back (from its backup); nothing was changed"
    , path.display())]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// Public key recorded in the store (hex).
        expected: String,
        /// Public key of the key in the file (hex).
        found: String,
    },
    /// This device's role does not allow the operation (an enumerator's
    /// phone reviewing, or changing a colleague's submission).
    #[error("{0}; nothing was changed")]
    NotAllowed(String),
    /// The device is enrolled for other FMPs than the submission's.
    #[error("this device is enrolled for {} only, not {fmp}; nothing was stored", allowed.join(", "))]
    OutOfScope {
        /// The submission's FMP.
        fmp: String,
        /// The FMPs of the device's enrollment.
        allowed: Vec<String>,
    },
    /// The store is pinned to another HQ than the one offered.
    #[error(
        "this store is pinned to HQ device {pinned}, and the hub offers HQ device {offered}; a store joins hubs of one HQ only; nothing was changed"
    )]
    OtherAuthority {
        /// The HQ pinned here.
        pinned: Uuid,
        /// The HQ offered.
        offered: Uuid,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Filters for `Store::list`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this FMP.
    pub fmp: Option<String>,
    /// Observed on or after this day.
    pub from: Option<NaiveDate>,
    /// Observed on or before this day.
    pub to: Option<NaiveDate>,
    /// Only this direction.
    pub direction: Option<crate::model::Direction>,
    /// Only this review status (`None` inside: not reviewed yet).
    pub review: Option<Option<ReviewStatus>>,
    /// Include tombstones.
    pub include_deleted: bool,
}

/// One change in a submission's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// Position in this store's change log.
    pub seq: i64,
    /// Content hash of the automerge change (hex).
    pub hash: String,
    /// Device that made it.
    pub author: String,
    /// Its name, where this store knows it (itself, the hub it joined, a
    /// device enrolled here).
    pub author_name: Option<String>,
    /// When, by the author's clock.
    pub time: DateTime<Utc>,
    /// What it did: record, edit, delete or review.
    pub op: String,
    /// The fields it wrote (`people.adult_male`, `review`…); empty for the
    /// record itself, which writes them all.
    pub fields: Vec<String>,
}

/// A store: a device's full local replica.
pub struct Store {
    dir: PathBuf,
    /// Where the data lives.
    db: Backing,
    identity: Identity,
    /// The registry in force: the synced `registry` document, else the built-in one.
    registry: RwLock<Arc<Registry>>,
    /// The built-in forms and every synced `form` document.
    forms: RwLock<Arc<Forms>>,
}

/// A store's database: SQLite inside its directory, or PostgreSQL.
pub(crate) enum Backing {
    /// The embedded SQLite file.
    Sqlite {
        /// Idle reader connections (WAL readers beside the one writer).
        /// Declared (so dropped) before the writer: the writer closes last, and
        /// SQLite then checkpoints the WAL into the database file and removes
        /// it, so a backup of the file alone after a clean stop is whole.
        readers: Mutex<Vec<Connection>>,
        /// The one writer connection.
        conn: Mutex<Connection>,
    },
    /// A PostgreSQL database (`pg/`).
    #[cfg(feature = "postgres")]
    Pg(pg::PgStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("device", &self.identity.device_id)
            .finish()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Room for every statement a store and its sync keep prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Loads the device key, refused if it is not the key this store recorded
/// at init (its id and name are filled in by the caller). A database
/// without its `meta` table yet (made by a newer `init` that failed
/// half-way) has nothing to compare with.
fn load_key(conn: &Connection, dir: &Path) -> Result<Identity, StoreError> {
    let identity = Identity::load(dir, Uuid::nil(), String::new())?;
    let Ok(expected) = conn.query_row("SELECT value FROM meta WHERE key = 'public_key'", [], |r| {
        r.get::<_, String>(0)
    }) else {
        return Ok(identity);
    };
    let found = hex::encode(identity.public_key());
    if expected.eq_ignore_ascii_case(&found) {
        Ok(identity)
    } else {
        Err(StoreError::KeyMismatch {
            path: dir.join(identity::KEY_FILE),
            expected,
            found,
        })
    }
}

impl Store {
    /// Creates a new store in `dir` (created if missing) with a fresh device identity.
    pub fn init(dir: &Path, name: &str) -> Result<Store, StoreError> {
        crate::names::valid_name(name).map_err(|reason| StoreError::BadName { reason })?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let db = dir.join(DB_FILE);
        if db.exists() || dir.join(PG_FILE).exists() {
            return Err(StoreError::AlreadyExists(dir.to_path_buf()));
        }
        let identity = Identity::create(dir, name)?;
        let mut conn = Connection::open(&db).map_err(|e| sql_err(dir, e))?;
        configure(&conn).map_err(|e| sql_err(dir, e))?;
        schema::migrate(&mut conn, dir)?;
        let tx = conn.transaction().map_err(|e| sql_err(dir, e))?;
        let now = Utc::now().to_rfc3339();
        let pk = hex::encode(identity.public_key());
        for (k, v) in [
            ("device_id", identity.device_id.to_string()),
            ("name", name.to_string()),
            ("public_key", pk),
            ("created_at", now),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(|e| sql_err(dir, e))?;
        }
        if let Some(file) = restore::file_id(&db) {
            restore::take_file(&tx, identity.device_id, &file).map_err(|e| sql_err(dir, e))?;
        }
        tx.commit().map_err(|e| sql_err(dir, e))?;
        let store = Store::from_parts(dir, conn, identity);
        store.reload_reference()?;
        Ok(store)
    }

    /// Creates a new store in `dir` (created if missing) with a fresh
    /// device identity, whose data lives in the PostgreSQL database at
    /// `url` (empty, or at an older schema of no store): the directory
    /// keeps the device key and the URL without its password (a password
    /// comes from `PGPASSWORD` whenever the store is opened).
    #[cfg(feature = "postgres")]
    pub fn init_postgres(dir: &Path, name: &str, url: &str) -> Result<Store, StoreError> {
        crate::names::valid_name(name).map_err(|reason| StoreError::BadName { reason })?;
        let plain = pg::redact(url);
        if dir.join(DB_FILE).exists() || dir.join(PG_FILE).exists() {
            return Err(StoreError::AlreadyExists(dir.to_path_buf()));
        }
        let db = pg::PgStore::open(url)?;
        // Nothing made in the directory for a database that is taken.
        if db.meta_identity(dir).is_ok() {
            return Err(StoreError::DatabaseInUse(plain));
        }
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let identity = Identity::create(dir, name)?;
        let now = Utc::now().to_rfc3339();
        let pk = hex::encode(identity.public_key());
        let store = Store::from_backing(dir, Backing::Pg(db), identity);
        let device = store.identity.device_id.to_string();
        store.transaction(|w| {
            if w.setting("device_id")?.is_some() {
                return Err(StoreError::DatabaseInUse(plain.clone()));
            }
            for (k, v) in [
                ("device_id", device.as_str()),
                ("name", name),
                ("public_key", pk.as_str()),
                ("created_at", now.as_str()),
            ] {
                w.put_setting(k, v)?;
            }
            Ok(())
        })?;
        let file = dir.join(PG_FILE);
        std::fs::write(&file, format!("{plain}\n")).map_err(|e| StoreError::io(&file, e))?;
        store.reload_reference()?;
        Ok(store)
    }

    /// The PostgreSQL database a store directory names, if it names one
    /// (its URL, without password).
    pub fn postgres_url(dir: &Path) -> Result<Option<String>, StoreError> {
        let file = dir.join(PG_FILE);
        match std::fs::read_to_string(&file) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&file, e)),
        }
    }

    #[cfg(feature = "postgres")]
    fn open_postgres(dir: &Path, url: &str) -> Result<Store, StoreError> {
        let db = pg::PgStore::open(url)?;
        let (device_id, name) = db.meta_identity(dir)?;
        let identity = Identity::load(dir, device_id, name)?;
        let store = Store::from_backing(dir, Backing::Pg(db), identity);
        // The key must be the one this store was created with, as on SQLite.
        let found = hex::encode(store.identity.public_key());
        if let Some(expected) = store.snapshot(|r| r.setting("public_key"))?
            && !expected.eq_ignore_ascii_case(&found)
        {
            return Err(StoreError::KeyMismatch {
                path: dir.join(identity::KEY_FILE),
                expected,
                found,
            });
        }
        store.reload_reference()?;
        Ok(store)
    }

    /// Opens an existing store, migrating its schema forward if needed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if let Some(url) = Store::postgres_url(dir)? {
            #[cfg(feature = "postgres")]
            return Store::open_postgres(dir, &url);
            #[cfg(not(feature = "postgres"))]
            {
                let _ = url;
                return Err(StoreError::NoPostgres(dir.to_path_buf()));
            }
        }
        let db = dir.join(DB_FILE);
        if !db.is_file() {
            return Err(StoreError::NotAStore(dir.to_path_buf()));
        }
        let mut conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| sql_err(dir, e))?;
        configure(&conn).map_err(|e| sql_err(dir, e))?;
        // The key must be the one this store was created with (another
        // device's key would sign what every peer refuses): checked before
        // anything is written, a schema upgrade included.
        let mut identity = load_key(&conn, dir)?;
        schema::migrate(&mut conn, dir)?;
        let meta = |k: &str| -> Result<String, StoreError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()
                .map_err(|e| sql_err(dir, e))?
                .ok_or_else(|| StoreError::NotAStore(dir.to_path_buf()))
        };
        let device_id = Uuid::parse_str(&meta("device_id")?)
            .map_err(|e| StoreError::Crypto(format!("bad device id in store: {e}")))?;
        identity.device_id = device_id;
        identity.name = meta("name")?;
        // A database file other than the one last recorded: the store was
        // put back from a copy (a restore). It takes a fresh actor epoch
        // before any write. Best effort: a store that cannot be written
        // (read-only) is opened as it is, and sync detects the restore.
        if let Some(file) = restore::file_id(&db)
            && restore::file_changed(&conn, &file).unwrap_or(false)
            && let Ok(tx) = conn.transaction_with_behavior(TransactionBehavior::Immediate)
            && restore::take_file(&tx, device_id, &file).is_ok()
        {
            let _ = tx.commit();
        }
        let store = Store::from_parts(dir, conn, identity);
        store.reload_reference()?;
        Ok(store)
    }

    fn from_parts(dir: &Path, conn: Connection, identity: Identity) -> Store {
        Store::from_backing(
            dir,
            Backing::Sqlite {
                conn: Mutex::new(conn),
                readers: Mutex::new(Vec::new()),
            },
            identity,
        )
    }

    fn from_backing(dir: &Path, db: Backing, identity: Identity) -> Store {
        Store {
            dir: dir.to_path_buf(),
            db,
            identity,
            registry: RwLock::new(Arc::new(Registry::mali_default())),
            forms: RwLock::new(Arc::new(Forms::builtin())),
        }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This device's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The FMP registry in force: the latest synced `registry` document,
    /// or the built-in one when there is none (a snapshot: it does not
    /// change under the caller).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The questionnaire definitions known to this store: the built-in
    /// ones and every synced `form` document (a snapshot).
    pub fn forms(&self) -> Arc<Forms> {
        self.forms.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the registry and forms again from their documents (after a
    /// sync applied changes to them). A document that does not read as a
    /// valid registry or form is skipped: the previous one stays in force.
    pub fn reload_reference(&self) -> Result<(), StoreError> {
        let (registry, forms) = self.snapshot(|r| r.reference())?;
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
        *self.forms.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(forms);
        Ok(())
    }

    /// Sets the FMP registry (HQ): writes the difference with the registry
    /// document as one change signed by this device, which reaches every
    /// replica by sync. Refused on a device enrolled for given FMPs (a
    /// phone or a regional hub may not rewrite the registry). Returns
    /// false if nothing changed.
    pub fn set_registry(&self, registry: &Registry) -> Result<bool, StoreError> {
        registry
            .check()
            .map_err(|e| StoreError::Reference(e.to_string()))?;
        let changed = self.transaction(|w| {
            self.check_unrestricted(w, "the FMP registry")?;
            let mut d = self.load_ref_doc(w, refdoc::REGISTRY_ID)?;
            refdoc::write_registry(&mut d, registry)?;
            self.save_ref_doc(
                w,
                refdoc::REGISTRY_KIND,
                refdoc::REGISTRY_ID,
                &mut d,
                refdoc::REGISTRY_OP,
            )
        })?;
        self.reload_reference()?;
        Ok(changed)
    }

    /// Publishes a form version (HQ), as its own document, synced to every
    /// replica. Publishing the same form again is a no-op (false); another
    /// form under an existing id and version is refused. Refused on a
    /// device enrolled for given FMPs.
    pub fn add_form(&self, form: &Form) -> Result<bool, StoreError> {
        self.snapshot(|r| self.check_unrestricted(r, "forms"))?;
        let mut known = (*self.forms()).clone();
        if known.get(&form.id, form.version) == Some(form) {
            return Ok(false);
        }
        known
            .insert(form.clone())
            .map_err(|e| StoreError::Reference(e.to_string()))?;
        let id = refdoc::form_doc_id(&form.id, form.version);
        let changed = self.transaction(|w| {
            self.check_unrestricted(w, "forms")?;
            let mut d = self.load_ref_doc(w, &id)?;
            refdoc::write_form(&mut d, form)?;
            self.save_ref_doc(w, refdoc::FORM_KIND, &id, &mut d, refdoc::FORM_OP)
        })?;
        self.reload_reference()?;
        Ok(changed)
    }

    fn check_unrestricted(&self, r: &Reader<'_>, what: &str) -> Result<(), StoreError> {
        match r.enrolled_fmps()? {
            Some(fmps) => Err(StoreError::Reference(format!(
                "this device is enrolled for {} only; only HQ (a store with no FMP \
                 restriction) may change {what}; nothing was changed",
                fmps.join(", ")
            ))),
            None => Ok(()),
        }
    }

    fn load_ref_doc(&self, r: &Reader<'_>, id: &str) -> Result<AutoCommit, StoreError> {
        let d = match r.document(id)? {
            Some((_, data)) => AutoCommit::load(&data).map_err(DocError::from)?,
            None => AutoCommit::new(),
        };
        Ok(d.with_actor(self.actor(r)?))
    }

    /// The automerge actor this store writes under now: the device id at
    /// the store's actor epoch (a fresh one after a detected restore).
    fn actor(&self, r: &Reader<'_>) -> Result<automerge::ActorId, StoreError> {
        let epoch = r.actor_epoch()?;
        Ok(doc::actor_for_epoch(self.identity.device_id, epoch))
    }

    /// Commits, saves and logs a reference document's change; false if none.
    fn save_ref_doc(
        &self,
        w: &Writer<'_>,
        kind: &str,
        id: &str,
        d: &mut AutoCommit,
        op: &str,
    ) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_millis();
        if refdoc::commit(d, op, now).is_none() {
            return Ok(false);
        }
        let change = d
            .get_last_local_change()
            .ok_or_else(|| StoreError::Patch("no change to log".into()))?;
        let new = [self.local_change(&change, op, now)];
        w.save_document(kind, id, &d.save(), &new, None)?;
        Ok(true)
    }

    /// The FMPs this device is enrolled for (set when it joins a hub);
    /// `None`: not restricted.
    pub fn enrolled_fmps(&self) -> Result<Option<Vec<String>>, StoreError> {
        self.snapshot(|r| r.enrolled_fmps())
    }

    /// Restricts `record` and `edit` to these FMPs (`None`: lifts it).
    pub fn set_enrolled_fmps(&self, fmps: Option<&[String]>) -> Result<(), StoreError> {
        self.transaction(|w| w.set_enrolled_fmps(fmps))
    }

    /// The role this device was enrolled with (set when it joins a hub);
    /// `None`: not set (never joined, or joined before roles existed), and
    /// not restricted here: the hubs it syncs with judge its changes.
    pub fn role(&self) -> Result<Option<Role>, StoreError> {
        self.snapshot(|r| r.role())
    }

    /// Renames the device of the store at `dir` to a name hubs accept,
    /// before it joined a hub (a hub knows a joined device by its name):
    /// the way out when a hub refuses the name at join. Nothing else changes.
    pub fn rename(dir: &Path, name: &str) -> Result<(), StoreError> {
        crate::names::valid_name(name).map_err(|reason| StoreError::BadName { reason })?;
        let store = Store::open(dir)?;
        store.transaction(|w| {
            if let Some(up) = ops::HubReads::upstream(&**w)? {
                return Err(StoreError::RenameJoined { hub: up.name });
            }
            w.put_setting("name", name)
        })
    }

    /// Sets the role this device was enrolled with (`None`: clears it).
    pub fn set_role(&self, role: Option<Role>) -> Result<(), StoreError> {
        self.transaction(|w| w.set_role(role))
    }

    /// Checks a submission's state by the rules a replica applies to what
    /// it receives (no clock rule): `Err` names the failing fields of a
    /// record that two valid concurrent edits merged into an invalid one.
    pub fn check_received(&self, s: &StoredSubmission) -> Result<(), ValidationError> {
        roles::check_state(s, &self.registry(), &self.forms())
    }

    /// Submissions (not deleted) flagged for review: conflicting
    /// concurrent values, or a merged state that fails validation.
    pub fn flagged(&self) -> Result<i64, StoreError> {
        self.snapshot(|r| r.flagged())
    }

    /// Refuses `what` on a colleague's submission if this device is an enumerator's phone.
    fn check_owner(&self, r: &Reader<'_>, id: Uuid, what: &str) -> Result<(), StoreError> {
        if r.role()? != Some(Role::Enumerator) {
            return Ok(());
        }
        match r.record_author(id)? {
            Some(a) if a != self.identity.device_id => Err(StoreError::NotAllowed(format!(
                "this device is an enumerator's phone: it may {what} only the submissions it \
                 recorded, and {id} was recorded by device {a}"
            ))),
            _ => Ok(()),
        }
    }

    fn check_scope(&self, r: &Reader<'_>, fmp: &str) -> Result<(), StoreError> {
        match r.enrolled_fmps()? {
            Some(allowed) if !allowed.iter().any(|f| f == fmp) => Err(StoreError::OutOfScope {
                fmp: fmp.to_string(),
                allowed,
            }),
            _ => Ok(()),
        }
    }

    /// Validates and stores a new submission; returns its id.
    pub fn record(&self, sub: Submission) -> Result<Uuid, StoreError> {
        self.record_at(sub, Utc::now())
    }

    /// `record` with an explicit device clock (tests and simulations).
    pub fn record_at(&self, sub: Submission, now: DateTime<Utc>) -> Result<Uuid, StoreError> {
        self.transaction(|w| self.record_in(w, sub, now))
    }

    /// Records many submissions in one transaction: all are stored, or none
    /// (the first refusal is returned). For imports and bulk loads.
    pub fn record_many(
        &self,
        subs: Vec<Submission>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.transaction(|w| {
            subs.into_iter()
                .map(|s| self.record_in(w, s, now))
                .collect()
        })
    }

    fn record_in(
        &self,
        w: &Writer<'_>,
        mut sub: Submission,
        now: DateTime<Utc>,
    ) -> Result<Uuid, StoreError> {
        validate(&sub, &self.registry(), &self.forms(), now)?;
        self.check_scope(w, &sub.fmp)?;
        let id = sub.id.unwrap_or_else(Uuid::now_v7);
        sub.id = Some(id);
        let change = doc::new_submission_change(
            self.actor(w)?,
            id,
            &sub,
            Op::Record,
            now.timestamp_millis(),
        );
        // Validation's size limits keep every record under this; a change
        // past it could never fit the smallest sync message.
        let size = change.raw_bytes().len();
        if size > MAX_RECORD_CHANGE_BYTES {
            return Err(StoreError::Invalid(ValidationError {
                errors: vec![crate::validate::FieldError {
                    field: "notes".into(),
                    message: format!(
                        "the record takes {size} bytes, more than the {MAX_RECORD_CHANGE_BYTES} that fit the smallest sync message; shorten the notes or place names"
                    ),
                }],
            }));
        }
        let id_str = id.to_string();
        // The state just written is the validated submission itself: no
        // review, not deleted, no conflicts (materializing it from the
        // document gives the same row; see the store's tests).
        let state = StoredSubmission {
            submission: sub,
            review: None,
            deleted: false,
            conflicts: Vec::new(),
        };
        let new = [self.local_change(&change, Op::Record.as_str(), now.timestamp_millis())];
        // An id already stored is refused as a duplicate (no separate lookup).
        // A document of one change is stored as the change's bytes (read
        // back by `AutoCommit::load` as a saved document is).
        w.insert_document(
            "submission",
            &id_str,
            change.raw_bytes(),
            &new,
            Some((&state, false)),
        )?;
        Ok(id)
    }

    /// Applies a JSON merge patch (RFC 7386) to a submission's fields, re-validated as a whole.
    pub fn edit(
        &self,
        id: Uuid,
        patch: &serde_json::Value,
    ) -> Result<StoredSubmission, StoreError> {
        let now = Utc::now();
        let serde_json::Value::Object(pm) = patch else {
            return Err(StoreError::Patch(
                "a patch is a JSON object of the fields to change".into(),
            ));
        };
        if let Some(v) = pm.get("id")
            && v.as_str() != Some(id.to_string().as_str())
        {
            return Err(StoreError::Patch(
                "id: a submission's id cannot be changed".into(),
            ));
        }
        self.transaction(|w| {
            let mut d = self.load_doc(w, id)?;
            self.check_owner(w, id, "edit")?;
            let current = doc::read_submission(&d)?;
            if current.deleted {
                return Err(StoreError::Deleted(id.to_string()));
            }
            let mut json = current.submission.to_value();
            merge_patch(&mut json, patch);
            let new = Submission::from_value(json)?;
            validate(&new, &self.registry(), &self.forms(), now)?;
            self.check_scope(w, &new.fmp)?;
            doc::edit_submission(&mut d, &new)?;
            doc::resolve_data_conflicts(&mut d)?;
            self.save_doc(w, id, &mut d, Op::Edit, now)
        })
    }

    /// Marks a submission deleted (the tombstone is kept for sync).
    pub fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let now = Utc::now();
        self.transaction(|w| {
            let mut d = self.load_doc(w, id)?;
            self.check_owner(w, id, "delete")?;
            if doc::read_submission(&d)?.deleted {
                return Err(StoreError::Deleted(id.to_string()));
            }
            doc::set_deleted(&mut d)?;
            self.save_doc(w, id, &mut d, Op::Delete, now)?;
            Ok(())
        })
    }

    /// Records a supervisor's review; it also settles any conflicting fields on the shown values.
    pub fn review(
        &self,
        id: Uuid,
        status: ReviewStatus,
        comment: &str,
    ) -> Result<StoredSubmission, StoreError> {
        let now = Utc::now();
        self.transaction(|w| {
            if w.role()? == Some(Role::Enumerator) {
                return Err(StoreError::NotAllowed(
                    "this device is an enumerator's phone: only a supervisor's hub or HQ \
                     may review submissions"
                        .into(),
                ));
            }
            let mut d = self.load_doc(w, id)?;
            if doc::read_submission(&d)?.deleted {
                return Err(StoreError::Deleted(id.to_string()));
            }
            let review = Review {
                status,
                comment: comment.to_string(),
                by: self.identity.device_id.to_string(),
                at: now,
            };
            doc::set_review(&mut d, &review)?;
            doc::resolve_conflicts(&mut d)?;
            self.save_doc(w, id, &mut d, Op::Review, now)
        })
    }

    /// The current state of one submission, with its conflicts.
    pub fn get(&self, id: Uuid) -> Result<StoredSubmission, StoreError> {
        self.snapshot(|r| {
            let d = submission_doc(r, id)?;
            Ok(doc::read_submission(&d)?)
        })
    }

    /// Submissions matching a filter, ordered by observation time then id.
    pub fn list(&self, filter: &Filter) -> Result<Vec<StoredSubmission>, StoreError> {
        self.snapshot(|r| {
            let rows = r.list_rows(filter)?;
            rows.into_iter()
                .map(|(mut s, has_conflicts)| {
                    if has_conflicts && let Some(id) = s.submission.id {
                        s.conflicts = doc::read_submission(&submission_doc(r, id)?)?.conflicts;
                    }
                    Ok(s)
                })
                .collect()
        })
    }

    /// The changes of one submission, oldest first.
    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
        self.snapshot(|r| {
            let rows = r.history_rows(id)?;
            if rows.is_empty() {
                return Err(StoreError::NotFound(id.to_string()));
            }
            // The fields each change wrote, read against the document.
            let d = submission_doc(r, id).ok();
            Ok(rows
                .into_iter()
                .map(|(mut e, bytes)| {
                    if e.op != Op::Record.as_str()
                        && let Some(d) = &d
                    {
                        e.fields = doc::fields_touched(d, &bytes);
                    }
                    e
                })
                .collect())
        })
    }

    fn load_doc(&self, r: &Reader<'_>, id: Uuid) -> Result<AutoCommit, StoreError> {
        let d = submission_doc(r, id)?;
        Ok(d.with_actor(self.actor(r)?))
    }

    /// Commits the document's pending ops, saves it, logs the change, rematerializes.
    fn save_doc(
        &self,
        w: &Writer<'_>,
        id: Uuid,
        d: &mut AutoCommit,
        op: Op,
        now: DateTime<Utc>,
    ) -> Result<StoredSubmission, StoreError> {
        if doc::commit(d, op, now.timestamp_millis()).is_none() {
            return Ok(doc::read_submission(d)?); // nothing changed
        }
        let change = d
            .get_last_local_change()
            .ok_or_else(|| StoreError::Patch("no change to log".into()))?;
        let state = doc::read_submission(d)?;
        let invalid = self.check_received(&state).is_err();
        let new = [self.local_change(&change, op.as_str(), now.timestamp_millis())];
        let data = d.save();
        w.save_document(
            "submission",
            &id.to_string(),
            &data,
            &new,
            Some((&state, invalid)),
        )?;
        Ok(state)
    }

    /// A change made here (at `time`, ms), as the log takes it.
    fn local_change<'c>(
        &self,
        change: &'c automerge::Change,
        op: &'c str,
        time: i64,
    ) -> log::NewChange<'c> {
        log::NewChange {
            hash: change.hash().0,
            author: self.identity.device_id,
            time,
            op,
            bytes: change.raw_bytes(),
            origin: None,
            bundle: None,
        }
    }
}

mod query;

#[cfg(test)]
mod tests;

/// Submission `id`'s document; [`StoreError::NotFound`] if no submission has it.
fn submission_doc(r: &Reader<'_>, id: Uuid) -> Result<AutoCommit, StoreError> {
    let data = match r.document(&id.to_string())? {
        Some((kind, data)) if kind == "submission" => data,
        _ => return Err(StoreError::NotFound(id.to_string())),
    };
    Ok(AutoCommit::load(&data).map_err(DocError::from)?)
}

/// RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(tm) = target {
                for (k, v) in pm {
                    if v.is_null() {
                        tm.remove(k);
                    } else {
                        merge_patch(tm.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Maps a SQLite error to a store error naming the store, read-only cases apart.
pub(crate) fn sql_err(dir: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied) => StoreError::ReadOnly {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite {
            path: dir.to_path_buf(),
            source: e,
        },
    }
}

impl From<refdoc::RefDocError> for StoreError {
    fn from(e: refdoc::RefDocError) -> StoreError {
        StoreError::RefDoc(Box::new(e))
    }
}
