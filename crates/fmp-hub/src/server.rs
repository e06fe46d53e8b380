//! The hub server: the axum router ([`app`]), its handlers, limits, and
//! the listener (plain TCP, or TLS with rustls).
//!
//! Routes: `GET /v1/hub` (who this hub is), `POST /v1/join` (enrollment
//! with a one-time code) and `POST /v1/sync` (one fmp-sync request, signed
//! by an enrolled device). Refusals are a 4xx with a JSON body
//! `{"error": code, "reason": words}`; nothing of a refused request is stored.
//! Store work runs in `spawn_blocking`; the body is read whole first, so
//! a slow phone holds no lock while its bytes trickle in.
//!
//! The listener ([`run`]) is its own accept loop over hyper's HTTP/1
//! server: a header-read timeout (which also closes idle keep-alive
//! connections), a cap on open connections overall and per client address
//! (past it a plain-HTTP client gets `503 busy` and the connection is
//! closed), and one log line per request (see [`log_request`]).

//!
//! Load shedding: a sync request that arrives while [`Limits::max_queued`]
//! sync requests already wait for or hold the store (its single writer)
//! is answered at once, before its body is read, with `503` `Retry-After:
//! SECONDS` and `{"error": "busy", …}`: the queue stays short enough that
//! no client gives up on a request the hub would then apply anyway.

use fmp_core::store::ops::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fmp_core::store::hub::TrustVersion;
use fmp_core::store::{Reader, Store, StoreError, Writer};
use fmp_sync::{Certificate, StaticTrust, SyncError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{self, AuthError, Nonces, Signed, WINDOW_SECS};
use crate::db;
use crate::enroll;

/// Path of the sync endpoint.
pub const SYNC_PATH: &str = "/v1/sync";
/// Path of the enrollment endpoint.
pub const JOIN_PATH: &str = "/v1/join";
/// Path of the hub's identity.
pub const HUB_PATH: &str = "/v1/hub";
/// Header by which a client accepts that the hub stores the in-scope part
/// of a push and answers the refusals in its response.
pub const H_PARTIAL: &str = "x-fmp-partial";

/// Request header: the device's certificate (hex of its postcard bytes),
/// sent by a device this hub answered `unknown_device`. A certificate this
/// hub issued re-enrolls the device as it certifies it: a hub restored
/// from a copy older than the device's enrollment takes it back.
pub const H_CERTIFICATE: &str = "x-fmp-certificate";

/// Request header with [`H_CERTIFICATE`]: the device's name (hex of its
/// UTF-8), for the hub's device list.
pub const H_NAME: &str = "x-fmp-name";

/// The hub's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time to receive a body.
    pub body_timeout: Duration,
    /// Time to answer once the body is in.
    pub handler_timeout: Duration,
    /// Requests a device may burst.
    pub rate_burst: f64,
    /// Requests per second a device may sustain.
    pub rate_per_sec: f64,
    /// Time a client has to send a request's headers, and the longest an
    /// idle keep-alive connection is kept open.
    pub header_timeout: Duration,
    /// Connections open at once, overall; past it new ones get `503 busy`.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// Joins (code redemptions) one source address may burst.
    pub join_burst: f64,
    /// Joins per second one source address may sustain.
    pub join_per_sec: f64,
    /// Joins the whole hub may burst, from every address together.
    pub join_global_burst: f64,
    /// Joins per second the whole hub may sustain (bounds code guessing:
    /// see the hub README's arithmetic).
    pub join_global_per_sec: f64,
    /// Rate buckets kept at most per kind (devices, addresses): idle ones
    /// are dropped first, then the longest idle.
    pub max_buckets: usize,
    /// Sync requests that may wait for or hold the store at once; one more
    /// is shed (`503 busy` with `Retry-After`) before its body is read.
    pub max_queued: usize,
}

/// The default [`Limits::max_queued`]: four per core, at least 8.
pub fn default_max_queued() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 4)
        .unwrap_or(8)
        .max(8)
}

impl Limits {
    /// Largest decompressed sync message the hub accepts: 16 × `max_body`
    /// (at most fmp-sync's own `MAX_DECODED_BYTES`).
    pub fn max_decoded(&self) -> usize {
        self.max_body
            .saturating_mul(16)
            .min(fmp_sync::wire::MAX_DECODED_BYTES)
    }
}

/// Most changes one sync message may carry.
pub const MAX_CHANGES: usize = 50_000;
/// Most bundles one sync message may carry.
pub const MAX_BUNDLES: usize = 50_000;
/// Most hash entries all bundles of one message may list together.
pub const MAX_BUNDLE_HASHES: usize = 200_000;
/// Most certificates one sync message may carry.
pub const MAX_CERTS: usize = 10_000;
/// Most set-reconciliation ranges one sync message may carry.
pub const MAX_RANGES: usize = 4_096;
/// Most hashes one sync request may want (fmp-sync's own client limit).
pub const MAX_WANT: usize = fmp_sync::session::MAX_WANT;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(60),
            handler_timeout: Duration::from_secs(60),
            rate_burst: 60.0,
            rate_per_sec: 20.0,
            header_timeout: Duration::from_secs(20),
            max_connections: 512,
            max_connections_per_ip: 64,
            join_burst: 20.0,
            join_per_sec: 0.2,
            join_global_burst: 60.0,
            join_global_per_sec: 1.0,
            max_buckets: 10_000,
            max_queued: default_max_queued(),
        }
    }
}

