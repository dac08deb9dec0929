//! The host side of each WIT interface a plugin may import.
//!
//! Every call from a guest lands in [`HostState`], passes one
//! [`HostState::authorize`] check against the plugin's effective grants,
//! is timed (host time does not count against the guest's CPU budget) and
//! bounded by a wall-clock timeout, and is then served by a backend: the
//! traits below. The sandbox provides the computer, shell and files
//! backends; the LLM providers the llm backend. A call whose backend is
//! absent gets a clear `no-sandbox` / `failed` error, never a trap.

mod backends;
mod computer;
mod files;
mod host_state;
mod images;
mod llm;
mod log;
mod shell;

pub use backends::{
    CallContext, ComputerBackend, EncodedImage, FilesBackend, LlmBackend, LogSink, Region,
    SandboxBackends, ShellBackend, TracingLog,
};
pub use host_state::HostState;
pub use images::ImageStore;
