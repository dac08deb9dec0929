//! Snapshots of sessions' desktop files, and forks: a new session with
//! another's history up to an event, whose desktop starts from the last
//! snapshot taken by then.

use sqlx::Row;

use super::sessions::{new_id, session, COLUMNS};
use super::{now_ms, Session, SessionStatus, Store, StoreError};

/// One snapshot: the session's files after event `seq`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub session_id: String,
    pub seq: i64,
    /// Where the archive is kept (a path on the host that took it).
    #[serde(skip)]
    pub location: String,
    pub bytes: i64,
    pub created_ms: i64,
}

fn snapshot(row: &sqlx::any::AnyRow) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        session_id: row.try_get("session_id")?,
        seq: row.try_get("seq")?,
        location: row.try_get("location")?,
        bytes: row.try_get("bytes")?,
        created_ms: row.try_get("created_ms")?,
    })
}

/// Where a fork came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForkOrigin {
    pub session_id: String,
    pub seq: i64,
}

impl Store {
    /// Records a snapshot (a second one after the same event replaces the
    /// first).
    pub async fn add_snapshot(&self, s: &Snapshot) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM snapshots WHERE session_id = $1 AND seq = $2")
            .bind(&s.session_id)
            .bind(s.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO snapshots (session_id, seq, location, bytes, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.session_id)
        .bind(s.seq)
        .bind(&s.location)
        .bind(s.bytes)
        .bind(s.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session's snapshots, oldest first.
    pub async fn snapshots(&self, session_id: &str) -> Result<Vec<Snapshot>, StoreError> {
        let rows = sqlx::query("SELECT * FROM snapshots WHERE session_id = $1 ORDER BY seq")
            .bind(session_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(snapshot).collect()
    }

    /// The newest snapshot taken at or before event `seq`.
    pub async fn snapshot_at(
        &self,
        session_id: &str,
        seq: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM snapshots WHERE session_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(session_id)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(snapshot).transpose()
    }

    /// Forgets snapshots beyond the newest `keep`, returning them so the
    /// caller removes their files.
    pub async fn prune_snapshots(
        &self,
        session_id: &str,
        keep: usize,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let all = self.snapshots(session_id).await?;
        let excess = all.len().saturating_sub(keep);
        let old: Vec<Snapshot> = all.into_iter().take(excess).collect();
        for s in &old {
            sqlx::query("DELETE FROM snapshots WHERE session_id = $1 AND seq = $2")
                .bind(&s.session_id)
                .bind(s.seq)
                .execute(&self.pool)
                .await?;
        }
        Ok(old)
    }

    /// The snapshot the session's next desktop starts from, if any.
    pub async fn restore_from(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT restore_from FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// Whether a session's next desktop is to start from `location` (a
    /// fork's, or an adopted session's): such a snapshot must stay.
    pub async fn restore_pending(&self, location: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE restore_from = $1")
            .bind(location)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Sets (or clears, once a desktop started from it) the snapshot the
    /// session's next desktop starts from.
    pub async fn set_restore_from(
        &self,
        session_id: &str,
        location: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET restore_from = $1 WHERE id = $2")
            .bind(location)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A new session of `source`'s user with `source`'s events up to
    /// `at_seq` (fresh event ids, the same sequence numbers), the images
    /// those events name, `source`'s settings and `policy`. Stored
    /// `paused`: resuming it continues the task from there. One
    /// transaction.
    pub async fn fork_session(
        &self,
        source: &Session,
        at_seq: i64,
        policy: &str,
        title: &str,
    ) -> Result<Session, StoreError> {
        let now = now_ms();
        let id = new_id("ses");
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO sessions ({COLUMNS}, restore_from, forked_from, forked_at) \
             SELECT $1, user_id, $2, $3, $4, $5, $5, $6, 0, 0, settings, 0, NULL, id, $6 \
             FROM sessions WHERE id = $7"
        ))
        .bind(&id)
        .bind(title)
        .bind(SessionStatus::Paused.as_str())
        .bind(policy)
        .bind(now)
        .bind(at_seq)
        .bind(&source.id)
        .execute(&mut *tx)
        .await?;
        // Event ids are unique per event; the fork's are made from its id.
        sqlx::query(
            "INSERT INTO events (session_id, seq, id, kind, source, ts, payload) \
             SELECT $1, seq, $2 || CAST(seq AS TEXT), kind, source, ts, payload \
             FROM events WHERE session_id = $3 AND seq <= $4",
        )
        .bind(&id)
        .bind(format!("evt_{}_", &id[4..]))
        .bind(&source.id)
        .bind(at_seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO session_images (session_id, sha256) \
             SELECT DISTINCT $1, si.sha256 FROM session_images si \
             WHERE si.session_id = $2 AND EXISTS (SELECT 1 FROM events e \
               WHERE e.session_id = $2 AND e.seq <= $3 AND e.kind = 'tool_result' \
               AND e.payload LIKE '%' || si.sha256 || '%')",
        )
        .bind(&id)
        .bind(&source.id)
        .bind(at_seq)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        session(&row)
    }
}
