//! The hub server: the axum router ([`app`]), its handlers, limits, and
//! the listener (plain TCP, or TLS with rustls).
//!
//! Routes: `GET /v1/hub` (who this hub is), `POST /v1/join` (enrollment
//! with a one-time code) and `POST /v1/sync` (one fmp-sync request, signed
//! by an enrolled device). Refusals are a 4xx with a JSON body
//! `{"error": code, "reason": words}`; nothing of a refused request is stored.
//! Store work runs in `spawn_blocking`; the body is read whole first, so
//! a slow phone holds no lock while its bytes trickle in.

use std::collections::HashMap;
use std::net::SocketAddr;
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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(60),
            handler_timeout: Duration::from_secs(60),
            rate_burst: 60.0,
            rate_per_sec: 20.0,
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
        }))
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
        }
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
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
    /// The role granted (also signed in the certificate): a supervisor's
    /// hub for a code made with `--hub`, else an enumerator's phone.
    /// Absent in the answers of hubs from before roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<fmp_sync::Role>,
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
                let role = fmp_sync::Role::from_may_enroll(code.may_enroll);
                let cert = Certificate::issue(store.identity(), device, &pk, fmps, role);
                let me = store.identity();
                Ok(JoinResponse {
                    hub: me.device_id,
                    hub_name: me.name.clone(),
                    hub_public_key: hex::encode(me.public_key()),
                    fmps: code.fmps,
                    may_enroll: code.may_enroll,
                    certificate: cert,
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
    let h = hub.clone();
    let device = signed.device;
    let out = blocking(&hub, move || {
        let trust = h.store.read(db::trust).map_err(ApiError::internal)?;
        let opts = fmp_sync::RespondOptions {
            all_or_nothing: !partial,
            pull_fmps: known.fmps,
        };
        let out = fmp_sync::respond_with(&h.store, &trust, &body, &opts).map_err(ApiError::from)?;
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
