//! The HTTP service (axum + tokio):
//! - `POST /v1/search/images` `{"text": "...", "k": 10}` → the best images;
//! - `POST /v1/search/captions` `{"image_row": N | "image_id": "ID" | "features": [[...]], "k": 10}`
//!   → the best captions (features: R rows of D values; an id is a line of
//!   the index's `ids.txt`, or without ids the row number,
//!   [`Index::image_row_of`]);
//!   both take optional `"index": NAME` (required when several are served)
//!   and `"shortlist": K` (candidates re-ranked; default the server's);
//! - `POST /v1/explain` `{"image_row": N, "text": "..." | "caption_row": J}`
//!   → why they match ([`explain`]);
//! - `GET /` the search page ([`crate::serve::page`], no token needed: it
//!   holds no data), `GET /images/{id}` thumbnails from `--image-dir` ([`thumbs`]);
//! - `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! Searches run on a bounded rayon pool, never on the async threads; at most
//! `workers + queue` searches are admitted at once and the rest get 503.
//! Bodies are read up to `body_limit` bytes (413 beyond, at once when the
//! declared length says so), within `body_timeout` (408), and within the
//! bytes budget shared by all requests (503) ([`super::body`]); connections
//! are bounded in [`super::conn`]. Every error is a JSON object
//! `{"error": "..."}` with a 4xx status for the caller's mistakes; a panic
//! inside a search is caught and answered 500. With a token, every request
//! must carry `Authorization: Bearer TOKEN` (401 otherwise).
//!
//! Routes are listed in one place, [`router`].

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServeError;
use super::body::{BodyBudget, BodyError, Reserved, read_body};
pub use super::config::ServeConfig;
use super::conn::{ShutdownReport, effective_max_connections, fd_limit, serve_connections};
use super::index::Index;
use super::metrics::Metrics;

mod explain;
mod thumbs;

/// Everything a handler needs.
pub struct AppState {
    indexes: BTreeMap<String, Index>,
    cfg: ServeConfig,
    pool: rayon::ThreadPool,
    slots: Arc<Semaphore>,
    budget: BodyBudget,
    metrics: Metrics,
}

impl AppState {
    /// The state serving `indexes` (name → index) under `cfg`.
    pub fn new(indexes: BTreeMap<String, Index>, cfg: ServeConfig) -> Result<Self, ServeError> {
        cfg.validate()?;
        if indexes.is_empty() {
            return Err(ServeError::Usage("serve: needs ≥ 1 index".into()));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.workers)
            .thread_name(|i| format!("dbl-search-{i}"))
            .build()
            .map_err(|e| ServeError::Usage(format!("serve: starting the search pool: {e}")))?;
        Ok(AppState {
            slots: Arc::new(Semaphore::new(cfg.workers + cfg.queue)),
            budget: BodyBudget::new(cfg.body_budget),
            indexes,
            cfg,
            pool,
            metrics: Metrics::default(),
        })
    }

    /// The admission semaphore (`workers + queue` permits); tests hold its
    /// permits to fill the queue.
    pub fn slots(&self) -> Arc<Semaphore> {
        self.slots.clone()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Bytes of the body budget not reserved now.
    pub fn budget_available(&self) -> usize {
        self.budget.available()
    }

    /// The limits served under.
    pub fn config(&self) -> &ServeConfig {
        &self.cfg
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn serve_error(e: &ServeError) -> Response {
    let status = if e.is_client() {
        StatusCode::BAD_REQUEST
    } else if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    error(status, e)
}

/// Body of `POST /v1/search/images`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesQuery {
    text: String,
    #[serde(default = "default_k")]
    k: usize,
    index: Option<String>,
    shortlist: Option<usize>,
}

/// Body of `POST /v1/search/captions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptionsQuery {
    image_row: Option<usize>,
    image_id: Option<String>,
    features: Option<Vec<Vec<f32>>>,
    #[serde(default = "default_k")]
    k: usize,
    index: Option<String>,
    shortlist: Option<usize>,
}

fn default_k() -> usize {
    10
}

/// True for `application/json`, with or without parameters
/// (`application/json; charset=utf-8`), any letter case; nothing else.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("");
    essence.trim().eq_ignore_ascii_case("application/json")
}

