//! `agenthost:plugin/shell`: checks, then the sandbox's shell backend.

use super::host_state::no_sandbox;
use super::HostState;
use crate::plugins::bindings::current::shell::{Command, Host, Output};
use crate::plugins::bindings::current::types::HostError;
use crate::plugins::Capability;

impl Host for HostState {
    async fn run(&mut self, cmd: Command) -> Result<Output, HostError> {
        self.authorize(Capability::Shell)?;
        let shell = self
            .ctx
            .sandbox
            .as_ref()
            .map(|s| s.shell.clone())
            .ok_or_else(|| no_sandbox(self.plugin()))?;
        if cmd.command.trim().is_empty() {
            return Err(HostError::Invalid("the command is empty".into()));
        }
        self.timed("shell command", shell.run(cmd)).await
    }
}