/// Everything a handler needs.
#[derive(Debug)]
pub struct Hub {
    store: Arc<Store>,
    nonces: Nonces,
    limits: Limits,
    buckets: Mutex<Buckets<Uuid>>,
    join_buckets: Mutex<Buckets<IpAddr>>,
    join_global: Mutex<(f64, Instant)>,
    /// Sync requests waiting for or holding the store now.
    queued: AtomicUsize,
    /// Mean time a sync request spends waiting for and holding the store,
    /// µs (moving average).
    service_us: AtomicU64,
    shed: AtomicU64,
    applied_twice: AtomicU64,
    /// The trust last read from the store, with its version.
    trust: Mutex<Option<(TrustVersion, Arc<StaticTrust>)>>,
}

/// Token buckets by key, at most `cap` of them (see [`Buckets::take`]).
#[derive(Debug)]
pub struct Buckets<K> {
    map: HashMap<K, (f64, Instant)>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Copy> Buckets<K> {
    /// No buckets yet; at most `cap` kept.
    pub fn new(cap: usize) -> Buckets<K> {
        Buckets {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// How many buckets are kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if none is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Takes a token from `key`'s bucket (`burst` tokens, refilled at
    /// `per_sec`); false if it is empty. A new key past the cap first drops
    /// the buckets idle long enough to be full again (forgetting them
    /// changes nothing), then, if still full, the longest idle one.
    pub fn take(&mut self, key: K, burst: f64, per_sec: f64, now: Instant) -> bool {
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            let refill = if per_sec > 0.0 {
                Duration::from_secs_f64((burst / per_sec).min(86_400.0))
            } else {
                Duration::MAX
            };
            self.map
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < refill);
            while self.map.len() >= self.cap {
                let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                self.map.remove(&oldest);
            }
        }
        let bucket = self.map.entry(key).or_insert((burst, now));
        take(bucket, burst, per_sec, now)
    }
}

fn take(bucket: &mut (f64, Instant), burst: f64, per_sec: f64, now: Instant) -> bool {
    let (tokens, at) = bucket;
    *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec).min(burst);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

/// What a hub's sync handler counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Sync requests shed (`503 busy`) before their body was read.
    pub shed: u64,
    /// Sync requests whose pushed changes were all here already (their
    /// client gave up on an earlier answer and sent them again).
    pub applied_twice: u64,
    /// Sync requests waiting for or holding the store now.
    pub queued: usize,
}

/// Holds one place in the hub's store queue; frees it on drop.
struct InQueue<'a> {
    hub: &'a Hub,
    /// When the store work began, for the mean service time (`None`: not timed).
    since: Option<Instant>,
}

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.hub.queued.fetch_sub(1, Ordering::SeqCst);
        let Some(since) = self.since else {
            return;
        };
        let took = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let old = self.hub.service_us.load(Ordering::Relaxed);
        // Moving average over about eight requests.
        let new = if old == 0 { took } else { (old * 7 + took) / 8 };
        self.hub.service_us.store(new, Ordering::Relaxed);
    }
}

/// The shared state of the router.
pub type AppState = Arc<Hub>;

impl Hub {
    /// A hub over an open store (its hub tables created if missing).
    pub fn new(store: Store, limits: Limits) -> Result<AppState, crate::HubError> {
        Ok(Arc::new(Hub {
            store: Arc::new(store),
            nonces: Nonces::default(),
            buckets: Mutex::new(Buckets::new(limits.max_buckets)),
            join_buckets: Mutex::new(Buckets::new(limits.max_buckets)),
            join_global: Mutex::new((limits.join_global_burst, Instant::now())),
            limits,
            queued: AtomicUsize::new(0),
            service_us: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            applied_twice: AtomicU64::new(0),
            trust: Mutex::new(None),
        }))
    }