fn body_error(e: &BodyError) -> Response {
    let status = match e {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
        BodyError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        BodyError::Read(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e)
}

/// Checks the content type and reads the JSON body into `T`; the bytes stay
/// reserved in the budget while the returned [`Reserved`] lives.
async fn read_json<T: for<'de> Deserialize<'de>>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(T, Reserved), Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(ct) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {ct:?}: expected application/json"),
        ));
    }
    let (bytes, held) = read_body(
        headers,
        body,
        st.cfg.body_limit,
        st.cfg.body_timeout,
        &st.budget,
    )
    .await
    .map_err(|e| body_error(&e))?;
    let q = serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))?;
    Ok((q, held))
}

/// The index a request names (or the only one).
fn pick(st: &AppState, name: &Option<String>) -> Result<String, Box<Response>> {
    match name {
        Some(n) if st.indexes.contains_key(n) => Ok(n.clone()),
        Some(n) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!(
                "no index {n:?}; served: {:?}",
                st.indexes.keys().collect::<Vec<_>>()
            ),
        ))),
        None if st.indexes.len() == 1 => Ok(st.indexes.keys().next().expect("one").clone()),
        None => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "several indexes are served: name one with \"index\" (one of {:?})",
                st.indexes.keys().collect::<Vec<_>>()
            ),
        ))),
    }
}

/// Runs `job` over index `name` on the search pool if a slot is free (503
/// otherwise; 503 naming the file when the index's files changed on disk);
/// `held` (the request body's bytes) is released when the job is done.
async fn on_pool<F, T>(st: Arc<AppState>, held: Reserved, name: String, job: F) -> Response
where
    F: FnOnce(&Index) -> Result<T, ServeError> + Send + 'static,
    T: serde::Serialize + Send + 'static,
{
    let permit: OwnedSemaphorePermit = match st.slots.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            st.metrics.reject();
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "search queue full; retry later",
            );
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let st2 = st.clone();
    st.pool.spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(|| {
            let idx = &st2.indexes[&name];
            idx.check_files().and_then(|()| job(idx))
        }));
        drop(permit);
        drop(held);
        let _ = tx.send(r);
    });
    match rx.await {
        Ok(Ok(Ok(res))) => axum::Json(res).into_response(),
        Ok(Ok(Err(e))) => serve_error(&e),
        Ok(Err(_)) | Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "search failed (internal panic)",
        ),
    }
}

/// What both search bodies carry besides the query.
trait Routed {
    /// The index named, if any.
    fn index(&self) -> &Option<String>;
    /// The shortlist size asked for, if any.
    fn shortlist(&self) -> Option<usize>;
}

impl Routed for ImagesQuery {
    fn index(&self) -> &Option<String> {
        &self.index
    }
    fn shortlist(&self) -> Option<usize> {
        self.shortlist
    }
}

impl Routed for CaptionsQuery {
    fn index(&self) -> &Option<String> {
        &self.index
    }
    fn shortlist(&self) -> Option<usize> {
        self.shortlist
    }
}

/// A search body read and routed.
struct Admitted<T> {
    query: T,
    index: String,
    shortlist: usize,
    held: Reserved,
}

/// Reads a search body, or the error response.
async fn admit<T: for<'de> Deserialize<'de> + Routed>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Admitted<T>, Box<Response>> {
    let (query, held): (T, Reserved) = read_json(st, headers, body).await.map_err(Box::new)?;
    let index = pick(st, query.index())?;
    let shortlist = query.shortlist().unwrap_or(st.cfg.shortlist);
    Ok(Admitted {
        query,
        index,
        shortlist,
        held,
    })
}

