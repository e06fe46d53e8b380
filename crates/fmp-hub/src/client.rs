//! The client side: [`join`] a hub with an enrollment code, and [`sync`]
//! with it over HTTP(S), with retries (exponential backoff, full jitter),
//! resumption from the stored cursors after a cut, quarantine of refused
//! changes, and progress through a callback. Blocking calls (each runs its
//! own small tokio runtime): call them from a thread, not from async code.
//!
//! A link that goes silent (no FIN, no RST: packets just stop, the common
//! failure of 2G links) is abandoned after the stall timeout
//! ([`SyncOptions::stall_timeout`]) rather than the whole request timeout,
//! and retried like any network failure: the answer must begin within the
//! stall timeout (plus the time the request takes to send at
//! [`SLOWEST_UPLINK`]) and never pause longer than it.
//!
//! A sync can be stopped from another thread with a [`CancelToken`]
//! ([`SyncOptions::cancel`]): the request in flight is abandoned at once, as
//! is a backoff wait, and the sync fails with [`HubError::Cancelled`]; what
//! was answered and stored before is kept (the cursors are committed per
//! round trip), so the next sync resumes from there.

use std::sync::Arc;
use std::time::Duration;

use fmp_core::store::Store;
use fmp_sync::wire::Refusal;
use fmp_sync::{Certificate, Client};
use rand::Rng;
use uuid::Uuid;

use crate::auth::Signed;
use crate::db::{self, Upstream};
use crate::error::HubError;
use crate::server::{
    ErrorBody, H_PARTIAL, HUB_PATH, HqIdentity, HubInfo, JOIN_PATH, JoinRequest, JoinResponse,
    SYNC_PATH,
};
use crate::tls::{self, Pinned};

/// What [`join`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The hub's device id.
    pub hub: Uuid,
    /// The hub's name.
    pub hub_name: String,
    /// FMPs this device may write.
    pub fmps: Vec<String>,
    /// Whether it may enroll devices of its own.
    pub may_enroll: bool,
    /// The role the hub granted (kept in the store: an enumerator's phone
    /// refuses to review, or to change a colleague's submission).
    pub role: fmp_sync::Role,
}

/// The default [`SyncOptions::stall_timeout`]: 30 s.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times `join` sends its request before giving up on a link
/// that keeps failing.
pub const JOIN_ATTEMPTS: u32 = 4;

/// The slowest uplink a request is given time for before the stall timeout
/// starts to count, in bytes per second (8 kbit/s, GPRS at its worst).
pub const SLOWEST_UPLINK: u64 = 1_000;

