//! Sandbox failures, each saying what to do about it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "Docker is not reachable ({0}): start it (scripts/setup.sh installs and starts dockerd)"
    )]
    DockerUnavailable(String),
    #[error("the sandbox image `{0}` is missing: build it with sandbox-image/build.sh")]
    ImageMissing(String),
    #[error("the sandbox did not become ready within {timeout:?}: {detail}")]
    StartTimeout { timeout: Duration, detail: String },
    #[error("the sandbox container exited during start: {0}")]
    Exited(String),
    #[error("all {0} sandboxes are in use; try again when a session ends")]
    PoolExhausted(usize),
    #[error("Docker: {0}")]
    Docker(String),
    #[error("sandbox network: {0}")]
    Network(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("snapshot file: {0}")]
    SnapshotFile(#[from] std::io::Error),
}

impl From<bollard::errors::Error> for SandboxError {
    fn from(e: bollard::errors::Error) -> Self {
        Self::Docker(e.to_string())
    }
}