async fn search_images(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let a = match admit::<ImagesQuery>(&st, &headers, body).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (q, name, sl) = (a.query, a.index, a.shortlist);
    on_pool(st, a.held, name, move |idx| {
        idx.search_images(&q.text, q.k, sl)
    })
    .await
}

async fn search_captions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let a = match admit::<CaptionsQuery>(&st, &headers, body).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (q, name, sl, held) = (a.query, a.index, a.shortlist, a.held);
    let (k, row, id, feats) = (q.k, q.image_row, q.image_id, q.features);
    match (row, id, feats) {
        (Some(row), None, None) => {
            on_pool(st, held, name, move |idx| {
                idx.search_captions_by_row(row, k, sl)
            })
            .await
        }
        (None, Some(id), None) => {
            on_pool(st, held, name, move |idx| {
                idx.search_captions_by_id(&id, k, sl)
            })
            .await
        }
        (None, None, Some(f)) => {
            let m = st.indexes[&name].manifest();
            let (r, d) = (m.regions, m.img_dim);
            if f.len() != r || f.iter().any(|row| row.len() != d) {
                let lens: Vec<usize> = f.iter().map(Vec::len).take(4).collect();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "features: expected {r} rows of {d} values, got {} rows (first lengths {lens:?})",
                        f.len()
                    ),
                );
            }
            let flat: Vec<f32> = f.into_iter().flatten().collect();
            on_pool(st, held, name, move |idx| idx.search_captions(&flat, k, sl)).await
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "give exactly one of \"image_row\", \"image_id\" and \"features\"",
        ),
    }
}

/// `{"status": "ok" | "degraded", "indexes": {NAME: {..., "status": "ok" | why}}}`:
/// "degraded" (still 200: the other indexes serve) when an index's files
/// changed on disk since it was opened.
async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let mut all_ok = true;
    let idx: BTreeMap<&String, serde_json::Value> = st
        .indexes
        .iter()
        .map(|(n, i)| {
            let m = i.manifest();
            let status = match i.check_files() {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    all_ok = false;
                    e.to_string()
                }
            };
            (n, json!({"images": m.n_images, "captions": m.n_captions, "backbone": m.model.backbone, "status": status}))
        })
        .collect();
    let status = if all_ok { "ok" } else { "degraded" };
    axum::Json(json!({"status": status, "indexes": idx})).into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// A known path with the wrong method (found by fuzzing: axum's default 405
/// had an empty body).
async fn method_not_allowed(req: Request) -> Response {
    let allowed = if req.uri().path().starts_with("/v1/") {
        "POST"
    } else {
        "GET"
    };
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; use {allowed}",
            req.method(),
            req.uri().path()
        ),
    );
    if let Ok(v) = header::HeaderValue::from_str(allowed) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

/// Token check and metrics around every request.
async fn observe(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        p @ ("/v1/search/images" | "/v1/search/captions" | "/healthz" | "/metrics") => p,
        _ => "other",
    }
    .to_string();
    let _in_flight = st.metrics.begin();
    let t = Instant::now();
    let authorised = match &st.cfg.token {
        None => true,
        Some(tok) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v.trim() == tok),
    };
    let resp = if authorised {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong access token (Authorization: Bearer …)",
        )
    };
    st.metrics
        .end(&route, resp.status().as_u16(), t.elapsed().as_secs_f64());
    resp
}

/// The router over `st`.
pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/search/images", post(search_images))
        .route("/v1/search/captions", post(search_captions))
        .route("/v1/explain", post(explain::explain))
        .route("/images/{id}", get(thumbs::thumbnail))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(st.clone(), observe))
        .with_state(st)
        .merge(super::page::router())
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting,
/// lets the requests in flight finish and closes what is still open after
/// the shutdown deadline ([`super::conn`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    st: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ShutdownReport> {
    let max = effective_max_connections(st.cfg.max_connections, fd_limit())
        .map_err(std::io::Error::other)?;
    let limits = st.cfg.conn_limits(max);
    serve_connections(listener, router(st), limits, shutdown).await
}
