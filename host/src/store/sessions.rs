//! Sessions: every session belongs to one user; another user's session is
//! reported as not found, never as forbidden.

use serde::Serialize;
use sqlx::Row;

use super::{now_ms, Store, StoreError};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Idle,
    Running,
    Paused,
    Finished,
    Error,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "idle" => Self::Idle,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "finished" => Self::Finished,
            "error" => Self::Error,
            other => return Err(StoreError::Corrupt(format!("session status `{other}`"))),
        })
    }
}

/// A session's running totals after a model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageTotals {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
}

/// A session's switches, set by its person (`PATCH /sessions/{id}`).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct SessionSettings {
    /// Every action (not a look at the screen) waits for the person's
    /// approval before it runs.
    pub ask_before_acting: bool,
    /// Each run's desktop is recorded as WebM video.
    pub record_video: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub status: SessionStatus,
    pub policy: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seq: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Estimated model cost so far, in US dollars (calls whose model has
    /// a price; see `[prices]`).
    pub cost_usd: f64,
    pub settings: SessionSettings,
}

pub(super) const COLUMNS: &str =
    "id, user_id, title, status, policy, created_at, updated_at, last_seq, input_tokens, output_tokens, settings, cost_micros";

pub(super) fn session(row: &sqlx::any::AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        title: row.try_get("title")?,
        status: SessionStatus::parse(&row.try_get::<String, _>("status")?)?,
        policy: row.try_get("policy")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_seq: row.try_get("last_seq")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cost_usd: micros_to_usd(row.try_get("cost_micros")?),
        settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)
            .map_err(|e| StoreError::Corrupt(format!("session settings: {e}")))?,
    })
}

pub fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

fn settings_json(settings: &SessionSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn new_id(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 20)
    )
}

impl Store {
    pub async fn create_session(
        &self,
        user_id: &str,
        title: &str,
        policy: &str,
    ) -> Result<Session, StoreError> {
        self.create_session_with(user_id, title, policy, SessionSettings::default())
            .await
    }

    pub async fn create_session_with(
        &self,
        user_id: &str,
        title: &str,
        policy: &str,
        settings: SessionSettings,
    ) -> Result<Session, StoreError> {
        let now = now_ms();
        let s = Session {
            id: new_id("ses"),
            user_id: user_id.into(),
            title: title.into(),
            status: SessionStatus::Idle,
            policy: policy.into(),
            created_at: now,
            updated_at: now,
            last_seq: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            settings,
        };
        sqlx::query(&format!(
            "INSERT INTO sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.title)
        .bind(s.status.as_str())
        .bind(&s.policy)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(s.last_seq)
        .bind(s.input_tokens)
        .bind(s.output_tokens)
        .bind(settings_json(&s.settings))
        .bind(0i64)
        .execute(&self.pool)
        .await?;
        Ok(s)
    }

    /// The user's session, or `NotFound` (also for another user's session).
    pub async fn session(&self, user_id: &str, id: &str) -> Result<Session, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        session(&row)
    }

    /// A session whoever it belongs to (a fleet host following or
    /// adopting it; never for a request, which goes through [`Self::session`]).
    pub async fn session_by_id(&self, id: &str) -> Result<Session, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        session(&row)
    }

    /// The user's sessions, newest first, `limit` after skipping `offset`.
    pub async fn sessions(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session).collect()
    }

    /// How many sessions are in each status, every user's (metrics).
    pub async fn sessions_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM sessions GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect()
    }

    /// Sessions of every user in a status (restart recovery).
    pub async fn sessions_in_status(
        &self,
        status: SessionStatus,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE status = $1"))
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session).collect()
    }

    pub async fn set_status(
        &self,
        user_id: &str,
        id: &str,
        status: SessionStatus,
    ) -> Result<(), StoreError> {
        self.update(user_id, id, "status", status.as_str()).await
    }

    pub async fn set_policy(
        &self,
        user_id: &str,
        id: &str,
        policy: &str,
    ) -> Result<(), StoreError> {
        self.update(user_id, id, "policy", policy).await
    }

    pub async fn set_settings(
        &self,
        user_id: &str,
        id: &str,
        settings: &SessionSettings,
    ) -> Result<(), StoreError> {
        self.update(user_id, id, "settings", &settings_json(settings))
            .await
    }

    pub async fn rename(&self, user_id: &str, id: &str, title: &str) -> Result<(), StoreError> {
        self.update(user_id, id, "title", title).await
    }

    async fn update(
        &self,
        user_id: &str,
        id: &str,
        column: &'static str,
        value: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE sessions SET {column} = $1, updated_at = $2 WHERE id = $3 AND user_id = $4"
        ))
        .bind(value)
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Adds one LLM call's tokens and estimated cost (millionths of a
    /// dollar) to the session's totals; returns the new totals.
    pub async fn add_usage(
        &self,
        id: &str,
        input_tokens: i64,
        output_tokens: i64,
        cost_micros: i64,
    ) -> Result<UsageTotals, StoreError> {
        let row = sqlx::query(
            "UPDATE sessions SET input_tokens = input_tokens + $1, output_tokens = output_tokens + $2, \
             cost_micros = cost_micros + $3 \
             WHERE id = $4 RETURNING input_tokens, output_tokens, cost_micros",
        )
        .bind(input_tokens)
        .bind(output_tokens)
        .bind(cost_micros)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(UsageTotals {
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_micros: row.try_get("cost_micros")?,
        })
    }

    /// The policy's opaque state blob, kept between steps and across restarts.
    pub async fn policy_state(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use base64::Engine as _;
        let row = sqlx::query("SELECT policy_state FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let Some(text) = row.try_get::<Option<String>, _>("policy_state")? else {
            return Ok(None);
        };
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("policy state: {e}")))
    }

    pub async fn set_policy_state(&self, id: &str, state: Option<&[u8]>) -> Result<(), StoreError> {
        use base64::Engine as _;
        let text = state.map(|b| base64::engine::general_purpose::STANDARD.encode(b));
        sqlx::query("UPDATE sessions SET policy_state = $1 WHERE id = $2")
            .bind(text)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, user_id: &str, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM events WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Its images go with it, unless another session stored them too.
        let shas: Vec<String> =
            sqlx::query_scalar("SELECT sha256 FROM session_images WHERE session_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM session_images WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for sha in shas {
            sqlx::query(
                "DELETE FROM images WHERE sha256 = $1 AND NOT EXISTS \
                 (SELECT 1 FROM session_images WHERE sha256 = $1)",
            )
            .bind(sha)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
