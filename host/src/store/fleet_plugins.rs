//! A fleet's shared plugins: components stored once by content, and the
//! ordered log of plugin changes every host applies (PostgreSQL only).

use base64::Engine as _;
use sqlx::Row;

use super::images::b64;
use super::{now_ms, Store, StoreError};

/// The PostgreSQL channel a new plugin change is announced on (its id).
pub const PLUGINS_CHANNEL: &str = "agenthost_plugins";

/// One entry of the plugin change log.
#[derive(Debug, Clone)]
pub struct PluginChangeRow {
    pub id: i64,
    pub origin: String,
    pub change: String,
}

impl Store {
    /// Stores a component (idempotent: the same content is kept once).
    pub async fn put_fleet_component(
        &self,
        sha256: &str,
        manifest: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fleet_components (sha256, manifest, data) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(manifest)
        .bind(b64().encode(bytes))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A stored component's manifest and bytes.
    pub async fn fleet_component(&self, sha256: &str) -> Result<(String, Vec<u8>), StoreError> {
        let row = sqlx::query("SELECT manifest, data FROM fleet_components WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let data: String = row.try_get("data")?;
        let bytes = b64()
            .decode(data)
            .map_err(|e| StoreError::Corrupt(format!("component {sha256}: {e}")))?;
        Ok((row.try_get("manifest")?, bytes))
    }

    /// Appends a change to the log and announces it, in one transaction.
    pub async fn append_plugin_change(
        &self,
        origin: &str,
        change: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Ids are handed out in commit order, so a host that has applied
        // up to id N never misses an N-1 that committed later.
        sqlx::query("LOCK TABLE fleet_plugin_changes IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO fleet_plugin_changes (origin, change, at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(origin)
        .bind(change)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PLUGINS_CHANNEL)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes after `after`, oldest first, at most `limit`.
    pub async fn plugin_changes_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PluginChangeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, origin, change FROM fleet_plugin_changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PluginChangeRow {
                    id: row.try_get("id")?,
                    origin: row.try_get("origin")?,
                    change: row.try_get("change")?,
                })
            })
            .collect()
    }
}
