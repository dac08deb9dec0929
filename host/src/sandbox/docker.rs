//! Container lifecycle through the Docker API.
//!
//! Everything the host creates carries the `agenthost.owner` label, so
//! containers left by a crashed host are found and removed at start.
//! Containers get CPU, memory and pids limits, no Docker socket, no new
//! privileges, every capability dropped but the two the entrypoint needs
//! to start the desktop and the agent's processes as two different users
//! (SETUID, SETGID; the agent's processes then have none), an init as
//! PID 1, a read-only root filesystem with size-limited tmpfs for `/tmp`,
//! `/run` and the agent's home, a `nofile` limit, their own network
//! (see [`super::network`]), and their two ports published on 127.0.0.1
//! only. There is no disk quota beyond the tmpfs sizes: with a read-only
//! root nothing else is writable, and tmpfs pages count against the
//! memory limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use rand::distr::{Alphanumeric, SampleString};

use super::computer::RfbComputer;
use super::exec::ExecClient;
use super::network::{self, Egress, NetworkNames};
use super::{Activity, Sandbox, SandboxError};
use crate::rfb::RfbClient;

const VNC_PORT: &str = "5900/tcp";
const EXEC_PORT: &str = "7000/tcp";
const OWNER_LABEL: &str = "agenthost.owner";

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub image: String,
    pub screen: (u32, u32),
    pub memory_bytes: i64,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: i64,
    pub pids_limit: i64,
    pub start_timeout: Duration,
    /// Label value marking this host's containers; reaping removes only
    /// containers with the same owner.
    pub owner: String,
    /// Where sandboxes may send traffic.
    pub egress: Egress,
    /// Size of the agent's writable home (tmpfs), in MiB.
    pub home_mb: u32,
    /// Size of `/tmp` (tmpfs), in MiB.
    pub tmp_mb: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            image: "agenthost-sandbox:latest".into(),
            screen: (1280, 800),
            memory_bytes: 2 << 30,
            nano_cpus: 1_000_000_000,
            pids_limit: 512,
            start_timeout: Duration::from_secs(30),
            owner: "agenthost".into(),
            egress: Egress::Internet,
            home_mb: 1024,
            tmp_mb: 512,
        }
    }
}

/// A connection to the Docker engine plus the sandbox settings.
#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
    config: Arc<SandboxConfig>,
    /// Whether the owner's network and egress rules are in place (a
    /// teardown clears it, so a later start makes them again).
    network_ready: Arc<tokio::sync::Mutex<bool>>,
}

fn secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

impl Docker {
    pub async fn connect(config: SandboxConfig) -> Result<Self, SandboxError> {
        let unavailable =
            |e: bollard::errors::Error| SandboxError::DockerUnavailable(e.to_string());
        let client = bollard::Docker::connect_with_local_defaults().map_err(unavailable)?;
        let client = client.negotiate_version().await.map_err(unavailable)?;
        client.ping().await.map_err(unavailable)?;
        Ok(Self {
            client,
            config: Arc::new(config),
            network_ready: Arc::default(),
        })
    }

    pub fn network_names(&self) -> NetworkNames {
        NetworkNames::for_owner(&self.config.owner)
    }

    /// Makes this owner's sandbox network and installs its egress rules
    /// (once until a teardown; every start waits for it).
    pub async fn prepare_network(&self) -> Result<(), SandboxError> {
        let mut ready = self.network_ready.lock().await;
        if !*ready {
            let names = self.network_names();
            network::ensure_network(&self.client, &names, (OWNER_LABEL, &self.config.owner))
                .await?;
            network::install_rules(&names, self.config.egress).await?;
            *ready = true;
        }
        Ok(())
    }

    /// Removes the egress rules and the network (after the sandboxes).
    pub async fn teardown_network(&self) {
        let mut ready = self.network_ready.lock().await;
        *ready = false;
        let names = self.network_names();
        network::remove_rules(&names).await;
        if let Err(e) = self.client.remove_network(&names.network).await {
            tracing::debug!(error = %e, "sandbox network not removed");
        }
    }

