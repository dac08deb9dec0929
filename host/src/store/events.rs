//! The event log: the stored history of a session, appended with gapless
//! per-session sequence numbers and replayed after a cursor.

use serde::Serialize;
use sqlx::Row;

use super::sessions::new_id;
use super::{now_ms, Store, StoreError};

/// The event envelope, as stored and as sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub seq: i64,
    pub session_id: String,
    pub kind: String,
    pub source: String,
    pub ts: i64,
    pub payload: serde_json::Value,
}

impl Store {
    /// Appends an event and returns it with its sequence number.
    pub async fn append_event(
        &self,
        session_id: &str,
        kind: &str,
        source: &str,
        payload: &serde_json::Value,
    ) -> Result<Event, StoreError> {
        let ts = now_ms();
        let mut tx = self.pool.begin().await?;
        // The row update takes the session's write lock first, so concurrent
        // appends to one session queue here and numbers never collide.
        let row = sqlx::query("UPDATE sessions SET last_seq = last_seq + 1, updated_at = $1 WHERE id = $2 RETURNING last_seq")
            .bind(ts)
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let seq: i64 = row.try_get("last_seq")?;
        let event = Event {
            id: new_id("evt"),
            seq,
            session_id: session_id.to_string(),
            kind: kind.to_string(),
            source: source.to_string(),
            ts,
            payload: payload.clone(),
        };
        sqlx::query("INSERT INTO events (session_id, seq, id, kind, source, ts, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&event.session_id)
            .bind(seq)
            .bind(&event.id)
            .bind(&event.kind)
            .bind(&event.source)
            .bind(ts)
            .bind(payload.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        session_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, seq, id, kind, source, ts, payload FROM events \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(session_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                Ok(Event {
                    id: row.try_get("id")?,
                    seq: row.try_get("seq")?,
                    session_id: row.try_get("session_id")?,
                    kind: row.try_get("kind")?,
                    source: row.try_get("source")?,
                    ts: row.try_get("ts")?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }
}