/// Stops a running [`sync`] from another thread: cheap to clone, every
/// clone cancels the same sync. Once cancelled it stays cancelled.
#[derive(Debug, Clone)]
pub struct CancelToken {
    cancelled: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> CancelToken {
        CancelToken::new()
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken {
            cancelled: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Cancels the sync using this token (or the next one to start with it).
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves once the token is cancelled (at once if it already is).
    async fn cancelled(&self) {
        let mut rx = self.cancelled.subscribe();
        // The sender lives as long as `self`: `wait_for` never fails here.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Runs `fut` on `rt` unless `cancel` fires first: then the future (a
/// request in flight) is dropped at once and the result is `None`.
fn unless_cancelled<T>(
    rt: &tokio::runtime::Runtime,
    cancel: Option<&CancelToken>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match cancel {
        None => Some(rt.block_on(fut)),
        Some(c) => rt.block_on(async {
            tokio::select! {
                biased;
                () = c.cancelled() => None,
                r = fut => Some(r),
            }
        }),
    }
}

/// The wait before retry `attempt` (1, 2, …): `base` doubled each time up
/// to `max`, with full jitter so devices cut by the same drop spread out.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let cap = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    cap.mul_f64(rand::rng().random_range(0.0..1.0))
}

fn runtime() -> Result<tokio::runtime::Runtime, HubError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HubError::Runtime)
}

fn http(
    url: &str,
    pin: Option<Vec<u8>>,
    timeout: Duration,
    stall: Duration,
) -> Result<(reqwest::Client, Option<std::sync::Arc<Pinned>>), HubError> {
    tls::install_provider();
    // Stalls are detected in `post`, not with reqwest's `read_timeout`:
    // that one runs from the start of a request to the answer's headers
    // without resetting while the request goes out, so it would abandon a
    // slow upload that is still alive. The kernel helps where it can see
    // the silence (when nothing on the way acknowledges for the hub):
    // keepalive probes on an idle connection and, on Linux and Android, a
    // connection whose sent data stays unacknowledged for the stall timeout
    // (at least reqwest's 30 s, as queues on a 2G link can hold seconds) is
    // closed.
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(15))
        .no_proxy();
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    {
        b = b.tcp_user_timeout(stall.max(Duration::from_secs(30)));
    }
    #[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
    let _ = stall;
    let mut verifier = None;
    if url.starts_with("https://") {
        let v = Pinned::new(pin);
        b = b.use_preconfigured_tls(v.client_config()?);
        verifier = Some(v);
    }
    let c = b.build().map_err(|e| HubError::Network {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    Ok((c, verifier))
}

fn base(url: &str) -> Result<String, HubError> {
    let u = url.trim().trim_end_matches('/');
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(HubError::Usage(format!(
            "{url} is not a hub address; use http://HOST:PORT or https://HOST:PORT"
        )));
    }
    Ok(u.to_string())
}

enum SendError {
    Network(String),
    /// Nothing came from the hub within the stall timeout.
    Stalled(Duration),
    Refused(u16, ErrorBody),
}

impl SendError {
    fn into_hub(self, url: &str) -> HubError {
        match self {
            SendError::Network(detail) => HubError::Network {
                url: url.to_string(),
                detail,
            },
            SendError::Stalled(stall) => HubError::Network {
                url: url.to_string(),
                detail: format!(
                    "the link went silent: nothing from the hub within the stall timeout of {:.1} s",
                    stall.as_secs_f64()
                ),
            },
            SendError::Refused(status, b) => HubError::Refused {
                status,
                error: b.error,
                reason: b.reason,
            },
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// How long the answer to a request of `len` bytes may take to begin: the
/// stall timeout after the request went out at [`SLOWEST_UPLINK`] (a
/// request lands in socket buffers at once, so its progress on the link
/// cannot be seen from here).
fn answer_within(stall: Duration, len: usize) -> Duration {
    stall.saturating_add(Duration::from_millis(
        u64::try_from(len).unwrap_or(u64::MAX).saturating_mul(1000) / SLOWEST_UPLINK,
    ))
}

/// Sends one signed request; the answer's body. A silent link fails with
/// [`SendError::Stalled`] after `stall` (see [`answer_within`]).
async fn post(
    http: &reqwest::Client,
    store: &Store,
    url: &str,
    path: &str,
    body: Vec<u8>,
    extra: Option<(&str, &str)>,
    stall: Duration,
) -> Result<Vec<u8>, SendError> {
    let mut time = chrono::Utc::now().timestamp();
    let mut resp;
    let mut corrected = false;
    loop {
        let signed = Signed::at(store.identity(), "POST", path, &body, time);
        let mut rb = http.post(format!("{url}{path}")).body(body.clone());
        for (k, v) in signed.headers() {
            rb = rb.header(k, v);
        }
        if let Some((k, v)) = extra {
            rb = rb.header(k, v);
        }
        resp = tokio::time::timeout(answer_within(stall, body.len()), rb.send())
            .await
            .map_err(|_| SendError::Stalled(stall))?
            .map_err(|e| SendError::Network(chain(&e)))?;
        // A device clock set wrong (months or years off, common on phones
        // in the field) makes every signed request stale: sign once more
        // with the hub's clock from its `Date` header. The nonce window
        // still holds, on the hub's clock.
        if corrected || resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            break;
        }
        let Some(hub_time) = hub_clock(&resp) else {
            break;
        };
        if (hub_time - time).abs() <= crate::auth::WINDOW_SECS / 2 {
            break;
        }
        time = hub_time;
        corrected = true;
    }
    let status = resp.status();
    // The body as it comes: the stall timeout restarts with every piece,
    // so a slow answer that keeps coming is never abandoned.
    let mut bytes = Vec::new();
    while let Some(piece) = tokio::time::timeout(stall, resp.chunk())
        .await
        .map_err(|_| SendError::Stalled(stall))?
        .map_err(|e| SendError::Network(chain(&e)))?
    {
        bytes.extend_from_slice(&piece);
    }
    if status.is_success() {
        return Ok(bytes);
    }
    let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
        error: format!("http_{}", status.as_u16()),
        reason: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        refused: Vec::new(),
    });
    Err(SendError::Refused(status.as_u16(), body))
}

/// The hub's clock from a response's `Date` header, seconds since the epoch.
fn hub_clock(resp: &reqwest::Response) -> Option<i64> {
    let date = resp.headers().get("date")?.to_str().ok()?;
    Some(chrono::DateTime::parse_from_rfc2822(date).ok()?.timestamp())
}

/// Joins the hub at `url` with a one-time `code`: registers this store's
/// public key, checks the certificate the hub issues, and keeps the hub's
/// address, key, TLS certificate (pinned) and the granted FMPs.
pub fn join(store: &Store, url: &str, code: &str) -> Result<Joined, HubError> {
    let url = base(url)?;
    db::ensure_tables(store)?;
    let me = store.identity();
    let req = JoinRequest {
        code: code.to_string(),
        name: me.name.clone(),
        public_key: hex::encode(me.public_key()),
    };
    let body = serde_json::to_vec(&req).map_err(|e| HubError::Protocol(e.to_string()))?;
    let (client, verifier) = http(&url, None, Duration::from_secs(30), DEFAULT_STALL_TIMEOUT)?;
    let rt = runtime()?;
    // A join cut on the way is asked again: the hub answers the same
    // device with the same code again (its first answer may have been lost
    // after the hub enrolled it), and refuses any other device.
    let mut attempt = 0u32;
    let bytes = loop {
        let sent = rt
            .block_on(post(
                &client,
                store,
                &url,
                JOIN_PATH,
                body.clone(),
                None,
                DEFAULT_STALL_TIMEOUT,
            ))
            .map_err(|e| e.into_hub(&url));
        match sent {
            Ok(b) => break b,
            Err(e) if retryable(&e) && attempt + 1 < JOIN_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(backoff(
                    Duration::from_millis(500),
                    Duration::from_secs(8),
                    attempt,
                ));
            }
            Err(e) => return Err(e),
        }
    };
    let resp: JoinResponse = serde_json::from_slice(&bytes)
        .map_err(|e| HubError::Protocol(format!("join answer: {e}")))?;
    let hub_key = hex::decode(&resp.hub_public_key)
        .map_err(|e| HubError::Protocol(format!("hub key: {e}")))?;
    let cert: Certificate = resp.certificate;
    if cert.device != me.device_id
        || cert.public_key != me.public_key()
        || cert.issuer != resp.hub
        || !fmp_core::store::identity::verify(&hub_key, &cert.payload(), &cert.sig)
    {
        return Err(HubError::Protocol(
            "the certificate the hub issued does not match this device or the hub's key".into(),
        ));
    }
    // HQ's key is the only authority for the registry and forms: pinned
    // here from the chain (a hub that names none is pinned at a later sync).
    if let Some(h) = &resp.hq {
        let hq = authority_of(h, resp.hub, &hub_key)?;
        // Before anything is written: a store pinned to another HQ refuses it.
        if let Some(old) = store.pinned_authority()?
            && old != hq
        {
            return Err(HubError::from(
                fmp_core::store::StoreError::OtherAuthority {
                    pinned: old.device_id,
                    offered: hq.device_id,
                },
            ));
        }
        store.pin_authority(&hq)?;
    }
    let up = Upstream {
        hub: resp.hub,
        url: url.clone(),
        name: resp.hub_name.clone(),
        public_key: hub_key,
        fmps: Some(resp.fmps.clone()),
        tls_cert: verifier.and_then(|v| v.seen()),
    };
    store.write(|tx| -> Result<(), HubError> {
        db::set_upstream(tx, &up)?;
        // Kept so `enroll-code` can refuse on a store that may not enroll.
        fmp_core::store::enrollment::set_upstream_may_enroll(tx, resp.may_enroll)?;
        Ok(())
    })?;
    // The signed role, else the answer's, else (a hub from before roles)
    // the rights its answer gave.
    let role = cert
        .role
        .or(resp.role)
        .unwrap_or(fmp_sync::Role::from_may_enroll(resp.may_enroll));
    fmp_sync::trust::store_certificate(store, &cert)?;
    store.set_enrolled_fmps(Some(&resp.fmps))?;
    store.set_role(Some(role))?;
    vouch_for_upstream(store, &up)?;
    Ok(Joined {
        hub: resp.hub,
        hub_name: resp.hub_name,
        fmps: resp.fmps,
        may_enroll: resp.may_enroll,
        role,
    })
}

