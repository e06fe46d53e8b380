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
//! Message size follows the link (see [`Window`] and
//! `docs/adr/0002-adaptive-message-size.md`): after a cut or a stall the
//! next request, and the answer it asks for, are smaller, down to one
//! change; they grow back as messages get through, up to
//! [`SyncOptions::max_bytes`]. The size learnt is kept in the store per hub
//! and the next sync starts from it.
//!
//! A hub too busy to start a request answers `503 busy` with `Retry-After`
//! before reading the body: the client waits that long (with jitter) and
//! sends the same request again; such a wait is counted in
//! [`Summary::shed`], not as a failure toward [`SyncOptions::retries`].
//!
//! A sync can be stopped from another thread with a [`CancelToken`]
//! ([`SyncOptions::cancel`]): the request in flight is abandoned at once, as
//! is a backoff wait, and the sync fails with [`HubError::Cancelled`]; what
//! was answered and stored before is kept (the cursors are committed per
//! round trip), so the next sync resumes from there.

use fmp_core::store::ops::*;
use std::sync::Arc;
use std::time::Duration;

use fmp_core::store::Store;
use fmp_sync::wire::{FLOOR_MAX_BYTES, Refusal};
use fmp_sync::{Certificate, Client};
use rand::Rng;
use uuid::Uuid;

use crate::auth::Signed;
use crate::db::{self, Upstream};
use crate::error::HubError;
use crate::server::{
    ErrorBody, H_CERTIFICATE, H_NAME, H_PARTIAL, HUB_PATH, HqIdentity, HubInfo, JOIN_PATH,
    JoinRequest, JoinResponse, SYNC_PATH,
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
    /// SHA-256 fingerprint of the hub's TLS certificate, pinned at this
    /// join (`None` over plain HTTP).
    pub tls_fingerprint: Option<String>,
}

/// The default [`SyncOptions::stall_timeout`]: 30 s.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times `join` sends its request before giving up on a link
/// that keeps failing.
pub const JOIN_ATTEMPTS: u32 = 4;

/// The slowest uplink a request is given time for before the stall timeout
/// starts to count, in bytes per second (8 kbit/s, GPRS at its worst).
pub const SLOWEST_UPLINK: u64 = 1_000;

/// How many times one sync waits for a busy hub (`503 busy`) before giving
/// up: generous, as each wait is the hub's own estimate of its queue.
pub const MAX_SHEDS: u32 = 1_000;

/// Longest wait a hub's `Retry-After` may impose on one shed request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// After this many messages through, a [`Window`] tries sizes up to a
/// quarter above the last one cut (at least [`FLOOR_MAX_BYTES`] / 2 more).
const PROBE_AFTER: u32 = 8;

/// The adaptive message size of a sync (both ways: the request's
/// `max_bytes` bounds the answer), up to the ceiling the user allows
/// (`--max-bytes`), down to [`FLOOR_MAX_BYTES`] (one change a message).
///
/// A link that cuts (or freezes) a connection after some bytes shows it in
/// two ways: the first exchange on a fresh connection is cut (the message
/// is too big: the next is half of what was cut, and sizes from 90 % of
/// it are not tried again until `PROBE_AFTER` messages got through;
/// only the latest such cut counts, so a link that drops by time rather
/// than by size does not pin the size low), or
/// an exchange is cut after others went through on the same connection
/// (its budget ran out, not the message's fault: the size stays). Each
/// message through grows the size: doubling until a first cut, then by a
/// quarter. Figures in `docs/adr/0002-adaptive-message-size.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    limit: u32,
    ceiling: u32,
    /// The smallest exchange cut first on its connection (raised by a
    /// quarter every [`PROBE_AFTER`] messages through).
    too_big: Option<u32>,
    /// Bytes through since the last cut (on the connection in use).
    carried: u64,
    since_probe: u32,
    /// First exchanges of their connections cut one after another since
    /// the last message through.
    cuts_in_row: u32,
    /// Never changes ([`SyncOptions::fixed_size`]).
    fixed: bool,
}

