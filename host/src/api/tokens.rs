//! `/api/v1/tokens` (operators only): list tokens and revoke one. A
//! revoked token stops working at once; WebSockets opened with it are
//! told and closed (see [`Revocations`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Serialize;
use tokio::sync::broadcast;

use super::auth::User;
use super::error::{ApiError, Json, Path};
use super::AppState;
use crate::store::{StoreError, TokenInfo};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list))
        .route("/tokens/{id}", delete(revoke))
}

/// Tells this host's open WebSockets that a token was revoked, so they
/// close at once. Revocations made elsewhere (the CLI, another host) are
/// caught by each socket's periodic re-check.
#[derive(Clone)]
pub struct Revocations(broadcast::Sender<String>);

impl Default for Revocations {
    fn default() -> Self {
        Self(broadcast::channel(64).0)
    }
}

impl Revocations {
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.0.subscribe()
    }

    fn announce(&self, token_id: &str) {
        let _ = self.0.send(token_id.to_string());
    }
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenInfo>,
}

async fn list(State(state): State<AppState>, user: User) -> Result<Json<TokenList>, ApiError> {
    user.require_admin()?;
    Ok(Json(TokenList {
        tokens: state.store.tokens().await?,
    }))
}

async fn revoke(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    user.require_admin()?;
    match state.store.revoke_token(&id).await {
        Ok(()) => {
            state.revocations.announce(&id);
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => Err(ApiError::not_found("token")),
        Err(e) => Err(e.into()),
    }
}
