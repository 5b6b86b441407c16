//! HTTP surface: intake, agent-compatibility endpoints, query API, UI.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path as AxPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::intake::{self, IntakeError, Limits, Part};
use crate::query::{self, Selection, TreeOptions};
use crate::store::{Store, StoreError};
use crate::timeparse::now_ns;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth_token: Option<String>,
    pub max_body: u64,
    pub max_decompressed: u64,
    pub max_parts: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            auth_token: None,
            max_body: 64 << 20,
            max_decompressed: 256 << 20,
            max_parts: 32,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub cfg: Arc<ApiConfig>,
}

/// An error answered as `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::WriterGone => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Io(io) if io.raw_os_error() == Some(28) => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::error!(error = %e, "request failed");
        ApiError(status, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router(state: AppState) -> Router {
    let max_body = usize::try_from(state.cfg.max_body).unwrap_or(usize::MAX);
    let protected = Router::new()
        .route("/profiling/v1/input", post(intake_handler))
        .route("/api/v2/profile", post(intake_handler))
        .route("/api/services", get(services))
        .route("/api/types", get(types))
        .route("/api/tags", get(tags))
        .route("/api/profiles", get(profiles))
        .route("/api/profiles/{id}", get(profile))
        .route("/api/flamegraph", get(flamegraph))
        .route("/api/top", get(top))
        .route("/api/diff", get(diff))
        .route("/api/timeseries", get(timeseries))
        .route("/api/timeline", get(timeline))
        .route("/api/pprof", get(pprof))
        .route("/api/status", get(status))
        .route("/api/maintain", post(maintain))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(protected)
        .route("/info", get(info))
        .route("/v0.4/traces", any(traces))
        .route("/v0.5/traces", any(traces))
        .route("/v0.6/stats", any(accepted))
        .route("/v0.7/config", any(rc_config))
        .route("/telemetry/proxy/{*rest}", any(accepted))
        .route("/evp_proxy/{*rest}", any(accepted))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(crate::ui::index))
        .route("/assets/{file}", get(crate::ui::asset))
        .route("/favicon.ico", get(crate::ui::favicon))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no such endpoint; see docs/API.md".into(),
    )
}

fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let eq = |a: &str| {
        a.len() == token.len()
            && a.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    };
    if let Some(v) = headers.get("dd-api-key").and_then(|v| v.to_str().ok()) {
        if eq(v.trim()) {
            return true;
        }
    }
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(b) = v.strip_prefix("Bearer ") {
            return eq(b.trim());
        }
        if let Some(b) = v.strip_prefix("Basic ") {
            if let Some(decoded) = base64_decode(b.trim()) {
                if let Some((_, pass)) = decoded.split_once(':') {
                    return eq(pass);
                }
            }
        }
    }
    false
}

fn base64_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    String::from_utf8(out).ok()
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.cfg.auth_token {
        if !token_matches(req.headers(), token) {
            let mut r = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token (send Authorization: Bearer <token> or DD-API-KEY)".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"emberscope\""),
            );
            return r;
        }
    }
    next.run(req).await
}

async fn info() -> Json<serde_json::Value> {
    Json(json!({
        "version": format!("emberscope-agent-{}", env!("CARGO_PKG_VERSION")),
        "git_commit": "",
        "endpoints": [
            "/v0.4/traces",
            "/v0.5/traces",
            "/profiling/v1/input",
            "/telemetry/proxy/",
        ],
        "feature_flags": [],
        "client_drop_p0s": false,
        "span_meta_structs": false,
        "long_running_spans": false,
        "config": {
            "default_env": "none",
            "statsd_port": 0,
            "receiver_port": 8126,
            "analyzed_spans_by_service": {},
        },
        "peer_tags": [],
    }))
}

async fn traces(body: axum::body::Bytes) -> Json<serde_json::Value> {
    // Traces are accepted and dropped: emberscope stores profiles only.
    let _ = body.len();
    Json(json!({ "rate_by_service": { "service:,env:": 1.0 } }))
}

async fn accepted(body: axum::body::Bytes) -> impl IntoResponse {
    let _ = body.len();
    (StatusCode::ACCEPTED, Json(json!({})))
}

async fn rc_config(body: axum::body::Bytes) -> Json<serde_json::Value> {
    let _ = body.len();
    Json(json!({}))
}

