//! The event log: the stored history of a session, appended with gapless
//! per-session sequence numbers and replayed after a cursor.

use sqlx::Row;

use super::sessions::new_id;
use super::{now_ms, Store, StoreError};
use crate::event::{Event, EventBody, Source};

impl Store {
    /// Appends an event and returns it with its sequence number.
    pub async fn append_event(
        &self,
        session_id: &str,
        source: Source,
        body: EventBody,
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
        let payload = body.payload().to_string();
        let event = Event {
            id: new_id("evt"),
            seq,
            session_id: session_id.to_string(),
            source,
            ts,
            body,
        };
        sqlx::query("INSERT INTO events (session_id, seq, id, kind, source, ts, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&event.session_id)
            .bind(seq)
            .bind(&event.id)
            .bind(event.kind())
            .bind(source.as_str())
            .bind(ts)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        if self.announce {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::EVENTS_CHANNEL)
                .bind(format!("{session_id}:{seq}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(event)
    }

    /// Every event with `seq > after`, oldest first, read a page at a time.
    pub async fn all_events_after(
        &self,
        session_id: &str,
        mut after: i64,
    ) -> Result<Vec<Event>, StoreError> {
        const PAGE: i64 = 1000;
        let mut out = Vec::new();
        loop {
            let page = self.events_after(session_id, after, PAGE).await?;
            let full = page.len() as i64 == PAGE;
            if let Some(last) = page.last() {
                after = last.seq;
            }
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
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
                let payload = serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let kind: String = row.try_get("kind")?;
                let source: String = row.try_get("source")?;
                Ok(Event {
                    id: row.try_get("id")?,
                    seq: row.try_get("seq")?,
                    session_id: row.try_get("session_id")?,
                    source: Source::parse(&source).ok_or_else(|| {
                        StoreError::Corrupt(format!("an event's source is `{source}`"))
                    })?,
                    ts: row.try_get("ts")?,
                    body: EventBody::parse(&kind, payload),
                })
            })
            .collect()
    }
}
