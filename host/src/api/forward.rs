//! Middleware: a command for a session another fleet host runs is served
//! by that host (see [`crate::fleet::forward`]). Reads that the shared
//! store answers (events, images, exports) and WebSocket upgrades are
//! served here; the session WebSocket follows a remote session itself.
//!
//! Placement: a new session asked of a host with no desktop free is
//! started on the fleet's host with the most free, if one has any (else
//! here, where idle sessions give their desktops up).

use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::fleet::forward::{was_forwarded, ForwardError};

/// After `/sessions/{id}/`: what any host answers from the store.
const SERVED_ANYWHERE: [&str; 5] = ["events", "images", "ws", "export", "snapshots"];

/// The session a request under `/sessions/{id}` is about, unless any host
/// may serve it.
fn session_to_forward(method: &Method, path: &str) -> Option<String> {
    let rest = path.split_once("/sessions/")?.1;
    let mut parts = rest.splitn(2, '/');
    let id = parts.next().filter(|id| !id.is_empty())?;
    let tail = parts.next().unwrap_or("");
    let what = tail.split('/').next().unwrap_or("");
    if *method == Method::GET && SERVED_ANYWHERE.contains(&what) {
        return None;
    }
    Some(id.to_string())
}

pub async fn to_owner(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    req: Request,
    next: Next,
) -> Response {
    let Some(fleet) = state.sessions.shared().fleet.clone() else {
        return next.run(req).await;
    };
    if was_forwarded(req.headers()) || req.headers().contains_key(header::UPGRADE) {
        return next.run(req).await;
    }
    let target = if is_create(req.method(), uri.path()) {
        if state.sessions.free_desktops() > 0 {
            return next.run(req).await;
        }
        fleet.place().await
    } else {
        let Some(id) = session_to_forward(req.method(), uri.path()) else {
            return next.run(req).await;
        };
        if state.sessions.running(&id).is_some() {
            return next.run(req).await;
        }
        fleet.owner_elsewhere(&id).await
    };
    let owner = match target {
        Ok(Some(owner)) => owner,
        Ok(None) => return next.run(req).await,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    tracing::debug!(owner = %owner.id, path = uri.path(), "forwarding to another host");
    state.sessions.shared().metrics.forwarded();
    match fleet.forward(&owner, path, req, state.max_body_bytes).await {
        Ok(response) => response,
        Err(e @ ForwardError::TooLarge(_)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        )
        .into_response(),
        Err(e @ ForwardError::Unreachable { .. }) => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "host_unreachable",
                e.to_string(),
            );
            e.retry_after = Some(fleet.lease_time().as_secs());
            e.into_response()
        }
    }
}

/// `POST /sessions`: a new session.
fn is_create(method: &Method, path: &str) -> bool {
    *method == Method::POST && path.trim_end_matches('/').ends_with("/api/v1/sessions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_forwarded_and_store_reads_are_not() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            session_to_forward(&post, "/api/v1/sessions/ses_1/messages").as_deref(),
            Some("ses_1")
        );
        assert_eq!(
            session_to_forward(&get, "/api/v1/sessions/ses_1").as_deref(),
            Some("ses_1")
        );
        assert_eq!(
            session_to_forward(&Method::PUT, "/api/v1/sessions/ses_1/policy").as_deref(),
            Some("ses_1")
        );
        assert_eq!(
            session_to_forward(&get, "/api/v1/sessions/ses_1/events"),
            None
        );
        assert_eq!(
            session_to_forward(&get, "/api/v1/sessions/ses_1/images/ab"),
            None
        );
        assert_eq!(session_to_forward(&get, "/api/v1/sessions/ses_1/ws"), None);
        assert_eq!(session_to_forward(&get, "/api/v1/sessions"), None);
        assert_eq!(session_to_forward(&post, "/api/v1/sessions"), None);
        assert_eq!(session_to_forward(&get, "/api/v1/plugins"), None);
        assert!(is_create(&post, "/api/v1/sessions"));
        assert!(!is_create(&get, "/api/v1/sessions"));
        assert!(!is_create(&post, "/api/v1/sessions/ses_1/messages"));
    }
}
