//! The end-to-end suites, one module each, in one test binary.
//!
//! Each test binary links the host and wasmtime: sixteen of them cost a
//! cold build over a minute of CPU in compiling and linking alone.
//! `scripts/run-tests.py` still runs each suite as a process of its own,
//! several side by side (`--exact` with the suite's tests, and
//! `AGENTHOST_TEST_GROUP` naming its sandbox owners); `cargo test -p
//! agenthost-tests` runs them all in one process.

mod approvals;
mod capabilities;
mod deploy;
mod fleet;
mod hardening;
mod llm_providers;
mod mcp;
mod metrics;
mod otlp;
mod plugin_components;
mod plugin_runtime;
mod sandbox;
mod server;
mod snapshots;
mod store;
mod wit_versions;
