//! `GET /metrics`: the host's metrics in the Prometheus text format, for
//! operator tokens (a scrape config carries one as its bearer token). The
//! page names tools, providers and the fleet's hosts, which a user's token
//! has no business reading.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::auth::User;
use super::error::ApiError;
use super::AppState;
use crate::metrics::Snapshot;

pub async fn serve(
    State(state): State<AppState>,
    user: User,
) -> Result<impl IntoResponse, ApiError> {
    user.require_admin()?;
    let sessions = state.store.sessions_by_status().await?;
    let sandboxes = state.pool.as_ref().map(|pool| {
        let s = pool.stats();
        let claimed = s.running.saturating_sub(s.warm + s.booting);
        (s.warm, claimed, s.booting)
    });
    let shared = state.sessions.shared();
    let page = shared.metrics.render(
        &shared.host_id,
        &Snapshot {
            sessions,
            sandboxes,
        },
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    ))
}