    /// The hub's trust (the devices enrolled here, the hub it joined),
    /// read again from the store only when its [`TrustVersion`] moved (a
    /// join, a revocation or a reinstatement, in this process or another
    /// one such as `fmp devices --revoke`); else the one kept in memory.
    fn trust(&self) -> Result<Arc<StaticTrust>, StoreError> {
        let kept = self.trust.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.store.snapshot(|r| {
            let version = r.trust_version()?;
            if let Some((v, t)) = &kept
                && *v == version
            {
                return Ok(t.clone());
            }
            let t = Arc::new(db::trust_on(r)?);
            *self.trust.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, t.clone()));
            Ok(t)
        })
    }

    /// What the sync handler counted so far (sheds, requests applied twice).
    pub fn load(&self) -> Load {
        Load {
            shed: self.shed.load(Ordering::SeqCst),
            applied_twice: self.applied_twice.load(Ordering::SeqCst),
            queued: self.queued.load(Ordering::SeqCst),
        }
    }

    /// A place in the store queue, or the seconds to wait before asking
    /// again when it is full (the queue's expected drain time, 1–30 s).
    fn enter(&self) -> Result<InQueue<'_>, u64> {
        let n = self.queued.fetch_add(1, Ordering::SeqCst);
        if n >= self.limits.max_queued {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.shed.fetch_add(1, Ordering::SeqCst);
            // A full queue drains in about the time a request spends in it
            // (Little's law), which is what `service_us` measures.
            let drain = self.service_us.load(Ordering::Relaxed).div_ceil(1_000_000);
            return Err(drain.clamp(1, 30));
        }
        Ok(InQueue {
            hub: self,
            since: None,
        })
    }

    /// A place in the store queue even when it is full; its time counts
    /// in the mean service time.
    fn enter_anyway(&self) -> InQueue<'_> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        InQueue {
            hub: self,
            since: Some(Instant::now()),
        }
    }

    /// The store it serves.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn allow(&self, device: Uuid) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        b.take(
            device,
            self.limits.rate_burst,
            self.limits.rate_per_sec,
            Instant::now(),
        )
    }

    /// A join from `addr` (`None`: not known, e.g. a test calling the
    /// router directly, counted as one address): within its address's
    /// limit and the hub's global one.
    fn allow_join(&self, addr: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let addr = addr.unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
        let l = &self.limits;
        let mut b = self.join_buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !b.take(addr, l.join_burst, l.join_per_sec, now) {
            return false;
        }
        let mut g = self.join_global.lock().unwrap_or_else(|p| p.into_inner());
        take(&mut g, l.join_global_burst, l.join_global_per_sec, now)
    }

    /// How many rate buckets it keeps: (devices, join addresses).
    pub fn bucket_counts(&self) -> (usize, usize) {
        let d = self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len();
        let j = self
            .join_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (d, j)
    }
}

/// The router: every route of the hub over `state`, each request logged.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(HUB_PATH, get(hub_info))
        .route(JOIN_PATH, post(join))
        .route(SYNC_PATH, post(sync))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint on an fmp hub",
            )
        })
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// The client's address, set by [`run`] on each request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What a refusal said, kept on its response for the request log.
#[derive(Debug, Clone)]
struct Logged {
    error: String,
    reason: String,
}

/// What a sync did, kept on its response for the request log.
#[derive(Debug, Clone, Copy, Default)]
struct SyncCounts {
    pushed: usize,
    accepted: u32,
    refused: usize,
    pulled: usize,
}

/// Logs one line per request (target `fmp_hub::request`): method, route,
/// status, claimed device, client address, bytes in and out, milliseconds,
/// a sync's changes (pushed, accepted, refused, pulled), and a refusal's
/// code and cause. 5xx at ERROR, other refusals at WARN, the rest at INFO.
pub async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.uri().path().to_string();
    let device = req
        .headers()
        .get(auth::H_DEVICE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .chars()
        .take(64)
        .collect::<String>();
    let peer = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.to_string())
        .unwrap_or_else(|| "-".into());
    let bytes_in = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let bytes_out = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .unwrap_or(0);
    let ms = start.elapsed().as_millis() as u64;
    let counts = resp.extensions().get::<SyncCounts>().copied();
    let (pushed, accepted, refused, pulled) = counts
        .map(|c| {
            (
                c.pushed as u64,
                c.accepted as u64,
                c.refused as u64,
                c.pulled as u64,
            )
        })
        .unwrap_or_default();
    let logged = resp.extensions().get::<Logged>().cloned();
    let (error, cause) = logged
        .map(|l| (l.error, l.reason))
        .unwrap_or_else(|| (String::new(), String::new()));
    macro_rules! line {
        ($level:ident, $msg:literal) => {
            tracing::$level!(
                target: "fmp_hub::request",
                %method, route, status, device, peer, bytes_in, bytes_out, ms,
                pushed, accepted, refused, pulled, error, cause,
                $msg
            )
        };
    }
    if status >= 500 {
        line!(error, "request failed");
    } else if status >= 400 {
        line!(warn, "request refused");
    } else {
        line!(info, "request");
    }
    resp
}

/// A refusal: status, a stable code and words for a person.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

/// The JSON body of a refusal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable code: `unsigned`, `bad_signature`, `replayed`, `unknown_device`…
    pub error: String,
    /// What happened and what to do, in words.
    pub reason: String,
    /// Changes refused one by one (`out_of_scope`), with their reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedChange>,
}

/// A change the hub refused, in a JSON error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusedChange {
    /// Change hash (hex).
    pub hash: String,
    /// Why.
    pub reason: String,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                reason: reason.into(),
                refused: Vec::new(),
            },
            retry_after: None,
        }
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let logged = Logged {
            error: self.body.error.clone(),
            reason: self.body.reason.clone(),
        };
        let mut r = (self.status, axum::Json(self.body)).into_response();
        r.extensions_mut().insert(logged);
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let code = match e {
            AuthError::Unsigned(_) => "unsigned",
            AuthError::BadSignature(_) => "bad_signature",
            AuthError::Stale(_) => "stale_request",
            AuthError::Replayed => "replayed",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> ApiError {
        match e {
            SyncError::Refused(ref list) => {
                let mut err = ApiError::new(StatusCode::FORBIDDEN, "out_of_scope", e.to_string());
                let list = list.clone();
                err.body.refused = list
                    .into_iter()
                    .map(|r| RefusedChange {
                        hash: hex::encode(r.hash),
                        reason: r.reason,
                    })
                    .collect();
                err
            }
            SyncError::BadSignature { .. }
            | SyncError::UnknownAuthor(_)
            | SyncError::ForgedAuthor { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_bundle", e.to_string())
            }
            SyncError::UnknownVersion { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_version", e.to_string())
            }
            e if e.is_refusal() => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_message", e.to_string())
            }
            e => ApiError::internal(e),
        }
    }
}

