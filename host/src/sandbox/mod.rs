//! Sandboxes: Docker containers running the desktop image, reached only
//! over ports published on 127.0.0.1.
//!
//! * [`docker`]: create, start, inspect, remove and reap containers (bollard).
//! * [`exec`]: the client of our exec service in the image: shell and files.
//! * [`computer`]: the `computer` interface over our RFB client.
//! * [`pool`]: sandboxes booted and connected ahead of time.
//! * [`snapshot`]: a sandbox's files (its home) saved and put back.

mod activity;
mod computer;
mod docker;
mod error;
mod exec;
mod network;
mod pool;
mod snapshot;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use activity::Activity;
pub use computer::RfbComputer;
pub use docker::{Docker, SandboxConfig};
pub use error::SandboxError;
pub use exec::ExecClient;
pub use network::{Egress, NetworkNames, BLOCKED_RANGES};
pub use pool::{PoolConfig, PoolStats, WarmPool};

use crate::capabilities::SandboxBackends;

/// How to reach a sandbox's VNC server.
#[derive(Clone)]
pub struct VncTarget {
    pub addr: SocketAddr,
    pub password: String,
    /// The sandbox's activity: a person's input through the live view
    /// counts as use, so the idle reaper leaves a sandbox in use alone.
    pub activity: Arc<Activity>,
}

impl std::fmt::Debug for VncTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VncTarget")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// One running sandbox, connected and ready.
pub struct Sandbox {
    pub id: String,
    pub name: String,
    pub vnc_addr: SocketAddr,
    /// The VNC password; only the host's bridge uses it, never a browser.
    pub(crate) vnc_password: String,
    pub exec_addr: SocketAddr,
    pub computer: Arc<RfbComputer>,
    pub exec: Arc<ExecClient>,
    pub(crate) docker: Docker,
    /// Last use, shared with the backends and the pool's idle reaper.
    pub activity: Arc<Activity>,
    /// How long boot to ready took.
    pub boot_time: Duration,
}

impl Sandbox {
    /// The backends of the `computer`, `shell` and `files` interfaces.
    pub fn backends(&self) -> SandboxBackends {
        SandboxBackends {
            computer: self.computer.clone(),
            shell: self.exec.clone(),
            files: self.exec.clone(),
        }
    }

    /// Where the desktop's VNC server listens and its password, for the
    /// browser bridge.
    pub fn vnc_target(&self) -> VncTarget {
        VncTarget {
            addr: self.vnc_addr,
            password: self.vnc_password.clone(),
            activity: self.activity.clone(),
        }
    }

    /// Whether the desktop connection is up (a dead container drops it).
    pub fn is_alive(&self) -> bool {
        self.computer.is_alive()
    }

    /// Stops and removes the container.
    pub async fn destroy(self) -> Result<(), SandboxError> {
        self.docker.remove(&self.id).await
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.name)
            .field("vnc", &self.vnc_addr)
            .finish_non_exhaustive()
    }
}