impl Window {
    /// A window up to `ceiling`, starting from `start` (what the last sync
    /// with this hub learnt) or else from the ceiling.
    pub fn new(start: Option<u32>, ceiling: u32) -> Window {
        let ceiling = ceiling.max(FLOOR_MAX_BYTES);
        let limit = start.unwrap_or(ceiling).clamp(FLOOR_MAX_BYTES, ceiling);
        Window {
            limit,
            ceiling,
            too_big: None,
            carried: 0,
            since_probe: 0,
            cuts_in_row: 0,
            fixed: false,
        }
    }

    /// The limit of the next message.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// An exchange of `exchanged` bytes (request and answer) got through.
    pub fn got_through(&mut self, exchanged: usize) {
        if self.fixed {
            return;
        }
        // Several cuts in a row were a link down (a drop, an outage), not
        // a message too big: what they taught of the size is forgotten,
        // and the size doubles back. A link that cuts by size cuts once
        // between messages through, and that single cut is kept.
        if self.cuts_in_row >= 2 {
            self.too_big = None;
        }
        self.cuts_in_row = 0;
        self.carried = self
            .carried
            .saturating_add(u64::try_from(exchanged).unwrap_or(u64::MAX));
        if let Some(t) = self.too_big {
            self.since_probe += 1;
            if self.since_probe >= PROBE_AFTER {
                self.too_big = Some(t.saturating_add((t / 4).max(FLOOR_MAX_BYTES / 2)));
                self.since_probe = 0;
            }
        }
        let cap = match self.too_big {
            Some(t) => (t / 10).saturating_mul(9).min(self.ceiling),
            None => self.ceiling,
        };
        if self.limit < cap {
            let next = match self.too_big {
                None => self.limit.saturating_mul(2),
                Some(_) => self.limit.saturating_add(self.limit / 4),
            };
            self.limit = next.min(cap).max(FLOOR_MAX_BYTES);
        }
    }

    /// A message of one change (with the bundle that signs it) takes
    /// `size` bytes, more than the limit: the limit is raised to hold it,
    /// up to the ceiling. False if it cannot be (fixed, or past the
    /// ceiling): a size learnt on a small link never leaves a change
    /// stuck behind it.
    pub fn hold(&mut self, size: u32) -> bool {
        if self.fixed || size > self.ceiling || size <= self.limit {
            return false;
        }
        self.limit = size.saturating_add(size / 8).min(self.ceiling);
        true
    }

    /// An exchange was cut (or went silent) after `exchanged` bytes of
    /// request and answer.
    pub fn cut(&mut self, exchanged: usize) {
        if self.fixed {
            return;
        }
        if self.carried == 0 {
            self.cuts_in_row = self.cuts_in_row.saturating_add(1);
            // The first exchange on its connection: too big for the link.
            // The latest evidence, not the smallest ever: a link that drops
            // connections by time (not by size) cuts a first exchange of
            // any size now and then, and must not pin the size to the floor.
            let size = self.limit.min(u32::try_from(exchanged).unwrap_or(u32::MAX));
            self.too_big = Some(size);
            self.limit = (size / 2).clamp(FLOOR_MAX_BYTES, self.ceiling);
            self.since_probe = 0;
        }
        self.carried = 0;
    }
}

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

/// How long an idle connection to the hub is kept for the next request:
/// well below the hub's header timeout (20 s by default), which closes
/// idle keep-alives, so a wait between requests (a busy hub, a backoff, a
/// slow app) does not end on a connection the hub is closing.
pub const POOL_IDLE: Duration = Duration::from_secs(5);

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
    // A pinned certificate is never skipped: a plain-HTTP address would
    // send everything in clear text to whoever answers there.
    if let Some(pin) = &pin
        && !url.starts_with("https://")
    {
        return Err(HubError::PlainHttpPinned {
            url: url.to_string(),
            pinned: tls::fingerprint(pin),
        });
    }
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
        .pool_idle_timeout(POOL_IDLE)
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
    // The scheme is case-insensitive (`HTTPS://` is `https://`): written
    // in lower case here, so every later check of it sees one spelling.
    for scheme in ["http://", "https://"] {
        if let Some(head) = u.get(..scheme.len())
            && head.eq_ignore_ascii_case(scheme)
        {
            return Ok(format!("{scheme}{}", &u[scheme.len()..]));
        }
    }
    Err(HubError::Usage(format!(
        "{url} is not a hub address; use http://HOST:PORT or https://HOST:PORT"
    )))
}

