//! The three source APIs served by an axum router (feature `http`): the flow API at
//! `/api/experiments…`, the feed API at `/v1/experiments…`, the flag API at `/api/v1/flags…`,
//! plus assign, events, conversions, audiences, API keys, `/health` and `/openapi.json`.
//!
//! ```no_run
//! use std::sync::Arc;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let lab = Arc::new(abkit::Lab::new());
//! let app = abkit::http::router(lab, abkit::http::Settings::new(Some("a-long-admin-token".into())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! * **Shapes**: every body is built by [`crate::wire`], exactly as the documents show.
//! * **Auth**: `Authorization: Bearer <token>` (or `X-API-Key`). Tokens are [`ApiKeys`]: bound to
//!   a project (and environment), scoped `admin` (configuration) or `client` (evaluate, assign,
//!   track, events, conversions). Another project's data answers 404, as if it did not exist.
//!   No or an unknown token: 401; a client key on an admin route: 403.
//! * **Errors**: `{"error": {"code", "message", "field"}}` ([`crate::wire::ApiError`]): 400
//!   validation, 401, 403, 404, 409 lifecycle / version / exclusivity, 413 body too large, 422
//!   unparseable JSON, 503 storage unavailable or timeout.
//! * **The runtime never blocks**: every storage call runs on tokio's blocking pool; decisions
//!   (evaluate) run inline and do no I/O. Bodies are limited ([`Settings::max_body_bytes`]) and
//!   requests time out ([`Settings::request_timeout`]); `axum::serve`'s graceful shutdown drains
//!   requests in flight.
//! * **Versions**: get answers carry `ETag: "<version>"`; a `PATCH` with `If-Match` updates only
//!   that version (409 otherwise), without it the latest.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use serde::Serialize;

use crate::lab::Lab;
use crate::wire::ApiError;

mod keys;
pub mod openapi;
mod routes;

pub use keys::{ApiKey, ApiKeys, NewApiKey, Principal, Scope};

/// 32 random bytes from the operating system as 64 hex characters: an admin token, say.
///
/// # Errors
///
/// When the operating system has no randomness to give.
pub fn random_token() -> crate::error::Result<String> {
    keys::random_hex(32)
}

/// How the router serves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// An instance-wide admin token (every project), never stored; `None`: only stored keys.
    pub admin_token: Option<String>,
    /// The largest request body accepted (default 1 MiB); larger answers 413.
    pub max_body_bytes: usize,
    /// How long a request may take (default 10 s); longer answers 503 `timeout`. A storage call
    /// already running on the blocking pool is not cancelled: a write that times out may still
    /// apply, so a client retrying a create should read first (or update with `If-Match`).
    pub request_timeout: Duration,
}

impl Settings {
    /// The defaults, with `admin_token`.
    pub fn new(admin_token: Option<String>) -> Settings {
        Settings {
            admin_token,
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(None)
    }
}

/// What every handler shares: one `Arc`, so extracting it is one reference count.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Shared>);

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) lab: Arc<Lab>,
    pub(crate) keys: ApiKeys,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The key a request presented, as handlers receive it.
pub(crate) type Key = Arc<Principal>;

/// One route: its method, path (axum's `{param}` form, as OpenAPI's), what it does, the scope
/// it needs (`None`: public) and its API. The router and `/openapi.json` are built from one list
/// of these, so the document cannot omit a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{param}`s.
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// The scope it needs; `None` for public routes.
    pub scope: Option<Scope>,
    /// `flow`, `feed`, `flag` or `service`.
    pub tag: &'static str,
    /// The name of its request body's schema, if it takes one.
    pub body: Option<&'static str>,
    /// The status of its success answer.
    pub success: u16,
}

pub(crate) struct Builder {
    router: Option<Router<AppState>>,
    routes: Vec<Route>,
    state: AppState,
}

impl Builder {
    pub(crate) fn add<H, T>(&mut self, route: Route, handler: H)
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match route.method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PATCH" => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        };
        let mut method_router = axum::routing::on(filter, handler);
        if let Some(scope) = route.scope {
            method_router = method_router.route_layer(axum::middleware::from_fn_with_state(
                (self.state.clone(), scope),
                authenticate,
            ));
        }
        self.router = self
            .router
            .take()
            .map(|r| r.route(route.path, method_router));
        self.routes.push(route);
    }
}