/// Who the hub is: `GET /v1/hub`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubInfo {
    /// Device id of the hub.
    pub hub: Uuid,
    /// Its name.
    pub name: String,
    /// Its Ed25519 public key (hex).
    pub public_key: String,
    /// HQ as this hub knows it (see [`JoinResponse::hq`]): a store that
    /// joined before HQ's identity was passed at join pins it from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hq: Option<HqIdentity>,
}

/// HQ as this hub knows it: the identity it pinned, or its own if it joined
/// no hub (it is HQ); `None` if it joined a hub but pinned no HQ yet (it
/// joined before pins existed, and has not synced with its upstream since).
fn hq_of(r: &Reader<'_>) -> Result<Option<HqIdentity>, StoreError> {
    Ok(r.hq_identity()?.map(|a| HqIdentity {
        device: a.device_id,
        public_key: hex::encode(a.public_key),
    }))
}

async fn hub_info(State(hub): State<AppState>) -> Result<axum::Json<HubInfo>, ApiError> {
    let h = hub.clone();
    let hq = blocking(&hub, move || {
        h.store.snapshot(hq_of).map_err(ApiError::internal)
    })
    .await?;
    let id = hub.store.identity();
    Ok(axum::Json(HubInfo {
        hub: id.device_id,
        name: id.name.clone(),
        public_key: hex::encode(id.public_key()),
        hq,
    }))
}

async fn read_body(hub: &Hub, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let max = hub.limits.max_body;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than the hub's limit of {max} bytes"),
        )
    };
    if let Some(len) = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large());
    }
    match tokio::time::timeout(hub.limits.body_timeout, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request body did not arrive in time",
        )),
        Ok(Err(e)) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = src {
                if s.to_string().contains("length limit") {
                    return Err(too_large());
                }
                src = s.source();
            }
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("reading the request body: {e}"),
            ))
        }
        Ok(Ok(b)) => Ok(b.to_vec()),
    }
}

fn signed(headers: &HeaderMap) -> Result<Signed, ApiError> {
    Ok(auth::read_headers(|n| {
        headers.get(n).and_then(|v| v.to_str().ok())
    })?)
}

async fn blocking<T: Send + 'static>(
    hub: &Hub,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::time::timeout(hub.limits.handler_timeout, tokio::task::spawn_blocking(f)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the hub took too long to answer; try again",
        )),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Ok(Ok(r)) => r,
    }
}

/// What a device sends to join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The one-time code.
    pub code: String,
    /// The device's name.
    pub name: String,
    /// Its Ed25519 public key (hex); the request is signed with it.
    pub public_key: String,
    /// The HQ the joining store is pinned to, if any: a hub of another HQ
    /// refuses the join before using the code (older devices send none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hq: Option<HqIdentity>,
    /// The joining store enrolls devices of its own (a hub): a code that
    /// does not let it enroll is refused before it is used, as joining with
    /// it would cut off its devices (older devices send none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrolls: bool,
}

/// What the hub answers a device that joined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The hub's device id.
    pub hub: Uuid,
    /// The hub's name.
    pub hub_name: String,
    /// The hub's public key (hex).
    pub hub_public_key: String,
    /// FMPs the device may write.
    pub fmps: Vec<String>,
    /// Whether it may enroll devices of its own (a hub joining HQ).
    pub may_enroll: bool,
    /// The device's certificate, issued by the hub.
    pub certificate: Certificate,
    /// HQ, the only authority for the registry and forms, as this hub
    /// pinned it (itself if it joined no hub: it is HQ). The joining store
    /// pins it. Absent from older hubs, and from a hub that joined its own
    /// before pins existed and has not synced since (the store then pins HQ
    /// at a later sync, from `GET /v1/hub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hq: Option<HqIdentity>,
    /// The role granted (also signed in the certificate): a supervisor's
    /// hub for a code made with `--hub`, else an enumerator's phone.
    /// Absent in the answers of hubs from before roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<fmp_sync::Role>,
}

/// HQ's identity, passed down the chain of hubs at join.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HqIdentity {
    /// HQ's device id.
    pub device: Uuid,
    /// HQ's Ed25519 public key (hex).
    pub public_key: String,
}