enum SendError {
    Network(String),
    /// Nothing came from the hub within the stall timeout.
    Stalled(Duration),
    Refused(u16, ErrorBody),
    /// The hub was too busy to start the request (`503 busy`, its body
    /// unread): send it again after this wait.
    Busy(Duration, ErrorBody),
}

impl SendError {
    fn into_hub(self, url: &str) -> HubError {
        match self {
            SendError::Network(detail) => match tls_mismatch(url, &detail) {
                Some(hub_speaks_tls) => HubError::TlsMismatch {
                    url: url.to_string(),
                    hub_speaks_tls,
                },
                None => HubError::Network {
                    url: url.to_string(),
                    detail,
                },
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
            SendError::Busy(_, b) => HubError::Refused {
                status: 503,
                error: b.error,
                reason: b.reason,
            },
        }
    }
}

/// Whether a failure to reach `url` is the hub and the address
/// disagreeing on TLS: `Some(true)` if an `http://` address was answered
/// with TLS (hyper cannot read a TLS record as HTTP), `Some(false)` if an
/// `https://` address was answered in plain HTTP (rustls reads no record).
fn tls_mismatch(url: &str, detail: &str) -> Option<bool> {
    // A plain-HTTP answer (`HTTP/1.1 400 …`) to the ClientHello: its first
    // byte is no TLS record type. Other corrupt records (a damaged link)
    // stay retryable.
    if url.starts_with("https://") && detail.contains("InvalidContentType") {
        return Some(false);
    }
    if url.starts_with("http://") && detail.contains("invalid HTTP version parsed") {
        return Some(true);
    }
    None
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
/// [`SendError::Stalled`] after `stall` (see [`answer_within`]). `got`
/// counts the answer's bytes as they come (what a cut let through).
#[allow(clippy::too_many_arguments)]
async fn post(
    http: &reqwest::Client,
    store: &Store,
    url: &str,
    path: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
    stall: Duration,
    got: &mut usize,
) -> Result<Vec<u8>, SendError> {
    *got = 0;
    let mut time = chrono::Utc::now().timestamp();
    let mut resp;
    let mut corrected = false;
    let mut resent = false;
    loop {
        let signed = Signed::at(store.identity(), "POST", path, &body, time);
        let mut rb = http.post(format!("{url}{path}")).body(body.clone());
        for (k, v) in signed.headers() {
            rb = rb.header(k, v);
        }
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        let sent = tokio::time::timeout(answer_within(stall, body.len()), rb.send())
            .await
            .map_err(|_| SendError::Stalled(stall))?;
        resp = match sent {
            // A keep-alive connection the hub answered while it sat idle
            // in the pool (its header timeout's `408` as it closed it): the
            // hub never took this request. Sent again at once, once, on a
            // fresh connection (signed anew), not counted as a retry.
            Err(e) if !resent && stale_connection(&chain(&e)) => {
                resent = true;
                continue;
            }
            r => r.map_err(|e| SendError::Network(chain(&e)))?,
        };
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
    let retry_after = retry_after(&resp);
    // The body as it comes: the stall timeout restarts with every piece,
    // so a slow answer that keeps coming is never abandoned.
    let mut bytes = Vec::new();
    while let Some(piece) = tokio::time::timeout(stall, resp.chunk())
        .await
        .map_err(|_| SendError::Stalled(stall))?
        .map_err(|e| SendError::Network(chain(&e)))?
    {
        bytes.extend_from_slice(&piece);
        *got = bytes.len();
    }
    if status.is_success() {
        return Ok(bytes);
    }
    let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
        error: format!("http_{}", status.as_u16()),
        reason: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        refused: Vec::new(),
    });
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && body.error == "busy" {
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        return Err(SendError::Busy(wait.min(MAX_RETRY_AFTER), body));
    }
    Err(SendError::Refused(status.as_u16(), body))
}

/// True if a request failed on a pooled connection the hub had answered
/// while idle (hyper's words for a message that came with no request in
/// flight): the request was not taken. A connection closed after a request
/// went out is not this: the hub may have taken it, and a link that cuts
/// is retried with backoff (and teaches the message size).
fn stale_connection(error: &str) -> bool {
    error.contains("unexpected message from connection")
}

/// A `Retry-After` header in seconds (the only form a hub sends).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    Some(Duration::from_secs(v.trim().parse().ok()?))
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
    let me = store.identity();
    // A store that pinned a certificate joins again over TLS only (a
    // renewed certificate is pinned anew there); never in clear text.
    if let Some(pin) = db::upstream(store)?.and_then(|u| u.tls_cert)
        && !url.starts_with("https://")
    {
        return Err(HubError::PlainHttpPinned {
            url,
            pinned: tls::fingerprint(&pin),
        });
    }
    let pinned_hq = store.pinned_authority()?;
    let enrolls = is_a_hub(store)?;
    let req = JoinRequest {
        code: code.to_string(),
        name: me.name.clone(),
        public_key: hex::encode(me.public_key()),
        hq: pinned_hq.as_ref().map(|a| HqIdentity {
            device: a.device_id,
            public_key: hex::encode(&a.public_key),
        }),
        enrolls,
    };
    let body = serde_json::to_vec(&req).map_err(|e| HubError::Protocol(e.to_string()))?;
    let (client, verifier) = http(&url, None, Duration::from_secs(30), DEFAULT_STALL_TIMEOUT)?;
    let rt = runtime()?;
    // A hub from before `hq` was sent in the join does not check it: its
    // HQ is asked first (best effort), so a hub of another HQ is refused
    // before it uses the code.
    if let Some(old) = &pinned_hq
        && let Some(offered) = hub_hq(&rt, &client, &url)
        && offered != *old
    {
        return Err(HubError::from(
            fmp_core::store::StoreError::OtherAuthority {
                pinned: old.device_id,
                offered: offered.device_id,
            },
        ));
    }
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
                &[],
                DEFAULT_STALL_TIMEOUT,
                &mut 0,
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
    // A hub from before `enrolls` was sent enrolled this hub with a device
    // code: refused here before anything is written, so it keeps its role.
    if enrolls && !resp.may_enroll {
        return Err(needs_hub_code(&resp.hub_name));
    }
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
    store.transaction(|w| -> Result<(), HubError> {
        w.set_upstream(&up)?;
        // Kept so `enroll-code` can refuse on a store that may not enroll.
        w.set_upstream_may_enroll(resp.may_enroll)?;
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
        tls_fingerprint: up.tls_cert.as_deref().map(tls::fingerprint),
    })
}

