//! The HTTP API: REST under `/api/v1`, the session WebSocket, the live
//! desktop, health checks, the OpenAPI document and the chat page, as one
//! router over [`AppState`]. Starting and stopping it is [`crate::server`].

mod auth;
mod error;
mod export;
mod forward;
mod health;
mod live;
mod mcp;
mod metrics;
mod openapi;
mod plugins;
mod sessions;
mod tokens;
mod ws;

use std::path::Path;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, OnResponse, TraceLayer};

pub use error::ApiError;

use crate::plugins::Registry;
use crate::sandbox::WarmPool;
use crate::session::Sessions;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub sessions: Arc<Sessions>,
    pub pool: Option<Arc<WarmPool>>,
    pub tickets: Tickets,
    pub revocations: Revocations,
    /// Exports being built (see `crate::export::MAX_CONCURRENT`).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// Plugin log lines, for `GET /plugins/{name}/logs`.
    pub plugin_logs: Arc<crate::plugins::PluginLogs>,
    /// Largest request body, also when forwarding one to another host.
    pub max_body_bytes: usize,
}

pub use live::Tickets;
pub use tokens::Revocations;

/// The chat page: static files from the built assets, with a strict
/// content security policy (everything from this origin, nothing inline).
fn web(dir: Option<&Path>) -> Router<AppState> {
    use axum::http::HeaderValue;
    use tower_http::set_header::SetResponseHeaderLayer;
    let Some(dir) = dir else {
        return Router::new()
            .route("/", get(page_missing))
            .fallback(not_found);
    };
    let csp = HeaderValue::from_static(
        "default-src 'self'; img-src 'self' blob: data:; media-src blob:; connect-src 'self'; \
         style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; \
         form-action 'none'; base-uri 'none'; object-src 'none'",
    );
    Router::new()
        .fallback_service(tower_http::services::ServeDir::new(dir))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

async fn page_missing() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "The chat page is not built: run scripts/setup.sh (or `npm run build` in web/), \
         then start the host with --web-dir web/dist. The API is up under /api/v1.\n",
    )
}

pub fn router(state: AppState, max_body_bytes: usize, web_dir: Option<&Path>) -> Router {
    let api = Router::new()
        .merge(sessions::router())
        .merge(export::router())
        .merge(plugins::router())
        .merge(live::router())
        .merge(tokens::router())
        .route("/me", get(me))
        .route("/openapi.json", get(openapi::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::to_owner,
        ))
        .fallback(not_found);
    Router::new()
        .merge(mcp::router(state.clone(), max_body_bytes))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
        .nest("/api/v1", api)
        .merge(web(web_dir))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(error::log_internal_errors))
        .layer(axum::middleware::from_fn(error::close_after_refusal))
        // Internal errors are logged once, with their cause, by
        // `log_internal_errors`; a 503 from /readyz while the pool fills
        // (what start.sh polls) or a 429 is an answer, not a failure.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(record_status)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A span per request carrying its id: the client's `x-request-id` if it
/// sent one, else a new UUID (set by the layer outside this one), returned
/// on the response either way. The span records the path only: a query may
/// hold a live-view ticket. Its field names are OpenTelemetry's HTTP ones,
/// and a W3C `traceparent` header puts it in the caller's trace when traces
/// are exported (`otlp`).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        request_id = %header("x-request-id").unwrap_or("-"),
        traceparent = header("traceparent"),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records the answer's status on the request's span (and logs it at
/// DEBUG, as tower-http does by default).
fn record_status<B>(
    res: &axum::http::Response<B>,
    latency: std::time::Duration,
    span: &tracing::Span,
) {
    span.record("http.response.status_code", res.status().as_u16());
    if res.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    DefaultOnResponse::default().on_response(res, latency, span);
}

async fn me(user: auth::User) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"user_id": user.id, "admin": user.admin}))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