async fn join(
    State(hub): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<JoinResponse>, ApiError> {
    // Limited by source address and for the whole hub before anything
    // else: the device id is the requester's choice, so a limit keyed on
    // it alone lets a guesser pick a fresh id per guess.
    if !hub.allow_join(peer.map(|Extension(ConnectInfo(a))| a.ip())) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many enrollment attempts from this address or on this hub; wait a minute and retry",
        ));
    }
    let signed = signed(&headers)?;
    let body = read_body(&hub, &headers, body).await?;
    let req: JoinRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("join request: {e}"),
        )
    })?;
    let pk = hex::decode(&req.public_key).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("public_key: {e}"),
        )
    })?;
    auth::verify(&signed, &pk, "POST", JOIN_PATH, &body)?;
    hub.nonces
        .check(signed.device, &signed.nonce, signed.time)?;
    if !hub.allow(signed.device) {
        return Err(rate_limited());
    }
    check_name(&req.name)?;
    let h = hub.clone();
    let resp = blocking(&hub, move || {
        let store = &h.store;
        let device = signed.device;
        store
            .transaction(|w| -> Result<JoinResponse, JoinFail> {
                if w.nonce_seen(device, &signed.nonce)? {
                    return Err(JoinFail::Api(AuthError::Replayed.into()));
                }
                let hash = enroll::hash_code(&req.code);
                let Some(code) = w.enrollment_code(&hash)? else {
                    return Err(JoinFail::Api(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "unknown_code",
                        "this enrollment code is not known to this hub; check it, or ask the supervisor for a new one",
                    )));
                };
                // A store pinned to another HQ would refuse this hub's
                // answer: refused here, before the code is used.
                if let (Some(theirs), Some(ours)) = (&req.hq, hq_of(w)?)
                    && *theirs != ours
                {
                    return Err(JoinFail::Api(ApiError::new(
                        StatusCode::CONFLICT,
                        "other_hq",
                        format!("this device is pinned to HQ device {} and this hub belongs to HQ device {}; a store joins hubs of one HQ only (nothing was changed, the code stays unused)", theirs.device, ours.device),
                    )));
                }
                // A device id is bound to its first key for good, and a
                // revoked device comes back only by the supervisor's
                // `fmp devices --reinstate`, never by a code alone.
                let existing = w.enrolled_device(device)?;
                if let Some(k) = &existing {
                    if k.public_key != pk {
                        return Err(JoinFail::Api(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "wrong_device",
                            format!("device {device} is enrolled on this hub with another key; a device id stays bound to its first key. A reinstalled phone joins as a new device (`fmp init` gives it a new id)"),
                        )));
                    }
                    if k.revoked_at.is_some() {
                        return Err(JoinFail::Api(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "revoked_device",
                            format!("device {device} was revoked by the supervisor; an enrollment code does not bring it back: the supervisor reinstates it with `fmp devices --store HUB --reinstate {device}`"),
                        )));
                    }
                }
                // The same device asking again with its code: the answer to
                // its first join was lost on the way (a cut link). Answer
                // again, unless it was revoked since; nothing changes here.
                let again = match &code.used_by {
                    Some(by) if *by == device.to_string() => match w.enrolled_device(device)? {
                        Some(k) if k.revoked_at.is_some() => {
                            return Err(JoinFail::Api(ApiError::new(
                                StatusCode::FORBIDDEN,
                                "revoked_device",
                                format!("device {device} was revoked by the supervisor; its enrollment code cannot enroll it again"),
                            )));
                        }
                        Some(k) if k.public_key == pk => true,
                        _ => false,
                    },
                    _ => false,
                };
                if let (Some(by), false) = (&code.used_by, again) {
                    return Err(JoinFail::Api(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "code_used",
                        format!("this enrollment code was already used (by device {by}); each code enrolls one device, ask the supervisor for a new one"),
                    )));
                }
                if !again && code.expires_at < chrono::Utc::now().timestamp_millis() {
                    return Err(JoinFail::Api(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "code_expired",
                        "this enrollment code has expired; ask the supervisor for a new one",
                    )));
                }
                // Asked again with an old code: answered with what the
                // device holds now (a later code may have changed its
                // FMPs), never with what that old code granted.
                let (granted_fmps, may_enroll) = match (&existing, again) {
                    (Some(k), true) => (
                        k.fmps.clone().unwrap_or_else(|| code.fmps.clone()),
                        k.may_enroll,
                    ),
                    _ => (code.fmps.clone(), code.may_enroll),
                };
                if req.enrolls && !may_enroll {
                    return Err(JoinFail::Api(ApiError::new(
                        StatusCode::CONFLICT,
                        "hub_code_needed",
                        "the joining store is a hub (it enrolls devices of its own), but this code lets it only record: joining with it would stop it from syncing its devices' records. Nothing was changed, the code stays unused; make a code with `fmp enroll-code --hub`",
                    )));
                }
                let fmps = Some(granted_fmps.clone());
                if !again {
                    let clash = w.active_named(&req.name, device)?;
                    if !clash.is_empty() {
                        return Err(JoinFail::Api(ApiError::new(
                            StatusCode::CONFLICT,
                            "name_taken",
                            format!(
                                "the name {:?} is already used on this hub by device {}; give this device another name (`fmp rename --store DIR NEW-NAME` on the device, then join again with the same code)",
                                req.name,
                                clash.iter().map(|d| d.device.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        )));
                    }
                    w.use_enrollment_code(&hash, device)?;
                    w.enroll_device(device, &req.name, &pk, fmps.as_deref(), code.may_enroll)?;
                }
                remember_nonce(w, &signed)?;
                let role = fmp_sync::Role::from_may_enroll(may_enroll);
                let cert = Certificate::issue(store.identity(), device, &pk, fmps, role);
                let me = store.identity();
                let hq = hq_of(w)?;
                Ok(JoinResponse {
                    hub: me.device_id,
                    hub_name: me.name.clone(),
                    hub_public_key: hex::encode(me.public_key()),
                    fmps: granted_fmps,
                    may_enroll,
                    certificate: cert,
                    hq,
                    role: Some(role),
                })
            })
            .map_err(JoinFail::into_api)
    })
    .await?;
    // Keep the certificate so it travels with the device's bundles upstream.
    let h = hub.clone();
    let cert = resp.certificate.clone();
    blocking(&hub, move || {
        fmp_sync::trust::store_certificate(&h.store, &cert).map_err(ApiError::from)
    })
    .await?;
    Ok(axum::Json(resp))
}

