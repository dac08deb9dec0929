//! LLM tokens spent per user per UTC day, for the daily per-user cap
//! (the per-session totals live on the session row).

use sqlx::Row;

use super::{now_ms, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// Days since the epoch, UTC.
fn today() -> i64 {
    now_ms() / DAY_MS
}

/// Seconds until the next UTC midnight, when daily caps reset.
pub fn secs_until_tomorrow() -> u64 {
    let now = now_ms();
    (((today() + 1) * DAY_MS - now + 999) / 1000).max(1) as u64
}

impl Store {
    /// Adds tokens to the user's total for today.
    pub async fn add_user_tokens(&self, user_id: &str, tokens: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_usage (user_id, day, tokens) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, day) DO UPDATE SET tokens = user_usage.tokens + excluded.tokens",
        )
        .bind(user_id)
        .bind(today())
        .bind(tokens)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Tokens the user has spent today.
    pub async fn user_tokens_today(&self, user_id: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT tokens FROM user_usage WHERE user_id = $1 AND day = $2")
            .bind(user_id)
            .bind(today())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("tokens")?.max(0) as u64,
            None => 0,
        })
    }
}
