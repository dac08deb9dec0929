//! API errors: an HTTP status and a JSON body with a stable machine code and
//! a message for people, `{"error": {"code": "...", "message": "..."}}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::plugins::PluginError;
use crate::session::SessionError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which trying again may work (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
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

    fn internal(message: String) -> Self {
        // The detail goes to the log; the client gets a reference to it.
        tracing::error!(error = %message, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
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
            SessionError::Finished => Self::new(StatusCode::CONFLICT, "session_finished", message),
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
            SessionError::Store(e) => e.into(),
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let status = match &e {
            PluginError::NotInstalled(_)
            | PluginError::UnknownTool(_)
            | PluginError::VersionNotInstalled { .. } => StatusCode::NOT_FOUND,
            PluginError::Io(_) | PluginError::Engine(_) => return Self::internal(e.to_string()),
            PluginError::DuplicateTool { .. }
            | PluginError::NoPreviousVersion(_)
            | PluginError::VersionExists { .. } => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.code(), e.to_string())
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