/// True if this store acts as a hub: it was granted enrollment by its own
/// hub, or enrolled devices itself (HQ, or a hub from before the grant was
/// kept). Joining with a plain device code would cut off its devices.
fn is_a_hub(store: &Store) -> Result<bool, HubError> {
    let granted = store.snapshot(|r| r.upstream_may_enroll())?;
    Ok(granted == Some(true) || !db::devices(store)?.is_empty())
}

/// The refusal of a device code offered to a store that enrolls devices.
fn needs_hub_code(hub_name: &str) -> HubError {
    HubError::Usage(format!(
        "this store is a hub (it enrolls devices of its own), but the code lets the joining \
         device only record: joining with it would stop this hub from syncing its devices' \
         records. Nothing was changed here. Ask the supervisor of {hub_name} for a code made \
         with `fmp enroll-code --hub`, and `fmp join` again with it"
    ))
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

/// The HQ the hub at `url` names in `GET /v1/hub`, if it names one and
/// can be read (`None` otherwise: the join's own check then decides).
fn hub_hq(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
) -> Option<fmp_core::store::Authority> {
    let info = rt.block_on(async {
        let resp = http.get(format!("{url}{HUB_PATH}")).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let bytes = resp.bytes().await.ok()?;
        serde_json::from_slice::<HubInfo>(&bytes).ok()
    })?;
    let key = hex::decode(&info.public_key).ok()?;
    authority_of(info.hq.as_ref()?, info.hub, &key).ok()
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
    /// Requests the hub was too busy to start (`503 busy`) and sent again
    /// after its `Retry-After`; not counted in `retries`.
    pub shed: u32,
    /// The message size this sync ended with (learnt from the link, kept
    /// for the next sync with this hub).
    pub max_bytes: u32,
}

/// A progress callback.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// How to sync.
pub struct SyncOptions {
    /// Another address for the hub joined (default: the one of `join`).
    pub url: Option<String>,
    /// Largest message, both ways: the ceiling of the adaptive size (see
    /// [`Window`]).
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
    /// Every message at `max_bytes`, never adapted to the link, and nothing
    /// learnt kept (benchmarks comparing fixed sizes; default false).
    pub fixed_size: bool,
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
            fixed_size: false,
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
            .field("fixed_size", &self.fixed_size)
            .finish()
    }
}

