//! API errors: an HTTP status and a JSON body with a stable machine code and
//! a message for people, `{"error": {"code": "...", "message": "..."}}`.
//!
//! An internal error's detail (a store or engine failure) never reaches the
//! client: it rides on the response to [`log_internal_errors`], which logs
//! it inside the request's span, so the log line carries the request id the
//! client was given in `x-request-id`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::plugins::{PluginError, RegistryError};
use crate::session::SessionError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which trying again may work (`Retry-After`).
    pub retry_after: Option<u64>,
    /// What failed inside, for the server log only.
    detail: Option<String>,
}

/// An internal error's detail on its way from the handler to the log.
#[derive(Clone)]
struct InternalDetail(Arc<str>);

/// Middleware: a request with a body that is refused (a wrong token, an
/// upload by a user) may leave that body unread, and then the server
/// closes the connection after answering. Saying so in the answer keeps
/// the client from sending its next request down a connection that is
/// going away (seen as a broken pipe on a reused connection).
pub async fn close_after_refusal(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header;
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut response = next.run(req).await;
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Middleware: logs the detail of an internal error, in the request's span.
pub async fn log_internal_errors(mut response: Response) -> Response {
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove() {
        tracing::error!(error = %detail, status = %response.status(), "internal error");
    }
    response
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn internal(detail: String) -> Self {
        Self {
            detail: Some(detail),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the server log has the details under this response's x-request-id",
            )
        }
    }

    /// Logs an internal error's detail where the error does not become an
    /// HTTP response (a WebSocket error frame).
    pub fn log_detail(&self) {
        if let Some(detail) = &self.detail {
            tracing::error!(error = %detail, code = self.code, "internal error");
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(detail) = self.detail {
            response
                .extensions_mut()
                .insert(InternalDetail(detail.into()));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("session"),
            e => Self::internal(e.to_string()),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::NotFound => Self::not_found("session"),
            SessionError::InvalidState(_) => {
                Self::new(StatusCode::CONFLICT, "invalid_state", message)
            }
            SessionError::UnknownPolicy(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_policy", message)
            }
            SessionError::NotAPolicy(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "not_a_policy", message)
            }
            SessionError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "message_too_large", message)
            }
            SessionError::EmptyMessage => Self::bad_request("empty_message", message),
            SessionError::InvalidInput(_) => Self::bad_request("invalid_body", message),
            SessionError::NoSandbox(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "no_sandbox", message)
            }
            SessionError::Stopped => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "session_stopped", message)
            }
            SessionError::Quota {
                code, retry_after, ..
            } => Self {
                retry_after,
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
            },
            SessionError::Busy(_) => Self {
                retry_after: Some(10),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "sandboxes_busy", message)
            },
            SessionError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            // Only when the lease moved between forwarding and serving.
            SessionError::Elsewhere(_) => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "session_moved", message)
            },
            SessionError::Store(e) => e.into(),
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        use RegistryError as R;
        let status = match &e {
            PluginError::Registry(R::NotInstalled(_) | R::UnknownTool(_))
            | PluginError::Registry(R::VersionNotInstalled { .. }) => StatusCode::NOT_FOUND,
            PluginError::Registry(R::Io { .. }) | PluginError::Engine { .. } => {
                return Self::internal(e.report())
            }
            PluginError::Registry(
                R::DuplicateTool { .. } | R::NoPreviousVersion(_) | R::VersionExists { .. },
            ) => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.code(), e.report())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        PluginError::from(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match r {
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ => "invalid_body",
        };
        Self::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

/// `Json` whose rejections are [`ApiError`]s.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `Path` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_errors_map_to_statuses_and_stable_codes() {
        let cases = [
            (SessionError::NotFound, 404, "not_found"),
            (SessionError::InvalidState("x".into()), 409, "invalid_state"),
            (
                SessionError::UnknownPolicy("p".into()),
                422,
                "unknown_policy",
            ),
            (SessionError::NotAPolicy("p".into()), 422, "not_a_policy"),
            (
                SessionError::TooLarge { size: 2, limit: 1 },
                413,
                "message_too_large",
            ),
            (SessionError::EmptyMessage, 400, "empty_message"),
            (SessionError::InvalidInput("x".into()), 400, "invalid_body"),
            (SessionError::NoSandbox("x".into()), 503, "no_sandbox"),
            (SessionError::Stopped, 503, "session_stopped"),
            (SessionError::Busy(4), 429, "sandboxes_busy"),
            (SessionError::ShuttingDown, 503, "shutting_down"),
            (SessionError::Store(StoreError::NotFound), 404, "not_found"),
        ];
        for (error, status, code) in cases {
            let e = ApiError::from(error);
            assert_eq!((e.status.as_u16(), e.code), (status, code), "{}", e.message);
        }
        let quota = ApiError::from(SessionError::Quota {
            code: "quota_running",
            message: "one at a time".into(),
            retry_after: Some(5),
        });
        let response = quota.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "5");
    }

    #[tokio::test]
    async fn an_internal_error_keeps_its_detail_off_the_wire_and_hands_it_to_the_log() {
        let e = ApiError::from(StoreError::Corrupt("row 7 of events: bad json".into()));
        assert_eq!((e.status.as_u16(), e.code), (500, "internal"));
        assert!(!e.message.contains("row 7"), "{}", e.message);
        let response = e.into_response();
        assert!(response.extensions().get::<InternalDetail>().is_some());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("row 7"));
        let logged =
            log_internal_errors(ApiError::from(StoreError::Corrupt("x".into())).into_response())
                .await;
        assert!(
            logged.extensions().get::<InternalDetail>().is_none(),
            "the middleware takes the detail"
        );
    }
}