async fn intake_handler(
    State(st): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let received = now_ns();
    let result = intake_inner(&st, &headers, multipart, received).await;
    if result.is_err() {
        st.store
            .stats
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    result
}

async fn intake_inner(
    st: &AppState,
    headers: &HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    received: i64,
) -> ApiResult<Response> {
    let mut mp = multipart.map_err(|e| bad(format!("expected multipart/form-data: {e}")))?;
    let mut parts = Vec::new();
    let mut total = 0u64;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let status = e.status();
                return Err(ApiError(
                    if status == StatusCode::PAYLOAD_TOO_LARGE {
                        status
                    } else {
                        StatusCode::BAD_REQUEST
                    },
                    format!("malformed multipart body: {}", e.body_text()),
                ));
            }
        };
        if parts.len() >= st.cfg.max_parts {
            return Err(bad(format!("too many parts (limit {})", st.cfg.max_parts)));
        }
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let data = field.bytes().await.map_err(|e| {
            let status = e.status();
            ApiError(
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    status
                } else {
                    StatusCode::BAD_REQUEST
                },
                format!("malformed multipart body: {}", e.body_text()),
            )
        })?;
        total += data.len() as u64;
        if total > st.cfg.max_body {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large".into(),
            ));
        }
        parts.push(Part {
            name,
            filename,
            data: data.to_vec(),
        });
    }
    let mut header_tags = intake::header_tags(headers);
    // Like the Datadog agent: the agent's host name fills a missing `host` tag.
    if let Some(h) = agent_hostname() {
        header_tags.push(("host".to_string(), h));
    }
    let limits = Limits {
        max_decompressed: st.cfg.max_decompressed,
    };
    let upload = tokio::task::spawn_blocking(move || {
        intake::build_upload(parts, &header_tags, received, limits)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| match e {
        IntakeError::TooLarge(_) => ApiError(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        other => bad(other.to_string()),
    })?;
    let service = upload.service.clone();
    let id = st.store.ingest(upload).await?;
    tracing::debug!(id, service = %service, "stored upload");
    Ok((StatusCode::OK, Json(json!({ "profile_id": id }))).into_response())
}

fn agent_hostname() -> Option<String> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .clone()
}

async fn blocking<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&Store, &rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = None;
        let r = store.read(|conn| {
            out = Some(f(&store, conn));
            Ok(())
        });
        match (r, out) {
            (Err(e), _) => Err(ApiError::from(e)),
            (Ok(()), Some(v)) => v,
            (Ok(()), None) => Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no result".into(),
            )),
        }
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

type Params = Query<HashMap<String, String>>;

fn selection(p: &HashMap<String, String>, prefix: Option<&str>) -> ApiResult<Selection> {
    Selection::from_params(p, prefix, now_ns()).map_err(bad)
}

fn limit(p: &HashMap<String, String>, default: usize, max: usize) -> usize {
    p.get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(default)
        .clamp(1, max)
}

async fn services(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    blocking(&st, |_, c| Ok(Json(json!(query::services(c)?)))).await
}

async fn types(State(st): State<AppState>, Query(p): Params) -> ApiResult<Json<serde_json::Value>> {
    let sel = selection(&p, None)?;
    blocking(&st, move |_, c| {
        let t = query::types_in(c, &sel)?;
        let out: Vec<_> = t
            .into_iter()
            .map(|(t, total)| json!({ "name": t.name, "unit": t.unit, "total": total }))
            .collect();
        Ok(Json(json!(out)))
    })
    .await
}

async fn tags(State(st): State<AppState>, Query(p): Params) -> ApiResult<Json<serde_json::Value>> {
    let sel = selection(&p, None)?;
    let per_key = limit(&p, 50, 1000);
    blocking(&st, move |_, c| {
        Ok(Json(json!(query::tags(c, &sel, per_key)?)))
    })
    .await
}

async fn profiles(
    State(st): State<AppState>,
    Query(p): Params,
) -> ApiResult<Json<serde_json::Value>> {
    let sel = selection(&p, None)?;
    let n = limit(&p, 200, 10_000);
    blocking(&st, move |_, c| {
        Ok(Json(json!(query::profiles(c, &sel, n)?)))
    })
    .await
}