    /// Whether the engine answers (readiness checks).
    pub async fn ping(&self) -> Result<(), SandboxError> {
        self.client
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    fn owner_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{OWNER_LABEL}={}", self.config.owner)],
        )])
    }

    /// Ids of this owner's containers, running or not.
    pub async fn list_owned(&self) -> Result<Vec<String>, SandboxError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.owner_filter())
            .build();
        let list = self.client.list_containers(Some(options)).await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Removes containers this owner left behind (a crashed host).
    pub async fn reap(&self) -> Result<usize, SandboxError> {
        let ids = self.list_owned().await?;
        for id in &ids {
            self.remove(id).await?;
        }
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), "removed leftover sandboxes");
        }
        Ok(ids.len())
    }

    pub async fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.client.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates and starts a sandbox and returns it once its desktop has
    /// completed an RFB handshake and sent its first frame, and its exec
    /// service has answered.
    pub async fn start(&self) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        self.prepare_network().await?;
        let cfg = &self.config;
        let name = format!(
            "agenthost-sbx-{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 10)
                .to_lowercase()
        );
        let (vnc_password, exec_secret) = (secret()[..8].to_string(), secret());
        let loopback = |port: &str| {
            (
                port.to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: None,
                }]),
            )
        };
        let body = ContainerCreateBody {
            image: Some(cfg.image.clone()),
            env: Some(vec![
                format!("AGENTHOST_VNC_PASSWORD={vnc_password}"),
                format!("AGENTHOST_EXEC_SECRET={exec_secret}"),
                format!("AGENTHOST_SCREEN={}x{}", cfg.screen.0, cfg.screen.1),
            ]),
            labels: Some(HashMap::from([(
                OWNER_LABEL.to_string(),
                cfg.owner.clone(),
            )])),
            exposed_ports: Some(vec![VNC_PORT.to_string(), EXEC_PORT.to_string()]),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([loopback(VNC_PORT), loopback(EXEC_PORT)])),
                memory: Some(cfg.memory_bytes),
                nano_cpus: Some(cfg.nano_cpus),
                pids_limit: Some(cfg.pids_limit),
                security_opt: Some(vec!["no-new-privileges".into()]),
                cap_drop: Some(vec!["ALL".into()]),
                // The entrypoint (root) starts Xvnc as `desktop` and the
                // agent's processes as `agent` with setpriv; nothing else.
                cap_add: Some(vec!["SETUID".into(), "SETGID".into()]),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([
                    (
                        "/tmp".to_string(),
                        format!("rw,nosuid,nodev,size={}m,mode=1777", cfg.tmp_mb),
                    ),
                    (
                        "/home/agent".to_string(),
                        format!(
                            "rw,nosuid,nodev,size={}m,mode=0755,uid=1000,gid=1000",
                            cfg.home_mb
                        ),
                    ),
                    (
                        "/run".to_string(),
                        "rw,nosuid,nodev,noexec,size=16m,mode=0755".to_string(),
                    ),
                ])),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(4096),
                    hard: Some(4096),
                }]),
                network_mode: Some(self.network_names().network),
                shm_size: Some(256 << 20),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = match self.client.create_container(Some(options), body).await {
            Ok(c) => c,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(SandboxError::ImageMissing(cfg.image.clone())),
            Err(e) => return Err(e.into()),
        };
        let id = created.id;
        match self
            .boot(&id, &name, &vnc_password, exec_secret, started)
            .await
        {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                let _ = self.remove(&id).await;
                Err(e)
            }
        }
    }

    async fn boot(
        &self,
        id: &str,
        name: &str,
        vnc_password: &str,
        exec_secret: String,
        started: Instant,
    ) -> Result<Sandbox, SandboxError> {
        self.client.start_container(id, None).await?;
        let info = self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        let ports = info
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default();
        let published = |port: &str| -> Result<SocketAddr, SandboxError> {
            let binding = ports.get(port).cloned().flatten().unwrap_or_default();
            let b = binding
                .into_iter()
                .find(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
                .ok_or_else(|| {
                    SandboxError::Docker(format!("port {port} was not published on 127.0.0.1"))
                })?;
            let port: u16 = b
                .host_port
                .unwrap_or_default()
                .parse()
                .map_err(|_| SandboxError::Docker("bad host port".into()))?;
            Ok(SocketAddr::from(([127, 0, 0, 1], port)))
        };
        let (vnc_addr, exec_addr) = (published(VNC_PORT)?, published(EXEC_PORT)?);

        let deadline = started + self.config.start_timeout;
        let client = self
            .until_ready(id, deadline, || {
                RfbClient::connect(vnc_addr, Some(vnc_password), Duration::from_secs(5))
            })
            .await?;
        client
            .first_frame(deadline.saturating_duration_since(Instant::now()))
            .await
            .map_err(|e| SandboxError::StartTimeout {
                timeout: self.config.start_timeout,
                detail: e.to_string(),
            })?;
        let activity = Arc::new(Activity::default());
        let exec = ExecClient::new(exec_addr, exec_secret, activity.clone());
        self.until_ready(id, deadline, || exec.ping()).await?;
        Ok(Sandbox {
            id: id.to_string(),
            name: name.to_string(),
            vnc_addr,
            vnc_password: vnc_password.to_string(),
            exec_addr,
            computer: Arc::new(RfbComputer::new(
                client,
                vnc_addr,
                vnc_password.to_string(),
                activity.clone(),
            )),
            exec: Arc::new(exec),
            docker: self.clone(),
            activity,
            boot_time: started.elapsed(),
        })
    }

    /// Retries `attempt` until it succeeds, the container exits, or the
    /// deadline passes. Docker accepts connections on a published port
    /// before the service behind it listens, so early attempts fail fast;
    /// the back-off only spaces retries, readiness is the success itself.
    async fn until_ready<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
        &self,
        id: &str,
        deadline: Instant,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, SandboxError> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let error = match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => e.to_string(),
            };
            let state = self
                .client
                .inspect_container(id, None::<InspectContainerOptions>)
                .await?
                .state;
            if !state.and_then(|s| s.running).unwrap_or(false) {
                return Err(SandboxError::Exited(self.log_tail(id).await));
            }
            if Instant::now() + backoff > deadline {
                return Err(SandboxError::StartTimeout {
                    timeout: self.config.start_timeout,
                    detail: error,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    async fn log_tail(&self, id: &str) -> String {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail("20")
            .build();
        let mut logs = self.client.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&chunk.to_string());
        }
        if text.trim().is_empty() {
            "(no output)".into()
        } else {
            text.trim().to_string()
        }
    }

    /// Whether a container is running (for tests and the pool).
    pub async fn is_running(&self, id: &str) -> Result<bool, SandboxError> {
        match self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => Ok(info.state.and_then(|s| s.running).unwrap_or(false)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// How Docker runs a container (tests check the confinement).
    pub async fn host_config(&self, id: &str) -> Result<HostConfig, SandboxError> {
        let info = self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        Ok(info.host_config.unwrap_or_default())
    }

    /// A network's options and the containers on it (tests).
    pub async fn inspect_network(
        &self,
        name: &str,
    ) -> Result<bollard::models::NetworkInspect, SandboxError> {
        Ok(self
            .client
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await?)
    }

    /// The limits Docker applied, as (memory bytes, nano cpus, pids).
    pub async fn limits(&self, id: &str) -> Result<(i64, i64, i64), SandboxError> {
        let hc = self.host_config(id).await?;
        Ok((
            hc.memory.unwrap_or(0),
            hc.nano_cpus.unwrap_or(0),
            hc.pids_limit.unwrap_or(0),
        ))
    }

    pub async fn kill(&self, id: &str) -> Result<(), SandboxError> {
        self.client
            .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
            .await?;
        Ok(())
    }
}