/// Every route the router serves, in the order it registers them.
pub fn routes() -> Vec<Route> {
    let lab = Arc::new(Lab::new());
    build(lab, &Settings::default()).1
}

fn build(lab: Arc<Lab>, settings: &Settings) -> (Router, Vec<Route>) {
    let keys = ApiKeys::new(&lab, settings.admin_token.as_deref());
    build_with(lab, keys, settings)
}

fn build_with(lab: Arc<Lab>, keys: ApiKeys, settings: &Settings) -> (Router, Vec<Route>) {
    let state = AppState(Arc::new(Shared { keys, lab }));
    let mut b = Builder {
        router: Some(Router::new()),
        routes: Vec::new(),
        state: state.clone(),
    };
    routes::register(&mut b);
    let document = Arc::new(openapi::document(&b.routes));
    let routes = b.routes;
    let timeout = settings.request_timeout;
    let router = b
        .router
        .unwrap_or_default()
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&document);
                async move { json(StatusCode::OK, &*doc) }
            }),
        )
        .fallback(|| async {
            ApiError::new(404, "no_route", "no route matches this path").into_response()
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                405,
                "method_not_allowed",
                "this path does not take this method",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => ApiError::new(
                        503,
                        "timeout",
                        format!("the request took longer than {} ms", timeout.as_millis()),
                    )
                    .into_response(),
                }
            },
        ))
        .with_state(state);
    (router, routes)
}

/// The router serving the three APIs from `lab` (see the module's documentation).
pub fn router(lab: Arc<Lab>, settings: Settings) -> Router {
    build(lab, &settings).0
}

/// [`router`], and the [`ApiKeys`] it verifies requests with: for an instance of a fleet, whose
/// watcher calls [`ApiKeys::reload`] when another instance changed a key (a revocation made
/// there then stops working here too).
pub fn router_with_keys(lab: Arc<Lab>, settings: Settings) -> (Router, ApiKeys) {
    let keys = ApiKeys::new(&lab, settings.admin_token.as_deref());
    let router = build_with(lab, keys.clone(), &settings).0;
    (router, keys)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json(status, &self)
    }
}

/// `value` as a JSON response with `status`.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("response does not encode: {e}"),
        )
            .into_response(),
    }
}

pub(crate) fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// The request body, its rejections as JSON errors (413 too large).
pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                413,
                "body_too_large",
                "the request body is larger than the limit",
            )
        } else {
            ApiError::new(r.status().as_u16(), "invalid_body", r.body_text())
        }
    })
}

/// The query string's pairs.
pub(crate) fn query(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|Query(v)| v).map_err(|r| {
        ApiError::new(
            400,
            "validation",
            format!("invalid query string: {}", r.body_text()),
        )
    })
}

/// Runs `f` on the blocking pool (every storage call goes through here).
pub(crate) async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Lab) -> Result<T, ApiError> + Send + 'static,
{
    let lab = Arc::clone(&state.lab);
    tokio::task::spawn_blocking(move || f(&lab))
        .await
        .map_err(|e| ApiError::new(500, "internal", format!("a storage task failed: {e}")))?
}

fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

async fn authenticate(
    State((state, scope)): State<(AppState, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    let unauthorized = || {
        ApiError::new(
            401,
            "unauthorized",
            "a valid api key is required: Authorization: Bearer <token>",
        )
        .into_response()
    };
    let Some(cached) = token(req.headers()).map(|t| state.keys.verify_cached(t)) else {
        return unauthorized();
    };
    let principal = match cached {
        Ok(p) => p,
        Err(_) => {
            // A well-formed key this instance has not seen: one storage read, off the runtime.
            let Some(token) = token(req.headers()).map(str::to_owned) else {
                return unauthorized();
            };
            let keys = state.keys.clone();
            match tokio::task::spawn_blocking(move || keys.verify(&token)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return ApiError::from_error(&e).into_response(),
                Err(e) => {
                    return ApiError::new(500, "internal", format!("key lookup failed: {e}"))
                        .into_response();
                }
            }
        }
    };
    let Some(principal) = principal else {
        return unauthorized();
    };
    if scope == Scope::Admin && principal.scope != Scope::Admin {
        return ApiError::new(403, "forbidden", "this route needs an admin key").into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}
