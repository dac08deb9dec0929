//! The server's lifecycle: open the store and the plugin registry, start
//! the sandbox pool and the session actors, bring back sessions a previous
//! host left running, serve the API, and stop gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{router, AppState, Revocations, Tickets};
use crate::config::ServeConfig;
use crate::llm::Providers;
use crate::plugins::{Registry, Runtime, RuntimeConfig};
use crate::sandbox::{Docker, WarmPool};
use crate::session::{Sessions, Shared};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Plugins(#[from] crate::plugins::PluginError),
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    #[error("invalid configuration: {0}")]
    Approval(#[from] crate::session::RulesError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    #[error("[snapshots]: {0}")]
    Snapshots(#[from] crate::session::SnapshotError),
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    evictor: Option<JoinHandle<()>>,
    /// The fleet's heartbeat, adoption and listener tasks.
    fleet_tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the store and the plugin registry, connects to Docker (the
    /// server still starts without it, and `/readyz` says why it is not
    /// ready), brings back sessions left running, and starts listening.
    pub async fn start(config: ServeConfig, data_dir: &Path) -> Result<Self, ServeError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ServeError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let mut config = config;
        let database_url = config.database_url(data_dir);
        let mut store = Store::open(&database_url).await?;
        // Bound first: a fleet host advertises the address it really has.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let host_id = config
            .fleet
            .host_id
            .clone()
            .unwrap_or_else(|| crate::fleet::default_host_id(addr));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let fleet = if config.fleet.enabled {
            store.announce_appends();
            let url = config
                .fleet
                .advertise_url
                .clone()
                .unwrap_or_else(|| crate::fleet::default_url(addr));
            let fleet = crate::fleet::Fleet::join(
                &config.fleet,
                &store,
                &database_url,
                host_id.clone(),
                url,
                metrics.clone(),
            )
            .await?;
            // Hosts sharing a Docker engine must not reap each other's
            // sandboxes: each gets an owner label of its own by default.
            if config.sandbox.owner == crate::sandbox::SandboxConfig::default().owner {
                config.sandbox.owner = crate::fleet::owner_label(&host_id);
            }
            Some(Arc::new(fleet))
        } else {
            None
        };
        let runtime = Arc::new(Runtime::new(RuntimeConfig {
            limits: config.limits,
            cache_dir: Some(crate::plugins::compiled_cache_dir(data_dir)),
            allow_unreleased_wit: config.plugins.allow_unreleased_wit,
        })?);
        let registry = Arc::new(Registry::open(runtime, data_dir).await?);
        let pool = match Docker::connect(config.sandbox.sandbox_config()).await {
            Ok(docker) => match WarmPool::start(docker, config.sandbox.pool_config()).await {
                Ok(pool) => Some(Arc::new(pool)),
                Err(e) => {
                    tracing::error!(error = %e, "sandbox pool failed to start; sessions get no desktop");
                    None
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "Docker is unreachable; sessions get no desktop");
                None
            }
        };
        let providers = Providers::from_config(&config.llm)?;
        let policy_config = config
            .policies
            .iter()
            .map(|(name, table)| {
                (
                    name.clone(),
                    serde_json::to_value(table).unwrap_or_default(),
                )
            })
            .collect();
        let plugin_logs = Arc::new(crate::plugins::PluginLogs::default());
        let sessions = Arc::new(Sessions::new(Shared {
            store: store.clone(),
            registry: registry.clone(),
            pool: pool.clone(),
            providers,
            agent: config.agent.clone(),
            policy_config,
            default_policy: config.default_policy.clone(),
            quotas: crate::session::Quotas::new(config.user_caps()),
            approval: crate::session::ApprovalRules::new(&config.approval)?,
            recording: config.recording.clone(),
            prices: Arc::new(crate::llm::Prices::new(&config.prices)),
            recordings_dir: Some(data_dir.join("recordings")),
            plugin_logs: plugin_logs.clone(),
            mcp: config.mcp.clone(),
            mcp_catalog: Arc::default(),
            host_id: host_id.into(),
            fleet: fleet.clone(),
            metrics,
            snapshots: crate::session::Snapshots::new(
                config.snapshots.clone(),
                data_dir.join("snapshots"),
                (u64::from(config.sandbox.home_mb) + 64) << 20,
            )?,
        }));
        let evictor = config
            .agent
            .evict_after()
            .map(|after| sessions.start_evictor(after));
        // In a fleet, any host adopts the sessions a lost host was running
        // (this one's previous process included).
        let fleet_tasks = match &fleet {
            Some(fleet) => fleet.start(&sessions),
            None => {
                let recovered = sessions.recover().await?;
                if recovered > 0 {
                    tracing::info!(
                        recovered,
                        "sessions left running by the previous host are paused"
                    );
                }
                Vec::new()
            }
        };
        let state = AppState {
            store,
            registry,
            sessions,
            pool,
            tickets: Tickets::default(),
            revocations: Revocations::default(),
            exports: Arc::new(tokio::sync::Semaphore::new(crate::export::MAX_CONCURRENT)),
            plugin_logs,
            max_body_bytes: config.max_body_bytes,
        };
        let web_dir = config.web_dir();
        if web_dir.is_none() {
            tracing::warn!("the chat page is not built (web/dist); serving the API only");
        }
        let app = router(state.clone(), config.max_body_bytes, web_dir.as_deref());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt as _;
            // No Nagle: a streamed answer (server-sent events from /mcp,
            // WebSocket frames) goes out in several small writes, and
            // Nagle holding the second for the client's delayed ACK costs
            // 40 ms a request.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "server stopped with an error");
            }
        });
        tracing::info!(%addr, "listening");
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task,
            evictor,
            fleet_tasks,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Graceful stop: the listener stops taking connections first (so no
    /// new work arrives), then session actors stop (their in-flight event
    /// writes complete, WebSockets are told and closed, and no actor
    /// starts after this), then open requests drain, then sandboxes are
    /// destroyed (every container of this host's owner, so a stop under
    /// load leaves none) and the store closes.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(evictor) = self.evictor.take() {
            evictor.abort();
        }
        self.state.sessions.shutdown().await;
        for task in self.fleet_tasks.drain(..) {
            task.abort();
        }
        if tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 10 s; closing them");
            self.task.abort();
        }
        if let Some(pool) = &self.state.pool {
            pool.drain().await;
        }
        self.state.store.close().await;
    }
}