fn retryable(e: &HubError) -> bool {
    match e {
        HubError::Network { .. } => true,
        // `busy` here is a hub that stayed busy through `MAX_SHEDS` waits.
        HubError::Refused { status, error, .. } => {
            (*status >= 500 && error != "busy") || *status == 429 || *status == 408
        }
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
    let up = db::upstream(store)?.ok_or(HubError::NotJoined)?;
    vouch_for_upstream(store, &up)?;
    let url = base(opts.url.as_deref().unwrap_or(&up.url))?;
    let trust = db::trust(store)?;
    let stall = opts.stall_timeout;
    let (http, pinned) = http(&url, up.tls_cert.clone(), opts.timeout, stall)?;
    let rt = runtime()?;
    if store.pinned_authority()?.is_none() {
        pin_hq_late(&rt, &http, &url, store, &up);
    }
    // Released from quarantine (edited back into scope): pushed again.
    let released = db::released(store)?;
    let learnt = if opts.fixed_size {
        None
    } else {
        store.link_max_bytes(up.hub)?
    };
    let mut window = Window::new(learnt, opts.max_bytes);
    if opts.fixed_size {
        window.fixed = true;
    }
    let mut total = Summary::default();
    let result = sync_attempts(
        store,
        &mut opts,
        &up,
        &url,
        &trust,
        &http,
        pinned.as_deref(),
        &rt,
        &released,
        &mut window,
        &mut total,
    );
    // What the link taught is kept whatever the outcome (a sync that gave
    // up on a bad link leaves the next one a smaller size to start from).
    if !opts.fixed_size && learnt != Some(window.limit()) {
        store.set_link_max_bytes(up.hub, window.limit())?;
    }
    remember_refusal(store, up.hub, &result)?;
    result?;
    total.max_bytes = window.limit();
    let accepted: Vec<_> = released
        .into_iter()
        .filter(|h| !total.refused.iter().any(|r| r.hash == *h))
        .collect();
    if !accepted.is_empty() {
        db::unquarantine(store, &accepted)?;
    }
    Ok(total)
}

/// Keeps (for `fmp status`) a refusal of this device itself by its hub
/// (revoked, or no longer known), and forgets it once a sync gets through.
fn remember_refusal(
    store: &Store,
    hub: uuid::Uuid,
    result: &Result<(), HubError>,
) -> Result<(), HubError> {
    match result {
        Err(HubError::Refused { error, reason, .. })
            if matches!(error.as_str(), "revoked_device" | "unknown_device") =>
        {
            let now = chrono::Utc::now().timestamp_millis();
            store.set_refused_by(hub, Some((now, reason)))?;
        }
        Ok(()) if store.refused_by(hub)?.is_some() => store.set_refused_by(hub, None)?,
        _ => {}
    }
    Ok(())
}

/// What an exchange with the hub needs, shared by the thread that sends a
/// request ahead and the one storing the last answer.
struct Link<'l> {
    http: &'l reqwest::Client,
    rt: &'l tokio::runtime::Runtime,
    store: &'l Store,
    url: &'l str,
    hub: Uuid,
    stall: Duration,
    cancel: Option<&'l CancelToken>,
}

