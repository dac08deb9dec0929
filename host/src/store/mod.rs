//! Durable state: sessions, their event logs, content-addressed images and
//! API tokens, on SQLite (the embedded default) or PostgreSQL (by URL).
//!
//! One schema and one set of queries serve both through sqlx's `Any`
//! driver; the SQL sticks to what both accept. Each session's events have a
//! gapless sequence number, the resume cursor: appending bumps
//! `sessions.last_seq` and inserts the event in one transaction, which
//! serializes appends per session on both databases.

mod error;
mod events;
mod fleet_plugins;
mod grouped;
mod images;
mod leases;
mod migrations;
mod sessions;
mod snapshots;
mod tokens;
mod usage;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;

pub use crate::event::Event;
pub use error::StoreError;
pub use fleet_plugins::{PluginChangeRow, PLUGINS_CHANNEL};
pub use images::StoredImage;
pub use leases::FleetHost;
pub(crate) use sessions::new_id;
pub use sessions::{micros_to_usd, Session, SessionSettings, SessionStatus, UsageTotals};
pub use snapshots::{ForkOrigin, Snapshot};
pub use tokens::{TokenInfo, TokenUser, TOKEN_ID_LEN};
pub use usage::secs_until_tomorrow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Announce each append on [`EVENTS_CHANNEL`] (a fleet's hosts follow
    /// sessions run elsewhere through it).
    announce: bool,
    /// Group commit for appends (PostgreSQL; see [`grouped`]).
    grouper: Option<std::sync::Arc<grouped::Grouper>>,
}

/// The PostgreSQL channel appends are announced on, as `session_id:seq`.
/// The announcement is part of the append's transaction, so it is
/// delivered only once the event is durable, and never for a rollback.
pub const EVENTS_CHANNEL: &str = "agenthost_events";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens `url` (`sqlite:path`, `postgres://...`) and applies migrations.
    /// A SQLite file is created if missing.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        // SQLite allows one writer; a single connection avoids busy errors
        // and is plenty for an embedded store.
        let max = if backend == Backend::Sqlite { 1 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&pool)
                .await?;
        }
        sqlx::migrate::Migrator::new(migrations::Embedded)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let mut store = Self {
            pool,
            backend,
            announce: false,
            grouper: None,
        };
        store.group_appends(backend == Backend::Postgres);
        Ok(store)
    }

    /// Announces every append from now on (fleet hosts; PostgreSQL only).
    pub fn announce_appends(&mut self) {
        self.announce = self.backend == Backend::Postgres;
        // The workers write through their own copy: give them one that
        // announces too.
        let grouped = self.grouper.is_some();
        self.group_appends(grouped);
    }

    /// Turns group commit for appends on or off (on by default on
    /// PostgreSQL; SQLite has one writer, so there is nothing to group).
    /// Affects this handle and its clones made afterwards.
    pub fn group_appends(&mut self, on: bool) {
        self.grouper = None;
        if on && self.backend == Backend::Postgres {
            self.grouper = Some(grouped::Grouper::start(self.clone()));
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A round trip to the database (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
