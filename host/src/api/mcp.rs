//! `/mcp`: the MCP server over Streamable HTTP, behind the API's bearer
//! tokens, and the protected-resource metadata (RFC 9728) the MCP
//! authorization spec points clients to when a token is missing.
//!
//! The protocol itself is [`crate::mcp::server`]; this is the door: the
//! token is checked here and the caller handed on as a request extension.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use super::auth::{bearer, verify};
use super::AppState;
use crate::mcp::{Caller, McpServer};

/// Where a client reads how to authenticate to `/mcp`.
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The MCP endpoint and its metadata. `max_body_bytes` bounds a request
/// as the rest of the API does.
pub fn router(state: AppState, max_body_bytes: usize) -> Router<AppState> {
    let sessions = state.sessions.clone();
    let config = StreamableHttpServerConfig::default()
        // Tokens guard every request, so the Host check (against DNS
        // rebinding of token-less local servers) would only refuse the
        // names operators serve under.
        .disable_allowed_hosts()
        // MCP clients are programs; a browser page has no business here.
        .enforce_origin_validation()
        .with_max_request_body_bytes(max_body_bytes);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(sessions.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
        .route(METADATA_PATH, get(metadata))
        .route(&format!("{METADATA_PATH}/mcp"), get(metadata))
}

/// The base URL the client used, for the metadata's absolute URLs.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// RFC 9728 protected-resource metadata. Tokens are issued by the
/// operator (`agenthost token create`), not by an OAuth server, so none is
/// listed: a client is configured with its token.
async fn metadata(headers: HeaderMap) -> Json<serde_json::Value> {
    let base = origin(&headers);
    Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [],
        "bearer_methods_supported": ["header"],
        "resource_name": "Agent Host",
        "resource_documentation": format!("{base}/api/v1/openapi.json"),
    }))
}

/// Checks the bearer token; a request without a valid one gets 401 with
/// the `WWW-Authenticate` challenge the MCP authorization spec asks for.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = bearer(req.headers()).map(str::to_string);
    let user = match token {
        Some(token) => verify(&state.store, &token).await,
        None => Err(super::ApiError::unauthorized(
            "missing token: send `Authorization: Bearer <token>`",
        )),
    };
    match user {
        Ok(user) => {
            req.extensions_mut().insert(Caller { user_id: user.id });
            next.run(req).await
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let challenge = format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{}{METADATA_PATH}/mcp\"",
                origin(req.headers())
            );
            let mut res = e.into_response();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            res
        }
        Err(e) => e.into_response(),
    }
}
