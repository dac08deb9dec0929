//! What the host plugs in behind each interface, and the context a call
//! runs in. Backends speak the WIT types directly: they are the host's
//! implementation of the contract, not a second model of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::images::ImageStore;
use crate::plugins::bindings::current::{
    computer::{ClickCount, Modifiers, MouseButton, Point, ScrollDirection},
    files::Entry,
    llm::{Request, Response},
    log::Level,
    shell::{Command, Output},
    types::HostError,
};

/// An encoded image produced by a backend, before the host gives it a handle.
#[derive(Debug, Clone)]
pub struct EncodedImage {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub media_type: &'static str,
}

/// A screen region scaled to an output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub output_width: u32,
    pub output_height: u32,
}

#[async_trait]
pub trait ComputerBackend: Send + Sync {
    async fn screen_size(&self) -> Result<(u32, u32), HostError>;
    /// The whole screen when `region` is none.
    async fn screenshot(&self, region: Option<Region>) -> Result<EncodedImage, HostError>;
    async fn cursor_position(&self) -> Result<Point, HostError>;
    async fn mouse_move(&self, to: Point) -> Result<(), HostError>;
    async fn mouse_button(&self, button: MouseButton, down: bool) -> Result<(), HostError>;
    async fn click(
        &self,
        at: Point,
        button: MouseButton,
        count: ClickCount,
        modifiers: Modifiers,
    ) -> Result<(), HostError>;
    async fn drag(&self, start: Point, end: Point, button: MouseButton) -> Result<(), HostError>;
    async fn scroll(
        &self,
        at: Point,
        direction: ScrollDirection,
        amount: u32,
        modifiers: Modifiers,
    ) -> Result<(), HostError>;
    async fn key(&self, combo: &str) -> Result<(), HostError>;
    async fn hold_key(&self, combo: &str, duration: Duration) -> Result<(), HostError>;
    async fn type_text(&self, text: &str) -> Result<(), HostError>;
    async fn wait_until_settled(&self, quiet: Duration, max: Duration) -> Result<bool, HostError>;
}

#[async_trait]
pub trait ShellBackend: Send + Sync {
    async fn run(&self, command: Command) -> Result<Output, HostError>;
}

#[async_trait]
pub trait FilesBackend: Send + Sync {
    async fn read(&self, path: &str) -> Result<Vec<u8>, HostError>;
    async fn write(&self, path: &str, contents: &[u8]) -> Result<(), HostError>;
    async fn list_dir(&self, path: &str) -> Result<Vec<Entry>, HostError>;
    async fn stat(&self, path: &str) -> Result<Option<Entry>, HostError>;
}

#[async_trait]
pub trait LlmBackend: Send + Sync {
    /// Image handles in the request resolve through `images`.
    async fn complete(&self, request: Request, images: &ImageStore) -> Result<Response, HostError>;
}

/// Where plugin log lines go: the session's log once sessions exist.
pub trait LogSink: Send + Sync {
    fn log(&self, plugin: &str, level: Level, message: &str);

    /// What a call wrote to stdout and stderr (bounded), when it wrote
    /// anything and did not crash (a crash report carries it instead).
    fn output(&self, plugin: &str, text: &str) {
        tracing::debug!(plugin, output = text, "plugin output");
    }
}

/// Plugin log lines as `tracing` events, for the CLI and tests.
pub struct TracingLog;

impl LogSink for TracingLog {
    fn log(&self, plugin: &str, level: Level, message: &str) {
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// The three sandbox-backed interfaces of one sandbox.
#[derive(Clone)]
pub struct SandboxBackends {
    pub computer: Arc<dyn ComputerBackend>,
    pub shell: Arc<dyn ShellBackend>,
    pub files: Arc<dyn FilesBackend>,
}

/// What the host attaches to a tool call or policy step.
#[derive(Clone)]
pub struct CallContext {
    pub sandbox: Option<SandboxBackends>,
    pub llm: Option<Arc<dyn LlmBackend>>,
    pub images: Arc<ImageStore>,
    pub log: Arc<dyn LogSink>,
    /// Bound on any single host call, on top of the backend's own limits.
    pub host_call_timeout: Duration,
}

impl Default for CallContext {
    fn default() -> Self {
        Self {
            sandbox: None,
            llm: None,
            images: Arc::new(ImageStore::default()),
            log: Arc::new(TracingLog),
            host_call_timeout: Duration::from_secs(600),
        }
    }
}
