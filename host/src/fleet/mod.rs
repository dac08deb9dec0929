//! A fleet: hosts sharing one PostgreSQL database serve any session.
//!
//! One host runs a session's actor at a time, the one holding its *lease*:
//! a row with an expiry on the database's clock, renewed by the holder
//! every third of the lease time. Rows rather than advisory locks: an
//! advisory lock lives as long as one database connection, so a host
//! would pin a connection per session (or one connection for all,
//! serializing them), a lock survives a hung host for as long as its TCP
//! connection lingers, and nobody can see who holds it. A row with an
//! expiry bounds how long a dead host strands its sessions (the lease
//! time), works through connection poolers, and is what
//! `GET /api/v1/sessions/{id}` reads to name the owning host.
//!
//! - Appends are announced with `pg_notify` inside their transaction, so a
//!   host following a session elsewhere ([`Fleet::follow`]) hears of each
//!   durable event and reads it from the store: the same cursor rules as
//!   today keep delivery exactly-once.
//! - Commands for a session another host runs are forwarded to it
//!   ([`forward`]), with the caller's own token, so the owner checks them
//!   as if they had come straight to it.
//! - Sessions stored as running whose lease lapsed are adopted by any host
//!   ([`Fleet::start`]) and come back paused, "host lost".
//! - A live desktop view reaching another host is relayed to the owner
//!   ([`relay`]).

mod follow;
pub mod forward;
mod plugins;
mod relay;

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Deserialize;

use follow::Followers;
pub use follow::Following;
pub use plugins::PluginChange;
pub use relay::RelayError;

use crate::session::Sessions;
use crate::store::{Backend, FleetHost, Store, StoreError};

/// `[fleet]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Join the fleet of hosts sharing this PostgreSQL database.
    pub enabled: bool,
    /// This host's name in the fleet; default: hostname and listen port.
    pub host_id: Option<String>,
    /// Where other hosts reach this one; default: `http://` and the listen
    /// address (the hostname when listening on every interface).
    pub advertise_url: Option<String>,
    /// How long a session's lease lasts without renewal: a dead host's
    /// sessions are adopted by another within about this long.
    pub lease_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host_id: None,
            advertise_url: None,
            lease_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "a fleet needs PostgreSQL: hosts share sessions, leases and plugins through one \
         database; set database_url to postgres://... or turn [fleet] off"
    )]
    NeedsPostgres,
    #[error("the fleet's lease time must be at least 2 seconds")]
    LeaseTooShort,
    #[error("the fleet's host id `{0}` is not 1-100 printable ASCII characters")]
    BadHostId(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This host's membership in the fleet.
pub struct Fleet {
    store: Store,
    host_id: String,
    url: String,
    ttl: Duration,
    database_url: String,
    followers: Followers,
    http: reqwest::Client,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The default host id: the machine's name and the port, unique per host
/// process on a machine and readable in `GET /sessions/{id}`.
pub fn default_host_id(listen: std::net::SocketAddr) -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{name}:{}", listen.port())
}

/// The default address other hosts use: the listen address, or the
/// machine's name when listening on every interface.
pub fn default_url(listen: std::net::SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        let name = default_host_id(listen);
        return format!("http://{name}");
    }
    format!("http://{listen}")
}

/// The sandbox owner label for a fleet host: its id in the characters
/// Docker accepts in names.
pub fn owner_label(host_id: &str) -> String {
    let clean: String = host_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("fleet-{clean}")
}