/// HQ's identity as a hub names it; a hub naming itself must use its own key.
fn authority_of(
    h: &HqIdentity,
    hub: Uuid,
    hub_key: &[u8],
) -> Result<fmp_core::store::Authority, HubError> {
    let hq = fmp_core::store::Authority {
        device_id: h.device,
        public_key: hex::decode(&h.public_key)
            .map_err(|e| HubError::Protocol(format!("HQ's key: {e}")))?,
    };
    if hq.device_id == hub && hq.public_key != hub_key {
        return Err(HubError::Protocol(
            "the hub names itself as HQ with another key than its own".into(),
        ));
    }
    Ok(hq)
}

/// A store that joined before HQ's identity was passed at join pins it from
/// its hub's `GET /v1/hub`, over the same pinned link. Best effort: a hub
/// that names no HQ yet (or cannot be read) is asked again next sync.
fn pin_hq_late(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
    store: &Store,
    up: &Upstream,
) {
    let got = rt.block_on(async {
        let resp = http.get(format!("{url}{HUB_PATH}")).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let bytes = resp.bytes().await.ok()?;
        serde_json::from_slice::<HubInfo>(&bytes).ok()
    });
    let Some(info) = got else { return };
    if info.hub != up.hub {
        return;
    }
    if let Some(Ok(hq)) = info
        .hq
        .as_ref()
        .map(|h| authority_of(h, up.hub, &up.public_key))
    {
        // A failed write is retried at the next sync.
        let _ = store.pin_authority(&hq);
    }
}