enum JoinFail {
    Api(ApiError),
    Other(String),
}

impl JoinFail {
    fn into_api(self) -> ApiError {
        match self {
            JoinFail::Api(a) => a,
            JoinFail::Other(s) => ApiError::internal(s),
        }
    }
}

impl From<fmp_core::store::StoreError> for JoinFail {
    fn from(e: fmp_core::store::StoreError) -> JoinFail {
        JoinFail::Other(e.to_string())
    }
}

/// Remembers a request's nonce on disk and forgets expired ones, in the
/// caller's transaction (no commit of its own).
/// False if the nonce was already remembered (a replay that raced past
/// the check before the write: the caller refuses it).
fn remember_nonce(w: &Writer<'_>, signed: &Signed) -> Result<bool, StoreError> {
    let now = chrono::Utc::now().timestamp();
    w.remember_nonce(signed.device, &signed.nonce, signed.time, now - WINDOW_SECS)
}

fn too_many(what: &str, n: usize, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "too_many",
        format!("the sync message carries {n} {what}; a hub takes at most {max} per message"),
    )
}

/// The counts of a sync message the hub bounds before doing any work.
fn check_message(req: &fmp_sync::Request) -> Result<(), ApiError> {
    let mut want: Vec<&fmp_sync::wire::Hash> = req.want.iter().collect();
    if want.len() > MAX_WANT {
        want.sort_unstable();
        want.dedup();
        return Err(too_many(
            &format!(
                "wanted hashes ({} listed, {} distinct)",
                req.want.len(),
                want.len()
            ),
            req.want.len(),
            MAX_WANT,
        ));
    }
    let push = &req.push;
    if push.changes.len() > MAX_CHANGES {
        return Err(too_many("changes", push.changes.len(), MAX_CHANGES));
    }
    if push.bundles.len() > MAX_BUNDLES {
        return Err(too_many("bundles", push.bundles.len(), MAX_BUNDLES));
    }
    let hashes: usize = push.bundles.iter().map(|b| b.hashes.len()).sum();
    if hashes > MAX_BUNDLE_HASHES {
        return Err(too_many("bundle hash entries", hashes, MAX_BUNDLE_HASHES));
    }
    if push.certs.len() > MAX_CERTS {
        return Err(too_many("certificates", push.certs.len(), MAX_CERTS));
    }
    if let Some(r) = &req.reconcile
        && r.len() > MAX_RANGES
    {
        return Err(too_many("reconciliation ranges", r.len(), MAX_RANGES));
    }
    Ok(())
}

pub use fmp_core::names::{MAX_NAME, valid_name};

/// The certificate in [`H_CERTIFICATE`], if one came, this hub issued it to
/// `device`, and the name in [`H_NAME`] (checked like a join's). A
/// certificate that came and is not this hub's is refused, naming why.
fn issued_here(
    me: &fmp_core::store::Identity,
    headers: &HeaderMap,
    device: Uuid,
) -> Result<Option<(Certificate, String)>, ApiError> {
    let Some(v) = headers.get(H_CERTIFICATE) else {
        return Ok(None);
    };
    let refuse = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_device",
            format!(
                "device {device} is not enrolled on this hub and its certificate does not re-enroll it: {why}; join it with an enrollment code"
            ),
        )
    };
    let cert = hex::decode(v.as_bytes())
        .ok()
        .and_then(|b| Certificate::decode_stored(&b))
        .ok_or_else(|| refuse("the certificate header is not a certificate"))?;
    if cert.device != device {
        return Err(refuse("the certificate is another device's"));
    }
    if cert.issuer != me.device_id || cert.is_self_signed() {
        return Err(refuse("this hub did not issue it"));
    }
    if !fmp_core::store::identity::verify(me.public_key(), &cert.payload(), &cert.sig) {
        return Err(refuse("its signature is not this hub's"));
    }
    // Hex of the UTF-8 name (a header carries only ASCII).
    let name = match headers.get(H_NAME) {
        Some(v) => {
            let n = hex::decode(v.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| refuse("the name header is not hex of UTF-8"))?;
            check_name(&n)?;
            n
        }
        None => format!("device-{}", &device.to_string()[..8]),
    };
    Ok(Some((cert, name)))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    valid_name(name).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_name",
            format!("{why}; give the device a plain name of 1 to {MAX_NAME} characters (`fmp rename --store DIR NEW-NAME` on the device, then join again)"),
        )
    })
}

/// `503 busy` with `Retry-After: secs`.
fn busy(secs: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!("the hub is busy with other devices; send the request again in {secs} s"),
    );
    e.retry_after = Some(secs);
    e
}

fn rate_limited() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests from this device; slow down and retry",
    )
}