impl Fleet {
    /// Joins the fleet on `store` as `host_id`, reachable at `url`. Leases
    /// a previous process of this host left are dropped, so its running
    /// sessions are adopted at once rather than after the lease time.
    pub async fn join(
        config: &FleetConfig,
        store: &Store,
        database_url: &str,
        host_id: String,
        url: String,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, FleetError> {
        if store.backend() != Backend::Postgres {
            return Err(FleetError::NeedsPostgres);
        }
        if config.lease_secs < 2 {
            return Err(FleetError::LeaseTooShort);
        }
        if host_id.is_empty()
            || host_id.len() > 100
            || !host_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(FleetError::BadHostId(host_id));
        }
        store.heartbeat(&host_id, &url, 0).await?;
        store.release_leases_of(&host_id).await?;
        Ok(Self {
            store: store.clone(),
            host_id,
            url,
            ttl: Duration::from_secs(config.lease_secs),
            database_url: database_url.to_string(),
            followers: Followers::default(),
            metrics,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
        })
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn lease_time(&self) -> Duration {
        self.ttl
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Takes the session's lease for this host; `Some(host)` if another
    /// live host runs it.
    pub async fn acquire(&self, session_id: &str) -> Result<Option<FleetHost>, StoreError> {
        let holder = self
            .store
            .acquire_lease(session_id, &self.host_id, self.ttl_ms())
            .await?;
        if holder.is_none() {
            self.metrics.lease_change("acquired");
        }
        Ok(holder)
    }

    /// Gives the session's lease up (its actor stopped here).
    pub async fn release(&self, session_id: &str) {
        self.metrics.lease_change("released");
        if let Err(e) = self.store.release_lease(session_id, &self.host_id).await {
            tracing::warn!(session = session_id, error = %e, "cannot release a lease; it lapses instead");
        }
    }

    /// Gives every lease of this host up (it stops): its running sessions
    /// are adopted by the others at once.
    pub async fn leave(&self) {
        if let Err(e) = self.store.release_leases_of(&self.host_id).await {
            tracing::warn!(error = %e, "cannot release this host's leases; they lapse instead");
        }
    }

    /// The live host other than this one that runs the session, if any.
    pub async fn owner_elsewhere(&self, session_id: &str) -> Result<Option<FleetHost>, StoreError> {
        Ok(self
            .store
            .lease_holder(session_id)
            .await?
            .filter(|h| h.id != self.host_id))
    }

    /// Publishes this host's free desktops now (after a claim), not only
    /// with the next heartbeat, so placement sees a host fill up at once.
    pub async fn publish_capacity(&self, free: usize) {
        if let Err(e) = self
            .store
            .heartbeat(&self.host_id, &self.url, free as i64)
            .await
        {
            tracing::warn!(error = %e, "cannot publish this host's free desktops");
        }
    }

    /// How many agents `user` runs on the other live hosts. If the
    /// database cannot say, none: a user is not refused for the fleet's
    /// trouble (each host's own cap still holds).
    pub async fn running_elsewhere(&self, user: &str) -> usize {
        match self
            .store
            .running_elsewhere(user, &self.host_id, self.ttl_ms())
            .await
        {
            Ok(runs) => runs.max(0) as usize,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read what the user runs on other hosts");
                0
            }
        }
    }

    /// Publishes what each user holds on this host.
    pub async fn publish_holdings(&self, quotas: &crate::session::Quotas) {
        if let Err(e) = self
            .store
            .publish_holdings(&self.host_id, &quotas.holdings())
            .await
        {
            tracing::warn!(error = %e, "cannot publish what users hold on this host");
        }
    }

    /// The host to start a new session on when this one has no desktop
    /// free: the live one with the most, if any has one.
    pub async fn place(&self) -> Result<Option<FleetHost>, StoreError> {
        self.store.roomiest_host(&self.host_id, self.ttl_ms()).await
    }

    /// A live stream of a session another host runs (see [`Following`]).
    pub async fn follow(&self, session_id: &str) -> Result<Following, StoreError> {
        self.followers.follow(&self.store, session_id).await
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Starts the fleet's background work for `sessions`: heartbeat and
    /// lease renewal, adoption of orphaned sessions, the listener that
    /// feeds followers, and the follower of the plugin change log. The
    /// server aborts them when it stops.
    pub fn start(self: &Arc<Self>, sessions: &Arc<Sessions>) -> Vec<tokio::task::JoinHandle<()>> {
        let weak = Arc::downgrade(sessions);
        vec![
            tokio::spawn(keep_leases(self.clone(), weak.clone())),
            tokio::spawn(publish_holdings(self.clone(), weak.clone())),
            tokio::spawn(adopt_orphans(self.clone(), weak)),
            tokio::spawn(follow::listen(
                self.database_url.clone(),
                self.store.clone(),
                self.followers.clone(),
            )),
            tokio::spawn(plugins::follow_changes(
                self.clone(),
                sessions.shared().registry.clone(),
            )),
        ]
    }
}

/// Publishes what users hold here whenever a permit is taken or given
/// back (coalesced: one publication covers every change before it).
async fn publish_holdings(fleet: Arc<Fleet>, sessions: Weak<Sessions>) {
    loop {
        let Some(strong) = sessions.upgrade() else {
            return;
        };
        let shared = strong.shared().clone();
        drop(strong);
        shared.quotas.changed().notified().await;
        fleet.publish_holdings(&shared.quotas).await;
    }
}

/// A connection listening on `channel`, retried every second until the
/// database answers.
async fn listen_on(database_url: &str, channel: &str) -> sqlx::postgres::PgListener {
    loop {
        let connected = match sqlx::postgres::PgListener::connect(database_url).await {
            Ok(mut l) => l.listen(channel).await.map(|()| l),
            Err(e) => Err(e),
        };
        match connected {
            Ok(listener) => return listener,
            Err(e) => {
                tracing::warn!(channel, error = %e, "cannot listen on the fleet's database; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Every third of the lease time: the heartbeat, then every lease renewed
/// in one statement. A session whose lease this host no longer holds (the
/// database was out of reach for a whole lease time and another host
/// adopted it) has its actor stopped here, so two hosts never run it.
async fn keep_leases(fleet: Arc<Fleet>, sessions: Weak<Sessions>) {
    let mut tick = tokio::time::interval(fleet.ttl / 3);
    loop {
        tick.tick().await;
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let free = sessions.free_desktops() as i64;
        if let Err(e) = fleet
            .store
            .heartbeat(&fleet.host_id, &fleet.url, free)
            .await
        {
            tracing::warn!(error = %e, "fleet heartbeat failed");
        }
        let held: HashSet<String> = match fleet
            .store
            .renew_leases(&fleet.host_id, fleet.ttl_ms())
            .await
        {
            Ok(held) => held.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew this host's leases");
                continue;
            }
        };
        for id in sessions.local_ids() {
            if held.contains(&id) {
                continue;
            }
            // Taken just now, after the renewal read? Ask once more.
            match fleet.store.lease_holder(&id).await {
                Ok(Some(h)) if h.id == fleet.host_id => {}
                Ok(holder) => {
                    tracing::warn!(session = %id, holder = ?holder.map(|h| h.id), "lease lost; stopping the session here");
                    fleet.metrics.lease_change("lost");
                    sessions.drop_lost(&id).await;
                }
                Err(_) => {}
            }
        }
    }
}

/// Every second: sessions stored as running that no live host holds are
/// adopted, if this host wins their lease, and come back paused.
async fn adopt_orphans(fleet: Arc<Fleet>, sessions: Weak<Sessions>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let orphans = match fleet.store.orphaned_sessions(50).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for orphaned sessions");
                continue;
            }
        };
        for session in orphans {
            match fleet.acquire(&session.id).await {
                Ok(None) => {
                    tracing::info!(session = %session.id, "adopting a session whose host was lost");
                    fleet.metrics.lease_change("adopted");
                    sessions.adopt(&session).await;
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(session = %session.id, error = %e, "cannot take a lease"),
            }
        }
    }
}
