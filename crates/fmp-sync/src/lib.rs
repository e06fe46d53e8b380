//! fmp-sync: the replica-to-replica protocol of fmp. It replicates each
//! store's change log (signed bundles of automerge changes) with a cursor
//! per peer, falls back to range-based set reconciliation for replicas with
//! no shared cursor, and does no I/O of its own: callers move the bytes
//! (in memory in tests, over HTTP in the hub). See
//! `docs/adr/0001-sync-unit-and-wire.md` for the decisions and figures.
//!
//! It names no table and writes no SQL: it reads and writes the store
//! through fmp-core's [`fmp_core::store::Reader`] and
//! [`fmp_core::store::Writer`] (`fmp_core::store::log`), and converts
//! the store's rows to its wire types at its edge.
//!
//! - `wire.rs`: the versioned messages (postcard + zstd) and their limits.
//! - `session.rs`: the [`Client`] that drives a sync and [`respond`], the
//!   stateless answer of the other side; per-peer cursors.
//! - `log.rs`: reading the change log into batches that fit a message.
//! - `apply.rs`: verifying a received batch (all or nothing) and applying
//!   it change by change (scope refusals, pending dependencies).
//! - `bundle.rs`: signed bundles of one author's change hashes; sealing.
//! - `trust.rs`: the caller's [`Trust`], device [`Certificate`]s (and
//!   which one a store keeps), the trust model.
//! - `reconcile.rs`: range-based set reconciliation over `(time, hash)`.
//! - `error.rs`: [`SyncError`] and [`wire::Refusal`].
//!
//! Modules depend one way: `error` and `reconcile` on none of the others;
//! `trust` and `bundle` on `error`; `wire` on `error`, `reconcile` and
//! `trust`; `log` and `apply` on those; `session` on all; the change hash
//! is fmp-core's `store::log::Hash` (re-exported as `wire::Hash`).

mod apply;
pub mod bundle;
pub mod error;
mod log;
pub mod reconcile;
pub mod session;
pub mod trust;
pub mod wire;

pub use apply::{
    MISSING_DEPENDENCY, RefusalKind, UNVERIFIED, Waiting, may_pass_later, refusal_kind,
};
pub use error::SyncError;
pub use session::{
    Ahead, AlsoInTransaction, Answer, Built, Client, Cursor, Outcome, Report, RespondOptions,
    cursor, forget_peer, respond, respond_counted, respond_decoded, respond_with,
};
pub use trust::{AuthorInfo, Certificate, Role, StaticTrust, Trust};
pub use wire::{DEFAULT_MAX_BYTES, PROTOCOL_VERSION, Request, Response};

use fmp_core::store::Store;
use fmp_core::store::ops::*;

/// Syncs two stores in memory until each has what the other had (`a` as
/// client, `b` as responder); `b` judges with `trust_b`, `a` with `trust_a`.
/// Pipelined ([`Client::run_pipelined`]): `b` answers the next request on
/// another thread while `a` stores the last answer.
pub fn sync_in_memory(
    a: &Store,
    trust_a: &dyn Trust,
    b: &Store,
    trust_b: &(dyn Trust + Sync),
    max_bytes: u32,
) -> Result<Report, SyncError> {
    Client::new(a, trust_a, b.identity().device_id)
        .with_max_bytes(max_bytes)
        .run_pipelined(|req| respond(b, trust_b, &req))
}

/// [`sync_in_memory`] one request after another ([`Client::run`]): the
/// next request is built only once the last answer is stored.
pub fn sync_in_memory_serial(
    a: &Store,
    trust_a: &dyn Trust,
    b: &Store,
    trust_b: &dyn Trust,
    max_bytes: u32,
) -> Result<Report, SyncError> {
    Client::new(a, trust_a, b.identity().device_id)
        .with_max_bytes(max_bytes)
        .run(|req| respond(b, trust_b, &req))
}

/// What waits in `store`'s `pending` table, and why: changes held back for
/// scope, behind another waiting change, or missing a dependency. A hub
/// shows it in `fmp status`, so nothing waits unseen.
pub fn waiting(store: &Store) -> Result<Waiting, SyncError> {
    Ok(store.snapshot(|r| r.waiting())?)
}
