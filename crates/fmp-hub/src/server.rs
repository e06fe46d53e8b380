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
//! Load shedding: a sync request that arrives while [`Limits::max_queued`]
//! sync requests already wait for or hold the store (its single writer)
//! is answered at once, before its body is read, with `503` `Retry-After:
//! SECONDS` and `{"error": "busy", …}`: the queue stays short enough that
//! no client gives up on a request the hub would then apply anyway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fmp_core::store::Store;
use fmp_sync::{Certificate, SyncError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{self, AuthError, Nonces, Signed};
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

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(60),
            handler_timeout: Duration::from_secs(60),
            rate_burst: 60.0,
            rate_per_sec: 20.0,
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
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
    /// Sync requests waiting for or holding the store now.
    queued: AtomicUsize,
    /// Mean time a sync request spends waiting for and holding the store,
    /// µs (moving average).
    service_us: AtomicU64,
    shed: AtomicU64,
    applied_twice: AtomicU64,
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
        db::ensure_tables(&store)?;
        Ok(Arc::new(Hub {
            store: Arc::new(store),
            nonces: Nonces::default(),
            limits,
            buckets: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            service_us: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            applied_twice: AtomicU64::new(0),
        }))
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
        let now = Instant::now();
        let (tokens, at) = b.entry(device).or_insert((self.limits.rate_burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.limits.rate_per_sec)
            .min(self.limits.rate_burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The router: every route of the hub over `state`.
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
        .with_state(state)
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
        let mut r = (self.status, axum::Json(self.body)).into_response();
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
}

async fn hub_info(State(hub): State<AppState>) -> axum::Json<HubInfo> {
    let id = hub.store.identity();
    axum::Json(HubInfo {
        hub: id.device_id,
        name: id.name.clone(),
        public_key: hex::encode(id.public_key()),
    })
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
}

async fn join(
    State(hub): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<JoinResponse>, ApiError> {
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
    let h = hub.clone();
    let resp = blocking(&hub, move || {
        let store = &h.store;
        let device = signed.device;
        store
            .write(|tx| -> Result<JoinResponse, JoinFail> {
                let hash = enroll::hash_code(&req.code);
                let Some(code) = db::code(tx, &hash)? else {
                    return Err(JoinFail::Api(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "unknown_code",
                        "this enrollment code is not known to this hub; check it, or ask the supervisor for a new one",
                    )));
                };
                // The same device asking again with its code: the answer to
                // its first join was lost on the way (a cut link). Answer
                // again, unless it was revoked since; nothing changes here.
                let again = match &code.used_by {
                    Some(by) if *by == device.to_string() => match db::known(tx, device)? {
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
                let fmps = Some(code.fmps.clone());
                if !again {
                    db::use_code(tx, &hash, device)?;
                    db::upsert_device(tx, device, &req.name, &pk, &fmps, code.may_enroll)?;
                }
                let cert = Certificate::issue(store.identity(), device, &pk, fmps);
                let me = store.identity();
                Ok(JoinResponse {
                    hub: me.device_id,
                    hub_name: me.name.clone(),
                    hub_public_key: hex::encode(me.public_key()),
                    fmps: code.fmps,
                    may_enroll: code.may_enroll,
                    certificate: cert,
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

impl From<rusqlite::Error> for JoinFail {
    fn from(e: rusqlite::Error) -> JoinFail {
        JoinFail::Other(e.to_string())
    }
}

impl From<fmp_core::store::StoreError> for JoinFail {
    fn from(e: fmp_core::store::StoreError) -> JoinFail {
        JoinFail::Other(e.to_string())
    }
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
        blocking(&hub, move || {
            h.store
                .read(|c| db::known(c, device))
                .map_err(ApiError::internal)
        })
        .await?
    };
    // The body arrives outside the queue: a slow phone holds no place.
    drop(place);
    let Some(known) = known else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_device",
            format!(
                "device {} is not enrolled on this hub; join it with an enrollment code first",
                signed.device
            ),
        ));
    };
    let body = read_body(&hub, &headers, body).await?;
    auth::verify(&signed, &known.public_key, "POST", SYNC_PATH, &body)?;
    hub.nonces
        .check(signed.device, &signed.nonce, signed.time)?;
    if known.revoked_at.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "revoked_device",
            format!(
                "device {} was revoked on this hub; ask the supervisor to enroll it again",
                signed.device
            ),
        ));
    }
    if !hub.allow(signed.device) {
        return Err(rate_limited());
    }
    let req = fmp_sync::Request::decode(&body).map_err(ApiError::from)?;
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
        let trust = h.store.read(db::trust).map_err(ApiError::internal)?;
        let opts = fmp_sync::RespondOptions {
            all_or_nothing: !partial,
            pull_fmps: known.fmps,
        };
        let (out, outcome) =
            fmp_sync::respond_counted(&h.store, &trust, &body, &opts).map_err(ApiError::from)?;
        if outcome.all_again() {
            h.applied_twice.fetch_add(1, Ordering::SeqCst);
        }
        h.store
            .write(|tx| -> Result<(), fmp_core::store::StoreError> {
                db::touch(tx, device).map_err(|e| fmp_core::store::StoreError::Patch(e.to_string()))
            })
            .map_err(ApiError::internal)?;
        Ok(out)
    })
    .await?;
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/x-fmp-sync")],
        out,
    )
        .into_response())
}

/// Listens on `addr` (TLS if `tls` is given) and serves `state` until
/// `shutdown` resolves; in-flight requests finish first. `on_listening` gets
/// the bound address (port 0 picks one).
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
    on_listening(local);
    let router = app(state);
    let serve_err = |e: std::io::Error| crate::HubError::Listen {
        addr: addr.to_string(),
        source: e,
    };
    match tls {
        None => axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(serve_err),
        Some(cfg) => {
            let l = crate::tls::TlsListener::new(listener, cfg, local);
            axum::serve(l, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(serve_err)
        }
    }
}
