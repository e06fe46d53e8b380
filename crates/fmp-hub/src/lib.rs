//! fmp-hub: the hub server (tokio/axum) that phones and lower hubs sync
//! with, and the client transport (reqwest) they use, over the `fmp-sync`
//! protocol. The protocol knows nothing of HTTP; this crate moves its bytes,
//! authenticates devices, enrolls them and enforces limits.
//!
//! - `server.rs`: [`server::app`] (the router), handlers, limits, JSON errors, the listener.
//! - `client.rs`: [`client::join`] and [`client::sync`] (retries, resume, quarantine, progress, stall timeout).
//! - `auth.rs`: signed requests (device key over method, path, time, nonce, body hash), replay cache.
//! - `enroll.rs`: one-time enrollment codes (only their hash is stored).
//! - `db.rs`: the hub's tables through the store's API (codes, enrolled devices, upstream hub, quarantine) and the [`fmp_sync::Trust`] they make.
//! - `tls.rs`: rustls server configuration, TLS listener, the client's pinned-certificate verifier.
//! - `status.rs`: what `fmp status` and `fmp devices` show.
//! - `logging.rs`: the request log (text or JSON lines, stderr or a file).
//! - `error.rs`: [`HubError`].
//! - `bin/bench.rs`: the load benchmark (`fmp-hub-bench`).

pub mod auth;
pub mod client;
pub mod db;
pub mod enroll;
pub mod error;
pub mod logging;
pub mod server;
pub mod status;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::HubError;
/// The sync protocol's default message size, and a hub's refusal of one change.
pub use fmp_sync::{DEFAULT_MAX_BYTES, wire::Refusal};
pub use server::{Limits, Load, app};

/// How to run a hub.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The store directory.
    pub store: PathBuf,
    /// Address to listen on, e.g. `127.0.0.1:0`.
    pub listen: String,
    /// PEM certificate chain and key for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Limits.
    pub limits: Limits,
}

/// A hub running in this process (its own tokio runtime on a thread).
#[derive(Debug)]
pub struct HubHandle {
    addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), HubError>>>,
}

impl HubHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub fn shutdown(mut self) -> Result<(), HubError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), HubError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(HubError::Protocol("the hub thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for HubHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Starts a hub on `addr` (plain HTTP) over the store in `store_dir`.
pub fn serve(store_dir: &Path, addr: &str) -> Result<HubHandle, HubError> {
    serve_with(ServeOptions {
        store: store_dir.to_path_buf(),
        listen: addr.to_string(),
        tls: None,
        limits: Limits::default(),
    })
}

/// Starts a hub with options; returns once it listens.
pub fn serve_with(opts: ServeOptions) -> Result<HubHandle, HubError> {
    let store = fmp_core::store::Store::open(&opts.store)?;
    let state = server::Hub::new(store, opts.limits.clone())?;
    let tls = match &opts.tls {
        Some((c, k)) => Some(tls::server_config(c, k)?),
        None => None,
    };
    let is_tls = tls.is_some();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<SocketAddr, HubError>>();
    let listen = opts.listen.clone();
    let thread = std::thread::Builder::new()
        .name("fmp-hub".into())
        .spawn(move || -> Result<(), HubError> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(HubError::Runtime)?;
            let tx = addr_tx.clone();
            let r = rt.block_on(server::run(
                state,
                &listen,
                tls,
                move |a| {
                    let _ = tx.send(Ok(a));
                },
                async move {
                    let _ = stop_rx.await;
                },
            ));
            if let Err(e) = &r {
                let _ = addr_tx.send(Err(HubError::Protocol(e.to_string())));
            }
            r
        })
        .map_err(HubError::Runtime)?;
    let addr = addr_rx
        .recv()
        .map_err(|_| HubError::Protocol("the hub thread stopped before listening".into()))??;
    Ok(HubHandle {
        addr,
        tls: is_tls,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Runs a hub in the foreground until SIGINT or SIGTERM (the `fmp serve`
/// command); `on_listening` gets the bound address.
pub fn serve_until_signal(
    opts: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), HubError> {
    let store = fmp_core::store::Store::open(&opts.store)?;
    let _serving = serve_lock(&opts.store)?;
    let state = server::Hub::new(store, opts.limits.clone())?;
    let store = state.store().clone();
    let tls = match &opts.tls {
        Some((c, k)) => Some(tls::server_config(c, k)?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(HubError::Runtime)?;
    let r = rt.block_on(server::run(state, &opts.listen, tls, on_listening, async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    }));
    if let Err(e) = &r {
        tracing::error!(target: "fmp_hub::server", error = %e, "the hub stopped on an error");
    }
    drop(rt);
    // A clean stop leaves the whole store in its database file.
    if let Err(e) = store.checkpoint() {
        tracing::warn!(target: "fmp_hub::server", error = %e, "could not checkpoint the store at stop");
    }
    r
}

/// Holds `serve.lock` in the store directory while a hub serves it: a
/// second `fmp serve` on the same store is refused at start (two processes
/// would each keep their own nonce and trust caches and rate limits).
fn serve_lock(dir: &std::path::Path) -> Result<std::fs::File, HubError> {
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| HubError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(HubError::Usage(format!(
            "another `fmp serve` is already serving the store at {}; stop it first (one hub process per store)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(source)) => Err(HubError::Io { path, source }),
    }
}