/// An exchange that failed, and for a cut or a silent link the bytes of
/// request and answer that crossed it (what the message size learns from).
struct Failed {
    error: HubError,
    cut: Option<usize>,
}

impl From<HubError> for Failed {
    fn from(error: HubError) -> Failed {
        Failed { error, cut: None }
    }
}

/// Sends one sync request until the hub answers it: waits out a busy hub
/// (`503 busy`, counted in `shed`), re-enrolls once from this device's
/// certificate if the hub forgot it (`rejoin`), and sends it once more as
/// partial to a hub that refused it whole for scope, with the refusals
/// set aside first. The answer's bytes, and how many changes were set
/// aside that way (if any).
fn exchange(
    link: &Link<'_>,
    req: &[u8],
    rejoin: &mut Option<(String, String)>,
    shed: &mut u32,
) -> Result<(Vec<u8>, Option<usize>), Failed> {
    let (rt, cancel, store, url) = (link.rt, link.cancel, link.store, link.url);
    // Always ask for partial application: the hub stores the in-scope part
    // and answers refusals in its 200, so a refusal never costs a second
    // upload.
    let mut got = 0usize;
    let sent = loop {
        let mut headers = vec![(H_PARTIAL, "1")];
        if let Some((cert, name)) = rejoin.as_ref() {
            headers.push((H_CERTIFICATE, cert.as_str()));
            headers.push((H_NAME, name.as_str()));
        }
        let sent = unless_cancelled(
            rt,
            cancel,
            post(
                link.http,
                store,
                url,
                SYNC_PATH,
                req.to_vec(),
                &headers,
                link.stall,
                &mut got,
            ),
        )
        .ok_or(HubError::Cancelled)?;
        if let Err(SendError::Refused(403, body)) = &sent
            && body.error == "unknown_device"
            && rejoin.is_none()
            && let Some(cert) =
                fmp_sync::trust::stored_certificate(store, store.identity().device_id)
                    .map_err(HubError::from)?
            && cert.issuer == link.hub
        {
            *rejoin = Some((
                hex::encode(cert.encode()),
                hex::encode(store.identity().name.as_bytes()),
            ));
            continue;
        }
        let Err(SendError::Busy(after, body)) = sent else {
            break sent;
        };
        // Shed before the hub read the body: nothing of the request was
        // applied; send it again once the hub's queue has had time to drain.
        if *shed >= MAX_SHEDS {
            return Err(SendError::Busy(after, body).into_hub(url).into());
        }
        *shed += 1;
        let wait = after.mul_f64(1.0 + rand::rng().random_range(0.0..1.0));
        let pause = async move { tokio::time::sleep(wait).await };
        if unless_cancelled(rt, cancel, pause).is_none() {
            return Err(HubError::Cancelled.into());
        }
    };
    match sent {
        Ok(b) => Ok((b, None)),
        // A hub that does not honour the partial header refuses the whole
        // request: set the refusals aside and send it once more, as partial.
        Err(SendError::Refused(403, body)) if body.error == "out_of_scope" => {
            let refused = to_refusals(&body.refused);
            db::quarantine(store, link.hub, &refused)?;
            let b = unless_cancelled(
                rt,
                cancel,
                post(
                    link.http,
                    store,
                    url,
                    SYNC_PATH,
                    req.to_vec(),
                    &[(H_PARTIAL, "1")],
                    link.stall,
                    &mut got,
                ),
            )
            .ok_or(HubError::Cancelled)?
            .map_err(|e| e.into_hub(url))?;
            Ok((b, Some(refused.len())))
        }
        Err(e @ (SendError::Network(_) | SendError::Stalled(_))) => Err(Failed {
            error: e.into_hub(url),
            cut: Some(req.len() + got),
        }),
        Err(e) => Err(e.into_hub(url).into()),
    }
}

/// After an answer is stored: the changes the hub refused so far set
/// aside, and the progress told.
fn settle(
    store: &Store,
    hub: Uuid,
    client: &Client<'_>,
    total: &Summary,
    notify: &mut dyn FnMut(&Summary, Event),
) -> Result<(), HubError> {
    let refused = &client.report().refused_by_peer;
    if !refused.is_empty() {
        db::quarantine(store, hub, refused)?;
    }
    notify(&add(total, client.report()), Event::RoundTrip);
    Ok(())
}