/// Issues (once) a certificate for the hub this store joined, with no FMP
/// restriction, kept in `devices`: it travels with the upstream hub's (HQ's)
/// changes when this store passes them on, so the devices this store
/// enrolled, which know this store but not HQ, can verify HQ's writes (the
/// registry and forms reach phones through their regional hub).
fn vouch_for_upstream(store: &Store, up: &Upstream) -> Result<(), HubError> {
    let have = fmp_sync::trust::stored_certificate(store, up.hub)?;
    // One signed before roles is issued again, with the role.
    if have.is_some_and(|c| c.issuer == store.identity().device_id && c.role.is_some()) {
        return Ok(());
    }
    let cert = Certificate::issue(
        store.identity(),
        up.hub,
        &up.public_key,
        None,
        fmp_sync::Role::Supervisor,
    );
    fmp_sync::trust::store_certificate(store, &cert)?;
    Ok(())
}

/// What happened during a sync, for progress callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A round trip completed.
    RoundTrip,
    /// The hub refused some changes; they are set aside.
    Quarantined(usize),
    /// A round trip failed; retrying after `wait`.
    Retry {
        /// Attempt number (1 = first retry).
        attempt: u32,
        /// Wait before it.
        wait: Duration,
        /// What failed.
        error: String,
    },
}

/// Progress so far, given to the callback after each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What just happened.
    pub event: Event,
    /// The totals so far.
    pub summary: Summary,
}