async fn profile(
    State(st): State<AppState>,
    AxPath(id): AxPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id: i64 = id.parse().map_err(|_| bad("invalid profile id"))?;
    blocking(&st, move |_, c| match query::profile(c, id)? {
        Some(p) => Ok(Json(json!(p))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {id}"))),
    })
    .await
}

async fn flamegraph(
    State(st): State<AppState>,
    Query(p): Params,
) -> ApiResult<Json<serde_json::Value>> {
    let sel = selection(&p, None)?;
    let opts = TreeOptions::from_params(&p);
    let ty = p.get("type").cloned();
    blocking(&st, move |s, c| {
        Ok(Json(json!(query::flamegraph(
            s,
            c,
            &sel,
            ty.as_deref(),
            opts
        )?)))
    })
    .await
}

async fn top(State(st): State<AppState>, Query(p): Params) -> ApiResult<Json<serde_json::Value>> {
    let sel = selection(&p, None)?;
    let n = limit(&p, 100, 10_000);
    let ty = p.get("type").cloned();
    blocking(&st, move |s, c| {
        Ok(Json(json!(query::top(s, c, &sel, ty.as_deref(), n)?)))
    })
    .await
}

async fn diff(State(st): State<AppState>, Query(p): Params) -> ApiResult<Json<serde_json::Value>> {
    let has = |pre: &str| p.keys().any(|k| k.starts_with(pre));
    if !has("a_") || !has("b_") {
        return Err(bad(
            "diff needs a baseline and a comparison: a_from/a_to or a_version, and b_from/b_to or b_version",
        ));
    }
    let a = selection(&p, Some("a_"))?;
    let b = selection(&p, Some("b_"))?;
    let opts = TreeOptions::from_params(&p);
    let ty = p.get("type").cloned();
    blocking(&st, move |s, c| {
        Ok(Json(json!(query::diff(s, c, &a, &b, ty.as_deref(), opts)?)))
    })
    .await
}

async fn timeseries(
    State(st): State<AppState>,
    Query(p): Params,
) -> ApiResult<Json<serde_json::Value>> {
    let sel = selection(&p, None)?;
    let step = match p.get("step").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            crate::config::parse_duration(s)
                .map_err(bad)?
                .as_secs()
                .max(1) as i64,
        ),
        None => None,
    };
    let ty = p.get("type").cloned();
    blocking(&st, move |_, c| {
        Ok(Json(json!(query::timeseries(
            c,
            &sel,
            ty.as_deref(),
            step
        )?)))
    })
    .await
}

async fn timeline(
    State(st): State<AppState>,
    Query(p): Params,
) -> ApiResult<Json<serde_json::Value>> {
    let id: i64 = p
        .get("profile")
        .ok_or_else(|| bad("`profile` (an upload id) is required"))?
        .parse()
        .map_err(|_| bad("invalid profile id"))?;
    let ty = p.get("type").cloned();
    let maxd = st.cfg.max_decompressed;
    blocking(&st, move |s, c| {
        match query::timeline(s, c, id, ty.as_deref(), maxd)? {
            Some(t) => Ok(Json(json!(t))),
            None => Err(ApiError(StatusCode::NOT_FOUND, format!("no profile {id}"))),
        }
    })
    .await
}

async fn pprof(State(st): State<AppState>, Query(p): Params) -> ApiResult<Response> {
    let sel = selection(&p, None)?;
    let ty = p.get("type").cloned();
    let maxd = st.cfg.max_decompressed;
    let (bytes, name) = blocking(&st, move |s, c| {
        use prost::Message;
        let raw = match (sel.profile, ty.as_deref()) {
            // Single upload without a type: the original pprof, untouched.
            (Some(id), None) => {
                let blobs = query::pprof_blobs(s, c, id)?;
                let Some((_, data)) = blobs.into_iter().next() else {
                    return Err(ApiError(
                        StatusCode::NOT_FOUND,
                        format!("no pprof for profile {id}"),
                    ));
                };
                crate::decode::decompress(&data, maxd).map_err(|e| bad(e.to_string()))?
            }
            _ => query::export_pprof(s, c, &sel, ty.as_deref())?.encode_to_vec(),
        };
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &raw)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let gz = enc
            .finish()
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let name = match sel.profile {
            Some(id) => format!("profile-{id}.pb.gz"),
            None => format!(
                "{}-{}.pb.gz",
                sel.service.as_deref().unwrap_or("all"),
                sel.from / 1_000_000_000
            ),
        };
        Ok((gz, name))
    })
    .await?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{safe}\""),
        )
        .body(Body::from(bytes))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn status(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    use std::sync::atomic::Ordering::Relaxed;
    let s = st.clone();
    blocking(&st, move |store, c| {
        let profiles: i64 = c
            .query_row("SELECT COUNT(*) FROM profiles", [], |r| r.get(0))
            .map_err(StoreError::from)?;
        Ok(Json(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "data_dir": store.dir().display().to_string(),
            "profiles": profiles,
            "disk_bytes": store.disk_usage()?,
            "retention_seconds": store.opts.retention.as_secs(),
            "max_disk_bytes": store.opts.max_disk,
            "uploads_accepted": s.store.stats.uploads.load(Relaxed),
            "uploads_rejected": s.store.stats.rejected.load(Relaxed),
            "bytes_accepted": s.store.stats.bytes.load(Relaxed),
        })))
    })
    .await
}

async fn maintain(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let r = st.store.maintain().await?;
    Ok(Json(json!(r)))
}
