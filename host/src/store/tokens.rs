//! API tokens: random, shown once at creation, stored only as SHA-256.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    pub user_id: String,
    pub name: String,
    /// Operators may install, grant and remove plugins.
    pub admin: bool,
}

const PREFIX: &str = "aht_";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Creates a token for `user_id` and returns it; it cannot be read back.
    pub async fn create_token(
        &self,
        user_id: &str,
        name: &str,
        expires_at: Option<i64>,
        admin: bool,
    ) -> Result<String, StoreError> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        sqlx::query("INSERT INTO tokens (hash, user_id, name, created_at, expires_at, admin) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(hash(&token))
            .bind(user_id)
            .bind(name)
            .bind(now_ms())
            .bind(expires_at)
            .bind(admin as i64)
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    /// The user a token belongs to; `NotFound` for unknown or expired tokens.
    pub async fn verify_token(&self, token: &str) -> Result<TokenUser, StoreError> {
        if !token.starts_with(PREFIX) {
            return Err(StoreError::NotFound);
        }
        let row =
            sqlx::query("SELECT user_id, name, expires_at, admin FROM tokens WHERE hash = $1")
                .bind(hash(token))
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        if expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(StoreError::NotFound);
        }
        Ok(TokenUser {
            user_id: row.try_get("user_id")?,
            name: row.try_get("name")?,
            admin: row.try_get::<i64, _>("admin")? != 0,
        })
    }
}