/// The result of a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Changes sent and accepted by the hub.
    pub sent: u64,
    /// Changes received and stored here.
    pub received: u64,
    /// Bytes of requests.
    pub bytes_sent: u64,
    /// Bytes of responses.
    pub bytes_received: u64,
    /// Round trips completed.
    pub round_trips: u32,
    /// Retries after failures.
    pub retries: u32,
    /// Changes the hub refused (set aside here), with its reasons.
    pub refused: Vec<Refusal>,
    /// Changes from the hub refused here.
    pub refused_here: Vec<Refusal>,
}

/// A progress callback.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// How to sync.
pub struct SyncOptions {
    /// Another address for the hub joined (default: the one of `join`).
    pub url: Option<String>,
    /// Message size limit, both ways.
    pub max_bytes: u32,
    /// Retries after failures before giving up (progress resets the count).
    pub retries: u32,
    /// First backoff delay (doubled each retry, up to `max_delay`, full jitter).
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Longest silence from the hub before a request is abandoned as a
    /// silent link and retried: its answer must begin within this (after
    /// the request went out at [`SLOWEST_UPLINK`]) and never pause longer.
    pub stall_timeout: Duration,
    /// Called after each round trip and retry.
    pub progress: Option<ProgressFn>,
    /// Stops the sync when cancelled (from another thread): it then fails
    /// with [`HubError::Cancelled`] at once, keeping what was stored.
    pub cancel: Option<CancelToken>,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            url: None,
            max_bytes: fmp_sync::DEFAULT_MAX_BYTES,
            retries: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            progress: None,
            cancel: None,
        }
    }
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("url", &self.url)
            .field("max_bytes", &self.max_bytes)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("cancel", &self.cancel)
            .finish()
    }
}