async fn sync(
    State(hub): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let signed = signed(&headers)?;
    // Shed at once, before reading the body, when the store's queue is full.
    let place = hub.enter().map_err(busy)?;
    let known = {
        let h = hub.clone();
        let device = signed.device;
        // Looked up on the store's writer, behind the write in progress: a
        // place in the queue is a place in the line for the store, so a
        // line that is full sheds before any body is read. (Nothing is
        // written: the transaction commits empty, without a sync to disk.)
        blocking(&hub, move || {
            h.store
                .transaction(|w| w.enrolled_device(device))
                .map_err(ApiError::internal)
        })
        .await?
    };
    // The body arrives outside the queue: a slow phone holds no place.
    drop(place);
    let (known, rejoin) = match known {
        Some(k) => (k, None),
        None => match issued_here(hub.store.identity(), &headers, signed.device)? {
            Some((cert, name)) => (
                db::TrustRow {
                    device: cert.device,
                    public_key: cert.public_key.clone(),
                    fmps: cert.fmps.clone(),
                    may_enroll: cert.role().may_enroll(),
                    revoked_at: None,
                },
                Some((cert, name)),
            ),
            None => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "unknown_device",
                    format!(
                        "device {} is not enrolled on this hub; join it with an enrollment code first",
                        signed.device
                    ),
                ));
            }
        },
    };
    let body = read_body(&hub, &headers, body).await?;
    auth::verify(&signed, &known.public_key, "POST", SYNC_PATH, &body)?;
    hub.nonces
        .check(signed.device, &signed.nonce, signed.time)?;
    if let Some((cert, name)) = rejoin {
        // Signed with the certified key: the device holds it. Enrolled
        // again as the certificate says, unless a row came meanwhile (a
        // revoked device stays revoked).
        let h = hub.clone();
        blocking(&hub, move || {
            let added = h
                .store
                .transaction(|w| -> Result<bool, crate::HubError> {
                    if w.enrolled_device(cert.device)?.is_some() {
                        return Ok(false);
                    }
                    w.enroll_device(
                        cert.device,
                        &name,
                        &cert.public_key,
                        cert.fmps.as_deref(),
                        cert.role().may_enroll(),
                    )?;
                    Ok(true)
                })
                .map_err(ApiError::internal)?;
            if added {
                fmp_sync::trust::store_certificate(&h.store, &cert).map_err(ApiError::from)?;
            }
            Ok(())
        })
        .await?;
        tracing::warn!(
            device = %signed.device,
            "re-enrolled from the certificate this hub issued it (this store was restored from a copy older than its enrollment?)"
        );
    }
    if known.revoked_at.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "revoked_device",
            format!(
                "device {0} was revoked on this hub; what it records stays on it; ask the supervisor to reinstate it (`fmp devices --store HUB --reinstate {0}`)",
                signed.device
            ),
        ));
    }
    if !hub.allow(signed.device) {
        return Err(rate_limited());
    }
    let max_decoded = hub.limits.max_decoded();
    let req = fmp_sync::Request::decode_limited(&body, max_decoded).map_err(|e| match e {
        SyncError::Corrupt(ref d) if d.contains("too small") => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the sync message decompresses to more than the hub's limit of {max_decoded} bytes (16 × its body limit)"
            ),
        ),
        e => ApiError::from(e),
    })?;
    check_message(&req)?;
    let pushed = req.push.changes.len();
    if req.from != signed.device {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_device",
            format!(
                "the sync message is from device {} but the request is signed by {}",
                req.from, signed.device
            ),
        ));
    }
    let partial = headers.get(H_PARTIAL).is_some_and(|v| v.as_bytes() == b"1");
    // Admitted above: the body is in, so this request is served, not shed.
    let _place = hub.enter_anyway();
    let h = hub.clone();
    let device = signed.device;
    let out = blocking(&hub, move || {
        // The nonce cache on disk: a request captured before a restart.
        if h.store
            .snapshot(|r| r.nonce_seen(device, &signed.nonce))
            .map_err(ApiError::internal)?
        {
            return Err(AuthError::Replayed.into());
        }
        let trust = h.trust().map_err(ApiError::internal)?;
        let opts = fmp_sync::RespondOptions {
            all_or_nothing: !partial,
            pull_fmps: known.fmps,
        };
        // The request decoded once (above, with the hub's limits); the
        // device's last sync and the nonce written in the sync's own
        // transaction: one durable commit per request.
        // The nonce is taken in that transaction, so a copy of the request
        // that raced past the check above (another process on this store,
        // say) finds it taken there and is refused whole, nothing applied.
        let replayed = std::cell::Cell::new(false);
        let note = |w: &fmp_core::store::Writer<'_>| -> Result<(), StoreError> {
            w.note_sync(device)?;
            if !remember_nonce(w, &signed)? {
                replayed.set(true);
                return Err(StoreError::NotAllowed(
                    "this request was already served".into(),
                ));
            }
            Ok(())
        };
        let served = fmp_sync::respond_decoded(&h.store, &*trust, req, &opts, &note);
        if replayed.get() {
            return Err(AuthError::Replayed.into());
        }
        let (out, outcome) = served.map_err(ApiError::from)?;
        if outcome.all_again() {
            h.applied_twice.fetch_add(1, Ordering::SeqCst);
        }
        Ok(out)
    })
    .await?;
    let counts = match fmp_sync::Response::decode(&out) {
        Ok(r) => SyncCounts {
            pushed,
            accepted: r.accepted,
            refused: r.refused.len(),
            pulled: r.pull.changes.len(),
        },
        Err(_) => SyncCounts {
            pushed,
            ..SyncCounts::default()
        },
    };
    let mut resp = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/x-fmp-sync")],
        out,
    )
        .into_response();
    resp.extensions_mut().insert(counts);
    Ok(resp)
}

