//! Commands for a session another host runs go to that host: the request
//! is replayed there with the caller's own credentials, and the answer
//! comes back as the owner gave it.
//!
//! A forwarded request is marked ([`FORWARDED_BY`]) and is never forwarded
//! again: if the lease moved meanwhile, the receiving host serves it
//! itself or says the session moved, so requests cannot loop.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use tracing::Instrument;

use super::Fleet;
use crate::store::FleetHost;

/// The most of an owner's error answer read back for a WebSocket client.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Header naming the host that forwarded a request.
pub const FORWARDED_BY: &str = "agenthost-forwarded-by";

/// Request headers the owner needs; hop-by-hop and host headers stay.
const PASSED_ON: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("x-request-id"),
];

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the request body is over {0} bytes")]
    TooLarge(usize),
    #[error("host {host} runs this session and does not answer ({reason}); another host adopts it within {lease_secs} s")]
    Unreachable {
        host: String,
        reason: String,
        lease_secs: u64,
    },
}

/// Whether `headers` mark a request another host already forwarded.
pub fn was_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_BY)
}

impl Fleet {
    /// Replays `req` (its path and query are `path`) on `owner` and returns
    /// the owner's response, streamed.
    pub async fn forward(
        &self,
        owner: &FleetHost,
        path: &str,
        req: Request<Body>,
        max_body: usize,
    ) -> Result<Response, ForwardError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, max_body)
            .await
            .map_err(|_| ForwardError::TooLarge(max_body))?;
        let span = tracing::info_span!(
            "fleet.forward",
            otel.name = %format_args!("forward {} to {}", parts.method, owner.id),
            otel.kind = "client",
            http.request.method = %parts.method,
            server.host = %owner.id,
        );
        let mut out = self
            .http()
            .request(parts.method.clone(), format!("{}{path}", owner.url))
            .header(FORWARDED_BY, self.host_id())
            .body(body);
        for name in &PASSED_ON {
            if let Some(v) = parts.headers.get(name) {
                out = out.header(name, v);
            }
        }
        // The owner's request span joins this trace.
        if let Some(traceparent) = span.in_scope(crate::otlp::traceparent) {
            out = out.header("traceparent", traceparent);
        }
        let answer = out
            .send()
            .instrument(span)
            .await
            .map_err(|e| self.unreachable(owner, e))?;
        let mut response = Response::builder().status(answer.status());
        for name in [
            header::CONTENT_TYPE,
            header::RETRY_AFTER,
            header::CONTENT_DISPOSITION,
        ] {
            if let Some(v) = answer.headers().get(&name) {
                response = response.header(name, v);
            }
        }
        let stream = answer.bytes_stream().map_err(std::io::Error::other);
        Ok(response
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()))
    }

    /// Sends one command (a WebSocket client's, as the REST call it maps
    /// to) to `owner` with the caller's token. `Err((code, message))` is
    /// the owner's refusal, or why it could not be asked.
    pub async fn command(
        &self,
        owner: &FleetHost,
        token: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(), (String, String)> {
        let mut out = self
            .http()
            .request(method, format!("{}{path}", owner.url))
            .bearer_auth(token)
            .header(FORWARDED_BY, self.host_id());
        if let Some(body) = body {
            out = out.json(&body);
        }
        let answer = out.send().await.map_err(|e| {
            (
                "host_unreachable".into(),
                self.unreachable(owner, e).to_string(),
            )
        })?;
        if answer.status().is_success() {
            return Ok(());
        }
        let status = answer.status();
        // An error body is a small JSON object; read no more than that.
        let mut body = Vec::new();
        let mut stream = answer.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            if body.len() + chunk.len() > MAX_ERROR_BODY {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |name: &str| {
            body["error"][name]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("the owning host answered {status}"))
        };
        Err((field("code"), field("message")))
    }

    fn unreachable(&self, owner: &FleetHost, e: reqwest::Error) -> ForwardError {
        ForwardError::Unreachable {
            host: owner.id.clone(),
            reason: e.to_string(),
            lease_secs: self.lease_time().as_secs(),
        }
    }
}