fn retryable(e: &HubError) -> bool {
    match e {
        HubError::Network { .. } => true,
        HubError::Refused { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        HubError::Sync(s) => matches!(
            **s,
            fmp_sync::SyncError::Corrupt(_) | fmp_sync::SyncError::Garbage { .. }
        ),
        _ => false,
    }
}

fn to_refusals(list: &[crate::server::RefusedChange]) -> Vec<Refusal> {
    list.iter()
        .filter_map(|r| {
            let h: [u8; 32] = hex::decode(&r.hash).ok()?.try_into().ok()?;
            Some(Refusal {
                hash: h,
                reason: r.reason.clone(),
            })
        })
        .collect()
}

/// Syncs with the hub this store joined until both have what the other
/// had: retries failures with backoff, resumes from the stored cursors,
/// sets aside changes the hub refuses (with its reasons) so they never
/// block the rest. Stops with [`HubError::Cancelled`] when
/// [`SyncOptions::cancel`] is cancelled: before a request, during one
/// (abandoned at once) or during a backoff wait.
pub fn sync(store: &Store, mut opts: SyncOptions) -> Result<Summary, HubError> {
    db::ensure_tables(store)?;
    let up = store.read(db::upstream)?.ok_or(HubError::NotJoined)?;
    vouch_for_upstream(store, &up)?;
    let url = base(opts.url.as_deref().unwrap_or(&up.url))?;
    let trust = store.read(db::trust)?;
    let stall = opts.stall_timeout;
    let (http, _) = http(&url, up.tls_cert.clone(), opts.timeout, stall)?;
    let rt = runtime()?;
    if store.pinned_authority()?.is_none() {
        pin_hq_late(&rt, &http, &url, store, &up);
    }
    // Released from quarantine (edited back into scope): pushed again.
    let released = store.read(db::released)?;
    let mut total = Summary::default();
    let mut attempt = 0u32;
    let cancel = opts.cancel.clone();
    let cancel = cancel.as_ref();
    let cancelled = || cancel.is_some_and(CancelToken::is_cancelled);
    let mut notify = |total: &Summary, event: Event| {
        if let Some(cb) = opts.progress.as_mut() {
            cb(&Progress {
                event,
                summary: total.clone(),
            });
        }
    };
    loop {
        let mut client = Client::new(store, &trust, up.hub)
            .with_max_bytes(opts.max_bytes)
            .with_resend(released.clone());
        let result: Result<(), HubError> = (|| {
            loop {
                if cancelled() {
                    return Err(HubError::Cancelled);
                }
                let Some(req) = client.next_request()? else {
                    break;
                };
                let sent = unless_cancelled(
                    &rt,
                    cancel,
                    post(&http, store, &url, SYNC_PATH, req.clone(), None, stall),
                )
                .ok_or(HubError::Cancelled)?;
                let bytes = match sent {
                    Ok(b) => b,
                    Err(SendError::Refused(403, body)) if body.error == "out_of_scope" => {
                        let refused = to_refusals(&body.refused);
                        store.write(|tx| -> Result<(), HubError> {
                            db::quarantine(tx, up.hub, &refused)?;
                            Ok(())
                        })?;
                        notify(
                            &add(&total, client.report()),
                            Event::Quarantined(refused.len()),
                        );
                        unless_cancelled(
                            &rt,
                            cancel,
                            post(
                                &http,
                                store,
                                &url,
                                SYNC_PATH,
                                req,
                                Some((H_PARTIAL, "1")),
                                stall,
                            ),
                        )
                        .ok_or(HubError::Cancelled)?
                        .map_err(|e| e.into_hub(&url))?
                    }
                    Err(e) => return Err(e.into_hub(&url)),
                };
                client.handle_response(&bytes)?;
                let refused = &client.report().refused_by_peer;
                if !refused.is_empty() {
                    store.write(|tx| -> Result<(), HubError> {
                        db::quarantine(tx, up.hub, refused)?;
                        Ok(())
                    })?;
                }
                notify(&add(&total, client.report()), Event::RoundTrip);
            }
            Ok(())
        })();
        let done = add(&total, client.report());
        // A round trip answered and stored in this attempt (the report
        // counts no other) is the progress that resets the retry count.
        let progressed = client.report().round_trips > 0;
        total = done;
        match result {
            Ok(()) => break,
            Err(e) if retryable(&e) => {
                if progressed {
                    attempt = 0;
                }
                if attempt >= opts.retries {
                    return Err(e);
                }
                attempt += 1;
                total.retries += 1;
                let wait = backoff(opts.base_delay, opts.max_delay, attempt);
                notify(
                    &total,
                    Event::Retry {
                        attempt,
                        wait,
                        error: e.to_string(),
                    },
                );
                // The wait ends early (and the sync with it) if cancelled.
                // (The timer is made in the runtime, inside the future.)
                let backoff = async move { tokio::time::sleep(wait).await };
                if unless_cancelled(&rt, cancel, backoff).is_none() {
                    return Err(HubError::Cancelled);
                }
            }
            Err(e) => return Err(e),
        }
    }
    let accepted: Vec<_> = released
        .into_iter()
        .filter(|h| !total.refused.iter().any(|r| r.hash == *h))
        .collect();
    if !accepted.is_empty() {
        store.write(|tx| -> Result<(), HubError> {
            db::unquarantine(tx, &accepted)?;
            Ok(())
        })?;
    }
    Ok(total)
}

fn add(total: &Summary, r: &fmp_sync::Report) -> Summary {
    let mut s = total.clone();
    s.sent += r.pushed;
    s.received += r.pulled;
    s.bytes_sent += r.bytes_sent;
    s.bytes_received += r.bytes_received;
    s.round_trips += r.round_trips;
    s.refused.extend(r.refused_by_peer.iter().cloned());
    s.refused_here.extend(r.refused_here.iter().cloned());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_may_begin_a_stall_timeout_after_the_request_went_out_at_8_kbit() {
        let stall = Duration::from_secs(30);
        assert_eq!(answer_within(stall, 0), stall);
        assert_eq!(
            answer_within(stall, 64 * 1024),
            Duration::from_millis(30_000 + 65_536)
        );
        assert_eq!(answer_within(Duration::MAX, usize::MAX), Duration::MAX);
    }
}
