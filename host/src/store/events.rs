//! The event log: the stored history of a session, appended with gapless
//! per-session sequence numbers and replayed after a cursor.

use sqlx::Row;

use super::sessions::new_id;
use super::{now_ms, Store, StoreError};
use crate::event::{Event, EventBody, Source};

impl Store {
    /// Appends an event and returns it with its sequence number, durable.
    /// On PostgreSQL appends arriving together share a transaction (see
    /// [`super::grouped`]).
    pub async fn append_event(
        &self,
        session_id: &str,
        source: Source,
        body: EventBody,
    ) -> Result<Event, StoreError> {
        match &self.grouper {
            Some(grouper) => grouper.append(session_id, source, body).await,
            None => self.append_one(session_id, source, body).await,
        }
    }

    /// One append in a transaction of its own.
    pub(super) async fn append_one(
        &self,
        session_id: &str,
        source: Source,
        body: EventBody,
    ) -> Result<Event, StoreError> {
        let mut tx = self.pool.begin().await?;
        let event = self.append_in(&mut tx, session_id, source, body).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Several appends in one transaction, in order; all or none. A few
    /// statements for the whole batch, not a few per append: the round
    /// trips, not the rows, are what a transaction waits on. PostgreSQL
    /// only (the grouper runs only there).
    pub(super) async fn append_batch(
        &self,
        batch: &[super::grouped::Pending],
    ) -> Result<Vec<Event>, StoreError> {
        use std::collections::BTreeMap;
        let ts = now_ms();
        // Appends per session; sessions in id order.
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for p in batch {
            *counts.entry(p.session_id.as_str()).or_default() += 1;
        }
        let mut tx = self.pool.begin().await?;
        // Rows locked in id order by every batch, so batches sharing
        // sessions queue rather than deadlock.
        let ids = marks(counts.len(), 1);
        let sql = format!("SELECT id FROM sessions WHERE id IN ({ids}) ORDER BY id FOR UPDATE");
        let mut lock = sqlx::query_scalar::<_, String>(&sql);
        for id in counts.keys() {
            lock = lock.bind(*id);
        }
        if lock.fetch_all(&mut *tx).await?.len() != counts.len() {
            return Err(StoreError::NotFound);
        }
        let values = tuples(counts.len(), 2, 2);
        let sql = format!(
            "UPDATE sessions SET last_seq = last_seq + v.n::BIGINT, updated_at = $1 \
             FROM (VALUES {values}) AS v(id, n) WHERE sessions.id = v.id \
             RETURNING sessions.id, sessions.last_seq"
        );
        let mut bump = sqlx::query(&sql).bind(ts);
        for (id, n) in &counts {
            bump = bump.bind(*id).bind(*n);
        }
        // Each session's first new number: its new last_seq less its count.
        let mut next: BTreeMap<String, i64> = BTreeMap::new();
        for row in bump.fetch_all(&mut *tx).await? {
            let id: String = row.try_get("id")?;
            let last: i64 = row.try_get("last_seq")?;
            let n = counts.get(id.as_str()).copied().unwrap_or(0);
            next.insert(id, last - n + 1);
        }
        let mut events = Vec::with_capacity(batch.len());
        for p in batch {
            let seq = next.get_mut(&p.session_id).ok_or(StoreError::NotFound)?;
            events.push(Event {
                id: new_id("evt"),
                seq: *seq,
                session_id: p.session_id.clone(),
                source: p.source,
                ts,
                body: p.body.clone(),
            });
            *seq += 1;
        }
        let rows = tuples(events.len(), 7, 1);
        let sql = format!(
            "INSERT INTO events (session_id, seq, id, kind, source, ts, payload) VALUES {rows}"
        );
        let mut insert = sqlx::query(&sql);
        for e in &events {
            insert = insert
                .bind(&e.session_id)
                .bind(e.seq)
                .bind(&e.id)
                .bind(e.kind())
                .bind(e.source.as_str())
                .bind(e.ts)
                .bind(e.body.payload().to_string());
        }
        insert.execute(&mut *tx).await?;
        if self.announce {
            let notes = tuples(events.len(), 1, 2);
            let sql = format!("SELECT pg_notify($1, note) FROM (VALUES {notes}) AS t(note)");
            let mut notify = sqlx::query(&sql).bind(super::EVENTS_CHANNEL);
            for e in &events {
                notify = notify.bind(format!("{}:{}", e.session_id, e.seq));
            }
            notify.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(events)
    }

    async fn append_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        session_id: &str,
        source: Source,
        body: EventBody,
    ) -> Result<Event, StoreError> {
        let ts = now_ms();
        // The row update takes the session's write lock first, so concurrent
        // appends to one session queue here and numbers never collide.
        let row = sqlx::query("UPDATE sessions SET last_seq = last_seq + 1, updated_at = $1 WHERE id = $2 RETURNING last_seq")
            .bind(ts)
            .bind(session_id)
            .fetch_optional(&mut **tx)
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
            .execute(&mut **tx)
            .await?;
        if self.announce {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::EVENTS_CHANNEL)
                .bind(format!("{session_id}:{seq}"))
                .execute(&mut **tx)
                .await?;
        }
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

/// `n` numbered placeholders from `$first`: `$1, $2, $3`.
fn marks(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` parenthesized groups of `width` placeholders from `$first`:
/// `($1, $2), ($3, $4)`.
fn tuples(rows: usize, width: usize, first: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", marks(width, first + r * width)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(super::marks(3, 1), "$1, $2, $3");
        assert_eq!(super::tuples(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(super::tuples(2, 1, 2), "($2), ($3)");
    }
}
