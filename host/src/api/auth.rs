//! Bearer-token authentication. Tokens are created with `agenthost token
//! create` and stored hashed; each belongs to a user, and every session
//! belongs to a user.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use super::AppState;
use crate::store::{Store, StoreError};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub admin: bool,
    /// The id of the token used (WebSockets re-check it while open).
    pub token_id: String,
    /// When that token expires (ms since the epoch), if ever.
    pub expires_at: Option<i64>,
}

impl User {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs an operator token (agenthost token create --admin)",
            ))
        }
    }
}

pub async fn verify(store: &Store, token: &str) -> Result<User, ApiError> {
    match store.verify_token(token).await {
        Ok(u) => Ok(User {
            id: u.user_id,
            admin: u.admin,
            token_id: u.token_id,
            expires_at: u.expires_at,
        }),
        Err(StoreError::NotFound) => Err(ApiError::unauthorized("the token is unknown or expired")),
        Err(e) => Err(e.into()),
    }
}

/// The token in an `Authorization: Bearer` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller, if a valid token was sent; no token is not an error here
/// (for endpoints that answer everyone, in less detail).
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            None => Ok(Self(None)),
            Some(token) => Ok(Self(verify(&state.store, token).await.ok())),
        }
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing token: send `Authorization: Bearer <token>`")
        })?;
        verify(&state.store, token).await
    }
}
