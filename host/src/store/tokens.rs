//! API tokens: random, shown once at creation, stored only as SHA-256.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The token's public id (see [`TokenInfo::id`]).
    pub token_id: String,
    pub user_id: String,
    pub name: String,
    /// Operators may install, grant and remove plugins.
    pub admin: bool,
    /// When the token stops working (ms since the epoch), if ever.
    pub expires_at: Option<i64>,
}

/// A token as an operator sees it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// The first 16 hex digits of the token's SHA-256: enough to name it,
    /// useless to sign in with.
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub admin: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// Length of a token id, in hex digits.
pub const TOKEN_ID_LEN: usize = 16;

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
        let hash = hash(token);
        let row =
            sqlx::query("SELECT user_id, name, expires_at, admin FROM tokens WHERE hash = $1")
                .bind(&hash)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        if expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(StoreError::NotFound);
        }
        Ok(TokenUser {
            token_id: hash[..TOKEN_ID_LEN].to_string(),
            user_id: row.try_get("user_id")?,
            name: row.try_get("name")?,
            admin: row.try_get::<i64, _>("admin")? != 0,
            expires_at,
        })
    }

    /// Whether the token with this id still exists and has not expired.
    pub async fn token_valid(&self, token_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT expires_at FROM tokens WHERE hash LIKE $1")
            .bind(format!("{}%", id_pattern(token_id)?))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        Ok(expires_at.is_none_or(|t| t > now_ms()))
    }

    /// Every token, oldest first (never the tokens themselves).
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT hash, user_id, name, admin, created_at, expires_at FROM tokens ORDER BY created_at, hash",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let hash: String = row.try_get("hash")?;
                Ok(TokenInfo {
                    id: hash[..TOKEN_ID_LEN.min(hash.len())].to_string(),
                    user_id: row.try_get("user_id")?,
                    name: row.try_get("name")?,
                    admin: row.try_get::<i64, _>("admin")? != 0,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Deletes the token with this id; `NotFound` if there is none.
    pub async fn revoke_token(&self, token_id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tokens WHERE hash LIKE $1")
            .bind(format!("{}%", id_pattern(token_id)?))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// A token id is exactly [`TOKEN_ID_LEN`] lowercase hex digits, so it is
/// safe inside a LIKE pattern and names at most one token in practice.
fn id_pattern(token_id: &str) -> Result<&str, StoreError> {
    let ok = token_id.len() == TOKEN_ID_LEN
        && token_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(token_id)
    } else {
        Err(StoreError::NotFound)
    }
}
