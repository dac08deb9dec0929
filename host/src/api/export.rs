//! `/api/v1/sessions/{id}/export.jsonl|html`: a session to take away (see
//! `crate::export`), as a download.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::User;
use super::error::{ApiError, Path};
use super::AppState;
use crate::export::{Export, ExportError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/sessions/{id}/export.jsonl",
            get(|state, user, id| export(state, user, id, Format::JsonLines)),
        )
        .route(
            "/sessions/{id}/export.html",
            get(|state, user, id| export(state, user, id, Format::Html)),
        )
}

#[derive(Clone, Copy)]
enum Format {
    JsonLines,
    Html,
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Store(e) => e.into(),
            e @ ExportError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "export_too_large",
                e.to_string(),
            ),
        }
    }
}

/// The download: only the owner's own session (another user's id is a 404).
async fn export(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    format: Format,
) -> Result<Response, ApiError> {
    let session = state.store.session(&user.id, &id).await?;
    let Ok(_turn) = state.exports.clone().try_acquire_owned() else {
        let mut busy = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "export_busy",
            "the host is building other exports; try again in a few seconds",
        );
        busy.retry_after = Some(5);
        return Err(busy);
    };
    let export = Export::load(&state.store, session).await?;
    let (body, content_type, extension) = match format {
        Format::JsonLines => (export.jsonl(), "application/jsonl; charset=utf-8", "jsonl"),
        Format::Html => (export.html(), "text/html; charset=utf-8", "html"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.{extension}\"", export.session.id),
            ),
        ],
        body,
    )
        .into_response())
}