/// The attempts of [`sync`]: each a [`Client`] from the stored cursors,
/// retried after failures with backoff; `window` and `total` carry over.
#[allow(clippy::too_many_arguments)]
fn sync_attempts(
    store: &Store,
    opts: &mut SyncOptions,
    up: &Upstream,
    url: &str,
    trust: &fmp_sync::StaticTrust,
    http: &reqwest::Client,
    pinned: Option<&Pinned>,
    rt: &tokio::runtime::Runtime,
    released: &[fmp_sync::wire::Hash],
    window: &mut Window,
    total: &mut Summary,
) -> Result<(), HubError> {
    let stall = opts.stall_timeout;
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
    // Answered `unknown_device`: the certificate this device's hub issued
    // it, sent once so a hub restored from an older copy takes it back.
    let mut rejoin: Option<(String, String)> = None;
    let link = Link {
        http,
        rt,
        store,
        url,
        hub: up.hub,
        stall,
        cancel,
    };
    loop {
        // With no cursor but data in common, reconciliation: a store that
        // lost its peer table, or a copy restored without it, sends the
        // difference, not its whole log.
        let mut client = Client::new(store, trust, up.hub)
            .with_max_bytes(window.limit())
            .with_resend(released.to_vec())
            .reconcile_if_lost()?;
        // Bytes of request and answer of an exchange cut or gone silent.
        let mut cut: Option<usize> = None;
        let result: Result<(), HubError> = (|| {
            loop {
                if cancelled() {
                    return Err(HubError::Cancelled);
                }
                client.set_max_bytes(window.limit());
                let req = match client.next_request() {
                    Err(fmp_sync::SyncError::TooLarge { size, .. })
                        if window.hold(u32::try_from(size).unwrap_or(u32::MAX)) =>
                    {
                        continue;
                    }
                    r => r?,
                };
                let Some(req) = req else {
                    break;
                };
                let mut sent_len = req.len();
                let mut exchanged = exchange(&link, &req, &mut rejoin, &mut total.shed);
                // The answers of a pipelined run: each one read, the next
                // request built and sent (another thread) while it is
                // stored (ADR 0001, "Keeping the link busy").
                loop {
                    let (bytes, quarantined) = match exchanged {
                        Ok(x) => x,
                        Err(f) => {
                            cut = f.cut;
                            return Err(f.error);
                        }
                    };
                    if let Some(n) = quarantined {
                        notify(&add(total, client.report()), Event::Quarantined(n));
                    }
                    window.got_through(sent_len + bytes.len());
                    let answer = client.read_response(&bytes)?;
                    let ahead = match cancelled() {
                        true => None,
                        false => client.ahead(&answer)?,
                    };
                    let Some(ahead) = ahead.map(|a| a.with_max_bytes(window.limit())) else {
                        client.apply(answer)?;
                        settle(store, up.hub, &client, total, &mut notify)?;
                        break;
                    };
                    let mut shed = total.shed;
                    let (applied, sent) = std::thread::scope(|s| {
                        let (link, rejoin, shed) = (&link, &mut rejoin, &mut shed);
                        let next = s.spawn(move || -> Result<_, HubError> {
                            let Some(built) = ahead.build(store)? else {
                                return Ok(None);
                            };
                            let exchanged = exchange(link, built.bytes(), rejoin, shed);
                            Ok(Some((built, exchanged)))
                        });
                        let applied = client
                            .apply(answer)
                            .map_err(HubError::from)
                            .and_then(|()| settle(store, up.hub, &client, total, &mut notify));
                        let sent = next.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                        (applied, sent)
                    });
                    total.shed = shed;
                    applied?;
                    // Not built ahead (own changes to seal, too large for
                    // the limit): built after the answer is stored.
                    let Some((built, next)) = sent? else {
                        break;
                    };
                    sent_len = built.bytes().len();
                    if !client.adopt(built)? {
                        break;
                    }
                    exchanged = next;
                }
            }
            Ok(())
        })();
        if let Some(n) = cut {
            window.cut(n);
        }
        let done = add(total, client.report());
        // A round trip answered and stored in this attempt (the report
        // counts no other) is the progress that resets the retry count.
        let progressed = client.report().round_trips > 0;
        *total = done;
        // A certificate other than the pinned one is no outage: said at
        // once, with what to do, never retried.
        if result.is_err()
            && let Some((pin, seen)) = pinned.and_then(Pinned::changed)
        {
            return Err(HubError::CertificateChanged {
                url: url.to_string(),
                hub: store.snapshot(|r| r.upstream_may_enroll())? == Some(true),
                pinned: tls::fingerprint(&pin),
                presented: tls::fingerprint(&seen),
            });
        }
        match result {
            Ok(()) => return Ok(()),
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
                    total,
                    Event::Retry {
                        attempt,
                        wait,
                        error: e.to_string(),
                    },
                );
                // The wait ends early (and the sync with it) if cancelled.
                // (The timer is made in the runtime, inside the future.)
                let backoff = async move { tokio::time::sleep(wait).await };
                if unless_cancelled(rt, cancel, backoff).is_none() {
                    return Err(HubError::Cancelled);
                }
            }
            Err(e) => return Err(e),
        }
    }
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
    fn only_an_answer_on_an_idle_connection_is_sent_again_at_once() {
        assert!(stale_connection(
            "cannot reach the hub at http://h: error sending request for url (http://h/v1/sync): \
             client error (SendRequest): received unexpected message from connection"
        ));
        // The hub may have taken these: retried with backoff.
        assert!(!stale_connection(
            "client error (SendRequest): connection closed before message completed"
        ));
        assert!(!stale_connection("connection reset by peer"));
    }

    #[test]
    fn the_window_halves_when_a_first_exchange_is_cut_and_not_when_a_connection_runs_out() {
        let mut w = Window::new(None, 65_536);
        assert_eq!(w.limit(), 65_536, "a new hub starts at the ceiling");
        // A 20 KB message under a 64 KiB limit is cut on a fresh connection.
        w.cut(20_000);
        assert_eq!(w.limit(), 10_000);
        w.cut(10_000);
        assert_eq!(w.limit(), 5_000);
        // Two cuts in a row: a link down, not the size; the size doubles back.
        w.got_through(5_000);
        assert_eq!(w.limit(), 10_000);
        // A connection that ran out after a message through says nothing;
        // a single first-exchange cut after it is the size.
        w.cut(10_000);
        assert_eq!(w.limit(), 10_000);
        w.cut(10_000);
        assert_eq!(w.limit(), 5_000);
        // Through: it grows by a quarter, never to 90 % of what was cut.
        w.got_through(5_000);
        assert_eq!(w.limit(), 6_250);
        w.got_through(6_000);
        assert_eq!(w.limit(), 7_812);
        w.got_through(7_000);
        assert_eq!(w.limit(), 9_000, "capped at 90 % of the 10 kB cut");
        // Cut after others went through on the connection: its budget ran
        // out, the size stays.
        w.cut(9_000);
        assert_eq!(w.limit(), 9_000);
        // Down to the floor, not below, whatever the cut.
        for _ in 0..10 {
            w.cut(100);
        }
        assert_eq!(w.limit(), FLOOR_MAX_BYTES);
        // Every PROBE_AFTER messages through, sizes above the cut are tried.
        for _ in 0..(PROBE_AFTER * 12) {
            w.got_through(500);
        }
        assert!(w.limit() > 1_000, "{w:?}");
        // A learnt size is the start, within floor and ceiling; fixed never moves.
        assert_eq!(Window::new(Some(1_500), 65_536).limit(), 1_500);
        assert_eq!(Window::new(Some(100_000), 4_096).limit(), 4_096);
        assert_eq!(Window::new(Some(1), 4_096).limit(), FLOOR_MAX_BYTES);
        let mut f = Window::new(None, 65_536);
        f.fixed = true;
        f.cut(1_000);
        f.got_through(1_000);
        assert_eq!(f.limit(), 65_536);
    }

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
