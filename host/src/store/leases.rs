//! The fleet's shared bookkeeping on PostgreSQL: host heartbeats and
//! session leases. Times are read from the database's clock, so hosts
//! whose clocks disagree still agree on when a lease ran out.
//!
//! Only fleet hosts call these, and a fleet refuses to start on SQLite,
//! so the SQL may be PostgreSQL's own.

use sqlx::Row;

use super::sessions::{session, COLUMNS};
use super::{Session, Store, StoreError};

/// The database's clock in milliseconds since the epoch.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A host of the fleet as its heartbeat row shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetHost {
    pub id: String,
    /// Where other hosts forward commands for its sessions.
    pub url: String,
}

fn fleet_host(row: &sqlx::any::AnyRow) -> Result<FleetHost, StoreError> {
    Ok(FleetHost {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
    })
}

impl Store {
    /// Records that `host_id` is alive, reachable at `url`, with `free`
    /// desktops to hand out.
    pub async fn heartbeat(&self, host_id: &str, url: &str, free: i64) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO fleet_hosts (id, url, started_at, seen_at, free_sandboxes) \
             VALUES ($1, $2, {NOW_MS}, {NOW_MS}, $3) \
             ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, seen_at = EXCLUDED.seen_at, \
             free_sandboxes = EXCLUDED.free_sandboxes"
        ))
        .bind(host_id)
        .bind(url)
        .bind(free)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces what this host publishes that each user holds on it:
    /// `(user, desktops, running agents)`.
    pub async fn publish_holdings(
        &self,
        host_id: &str,
        holdings: &[(String, i64, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM fleet_holdings WHERE host_id = $1")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        for (user, sandboxes, runs) in holdings {
            sqlx::query(
                "INSERT INTO fleet_holdings (host_id, user_id, sandboxes, runs) VALUES ($1, $2, $3, $4)",
            )
            .bind(host_id)
            .bind(user)
            .bind(sandboxes)
            .bind(runs)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many agents `user` runs on the live hosts other than `except`
    /// (live: seen within `within_ms`).
    pub async fn running_elsewhere(
        &self,
        user: &str,
        except: &str,
        within_ms: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT CAST(COALESCE(SUM(h.runs), 0) AS BIGINT) \
             FROM fleet_holdings h JOIN fleet_hosts f ON f.id = h.host_id \
             WHERE h.user_id = $1 AND h.host_id <> $2 AND f.seen_at >= {NOW_MS} - $3"
        ))
        .bind(user)
        .bind(except)
        .bind(within_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The live host other than `except` with the most free desktops, if
    /// any has one. Live: seen within `within_ms`.
    pub async fn roomiest_host(
        &self,
        except: &str,
        within_ms: i64,
    ) -> Result<Option<FleetHost>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT id, url FROM fleet_hosts WHERE id <> $1 AND seen_at >= {NOW_MS} - $2 \
             AND free_sandboxes > 0 ORDER BY free_sandboxes DESC, id LIMIT 1"
        ))
        .bind(except)
        .bind(within_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(fleet_host).transpose()
    }

    /// Takes the lease on a session for `ttl_ms` if it is free, expired or
    /// already ours. `Ok(None)`: ours now; `Ok(Some(host))`: another live
    /// host holds it.
    pub async fn acquire_lease(
        &self,
        session_id: &str,
        host_id: &str,
        ttl_ms: i64,
    ) -> Result<Option<FleetHost>, StoreError> {
        // A lease that lapses or is released between the two statements is
        // worth a second try.
        for _ in 0..2 {
            if self.try_lease(session_id, host_id, ttl_ms).await? {
                return Ok(None);
            }
            if let Some(host) = self.lease_holder(session_id).await? {
                return Ok(Some(host));
            }
        }
        self.lease_holder(session_id).await
    }

    /// One statement, so two hosts racing for a free lease cannot both
    /// win: the conflicting insert re-checks the row it collided with.
    async fn try_lease(
        &self,
        session_id: &str,
        host_id: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let won = sqlx::query(&format!(
            "INSERT INTO session_leases (session_id, host_id, expires_at) VALUES ($1, $2, {NOW_MS} + $3) \
             ON CONFLICT (session_id) DO UPDATE SET host_id = EXCLUDED.host_id, expires_at = EXCLUDED.expires_at \
             WHERE session_leases.host_id = EXCLUDED.host_id OR session_leases.expires_at < {NOW_MS} \
             RETURNING host_id"
        ))
        .bind(session_id)
        .bind(host_id)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(won.is_some())
    }

    /// The host holding an unexpired lease on the session, if any.
    pub async fn lease_holder(&self, session_id: &str) -> Result<Option<FleetHost>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT l.host_id AS id, COALESCE(h.url, '') AS url FROM session_leases l \
             LEFT JOIN fleet_hosts h ON h.id = l.host_id \
             WHERE l.session_id = $1 AND l.expires_at >= {NOW_MS}"
        ))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(fleet_host).transpose()
    }

    /// The hosts holding live leases on `session_ids`, by session.
    pub async fn lease_holders(
        &self,
        session_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        if session_ids.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=session_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT session_id, host_id FROM session_leases \
             WHERE session_id IN ({}) AND expires_at >= {NOW_MS}",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in session_ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("session_id")?, r.try_get("host_id")?)))
            .collect()
    }

    /// Extends every lease `host_id` holds and returns the sessions it
    /// still holds (a lease that ran out and was taken is not among them).
    pub async fn renew_leases(
        &self,
        host_id: &str,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "UPDATE session_leases SET expires_at = {NOW_MS} + $2 WHERE host_id = $1 RETURNING session_id"
        ))
        .bind(host_id)
        .bind(ttl_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Gives up `host_id`'s lease on a session (its actor stopped).
    pub async fn release_lease(&self, session_id: &str, host_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM session_leases WHERE session_id = $1 AND host_id = $2")
            .bind(session_id)
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up every lease `host_id` holds (it stops, or starts afresh).
    pub async fn release_leases_of(&self, host_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM session_leases WHERE host_id = $1")
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sessions stored as running that no live host holds: their host died
    /// or stopped mid-run. At most `limit`, least recently active first.
    pub async fn orphaned_sessions(&self, limit: i64) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions LEFT JOIN session_leases l ON l.session_id = sessions.id \
             WHERE status = 'running' AND (l.session_id IS NULL OR l.expires_at < {NOW_MS}) \
             ORDER BY updated_at LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session).collect()
    }
}