/// Listens on `addr` (TLS if `tls` is given) and serves `state` until
/// `shutdown` resolves; in-flight requests finish first. `on_listening` gets
/// the bound address (port 0 picks one). Connections past the hub's caps
/// are answered `503 busy` (plain HTTP) or closed (TLS) at once; headers
/// must arrive within `header_timeout`, which also closes idle keep-alives.
pub async fn run(
    state: AppState,
    addr: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::HubError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| crate::HubError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| crate::HubError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let limits = state.limits.clone();
    tracing::info!(
        target: "fmp_hub::server",
        addr = %local,
        tls = tls.is_some(),
        max_body = limits.max_body,
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_connections_per_ip,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        "listening"
    );
    on_listening(local);
    let router = app(state);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let conns = Arc::new(Conns::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut busy_refused: u64 = 0;
    let mut busy_logged: Option<Instant> = None;
    loop {
        let (sock, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a little.
                    tracing::warn!(target: "fmp_hub::server", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = conns.clone().take(peer.ip(), &limits) else {
            // One line a second at most, with the count since the last.
            busy_refused += 1;
            if busy_logged.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    target: "fmp_hub::server",
                    peer = %peer,
                    refused = busy_refused,
                    open = conns.open(),
                    max_connections = limits.max_connections,
                    max_connections_per_ip = limits.max_connections_per_ip,
                    "connections refused: busy"
                );
                busy_refused = 0;
                busy_logged = Some(Instant::now());
            }
            if acceptor.is_none() {
                tokio::spawn(answer_busy(sock));
            }
            continue;
        };
        let _ = sock.set_nodelay(true);
        let router = router.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut r = router.clone();
                tower_service::Service::call(&mut r, req)
            });
        match &acceptor {
            None => {
                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(sock), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = conn.await {
                        tracing::debug!(target: "fmp_hub::server", peer = %peer, error = %e, "connection ended");
                    }
                });
            }
            Some(a) => {
                let a = a.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                let handshake = limits.header_timeout;
                tokio::spawn(async move {
                    let _slot = slot;
                    let tls = match tokio::time::timeout(handshake, a.accept(sock)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(target: "fmp_hub::server", peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(target: "fmp_hub::server", peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(target: "fmp_hub::server", peer = %peer, error = %e, "connection ended");
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    tracing::info!(target: "fmp_hub::server", "stopped");
    Ok(())
}

/// Open connections, overall and per client address.
#[derive(Debug, Default)]
struct Conns {
    by_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
}

impl Conns {
    fn open(&self) -> usize {
        self.by_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A slot for one more connection from `ip`, if both caps allow it.
    fn take(self: Arc<Self>, ip: std::net::IpAddr, limits: &Limits) -> Option<Slot> {
        {
            let mut m = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
            let total: usize = m.values().sum();
            let mine = m.get(&ip).copied().unwrap_or(0);
            if total >= limits.max_connections || mine >= limits.max_connections_per_ip {
                return None;
            }
            *m.entry(ip).or_insert(0) += 1;
        }
        Some(Slot { conns: self, ip })
    }
}

/// One open connection's place under the caps; freed on drop.
#[derive(Debug)]
struct Slot {
    conns: Arc<Conns>,
    ip: std::net::IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.conns.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Body of the `503 busy` answer to a connection past the caps.
pub const BUSY_BODY: &str =
    r#"{"error":"busy","reason":"the hub has too many open connections; try again in a moment"}"#;

/// Answers a connection past the caps with `503 busy` and closes it, giving
/// the client a second to read it (never longer: it holds no slot).
async fn answer_busy(mut sock: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        sock.write_all(msg.as_bytes()).await?;
        sock.shutdown().await?;
        // Drain what the client sent so closing does not reset the
        // connection before it read the answer.
        let mut buf = [0u8; 4096];
        while sock.read(&mut buf).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fmp_sync::Trust;

    #[test]
    fn the_kept_trust_is_read_again_after_a_revocation_by_another_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hub");
        let store = Store::init(&dir, "hub").unwrap();
        let d = Uuid::now_v7();
        let fmps = ["ML-GOG".to_string()];
        store
            .transaction(|w| w.enroll_device(d, "phone", &[1; 32], Some(&fmps), false))
            .unwrap();
        let hub = Hub::new(store, Limits::default()).unwrap();
        let first = hub.trust().unwrap();
        assert!(first.author(d).is_some());
        assert!(Arc::ptr_eq(&first, &hub.trust().unwrap()), "kept");
        // `fmp devices --revoke` on the same store, in another process.
        let other = Store::open(&dir).unwrap();
        assert_eq!(db::revoke(&other, &d.to_string()).unwrap(), 1);
        let after = hub.trust().unwrap();
        assert!(after.author(d).is_none());
        assert!(after.why_unknown(d).is_some_and(|w| w.contains("revoked")));
    }
}
