//! `agenthost:plugin/files`: checks, then the sandbox's files backend.

use std::sync::Arc;

use super::host_state::no_sandbox;
use super::{FilesBackend, HostState};
use crate::plugins::bindings::current::files::{Entry, Host};
use crate::plugins::bindings::current::types::HostError;
use crate::plugins::Capability;

/// Largest file a plugin may write in one call.
const MAX_WRITE_BYTES: usize = 64 << 20;

impl HostState {
    fn files(&self, path: &str) -> Result<Arc<dyn FilesBackend>, HostError> {
        self.authorize(Capability::Files)?;
        if path.is_empty() || path.contains('\0') {
            return Err(HostError::Invalid(
                "the path is empty or contains a NUL byte".into(),
            ));
        }
        self.ctx
            .sandbox
            .as_ref()
            .map(|s| s.files.clone())
            .ok_or_else(|| no_sandbox(self.plugin()))
    }
}

impl Host for HostState {
    async fn read(&mut self, path: String) -> Result<Vec<u8>, HostError> {
        let f = self.files(&path)?;
        self.timed("read", f.read(&path)).await
    }

    async fn write(&mut self, path: String, contents: Vec<u8>) -> Result<(), HostError> {
        let f = self.files(&path)?;
        if contents.len() > MAX_WRITE_BYTES {
            return Err(HostError::Invalid(format!(
                "{} bytes is over the 64 MiB write limit",
                contents.len()
            )));
        }
        self.timed("write", f.write(&path, &contents)).await
    }

    async fn list_dir(&mut self, path: String) -> Result<Vec<Entry>, HostError> {
        let f = self.files(&path)?;
        self.timed("list-dir", f.list_dir(&path)).await
    }

    async fn stat(&mut self, path: String) -> Result<Option<Entry>, HostError> {
        let f = self.files(&path)?;
        self.timed("stat", f.stat(&path)).await
    }
}
