//! The data of one plugin store: who the plugin is, what it was granted,
//! what the call is attached to, and the bookkeeping the limits need.

use std::future::Future;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::CallContext;
use crate::plugins::bindings::current::types::HostError;
use crate::plugins::limits::{CpuClock, Limits, MemoryLimiter};
use crate::plugins::{Capability, EffectiveGrants};

/// Bytes of a guest's stdout/stderr kept (panic messages land there).
const STDIO_CAPTURE_BYTES: usize = 64 << 10;

pub struct HostState {
    pub(crate) grants: EffectiveGrants,
    pub(crate) ctx: CallContext,
    pub(crate) memory: MemoryLimiter,
    pub(crate) cpu: CpuClock,
    pub(crate) stderr: MemoryOutputPipe,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    /// WASI is linked so that ordinary language runtimes start, but the
    /// context grants nothing: no environment (so no secrets), no
    /// arguments, no preopened directories, no sockets. Output goes to a
    /// bounded in-memory pipe.
    pub fn new(grants: EffectiveGrants, ctx: CallContext, limits: &Limits) -> Self {
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            grants,
            ctx,
            memory: MemoryLimiter::new(limits.memory_bytes),
            cpu: CpuClock::new(limits.cpu),
            stderr,
            wasi,
            table: ResourceTable::new(),
        }
    }

    pub fn plugin(&self) -> &str {
        &self.grants.plugin
    }

    /// The one gate every capability call passes.
    pub(crate) fn authorize(&self, capability: Capability) -> Result<(), HostError> {
        self.grants.authorize(capability).map_err(HostError::Denied)
    }

    /// Runs a backend call with the host-call timeout, charging its
    /// duration to host time rather than the guest's CPU budget.
    pub(crate) async fn timed<T>(
        &mut self,
        what: &str,
        call: impl Future<Output = Result<T, HostError>>,
    ) -> Result<T, HostError> {
        let started = Instant::now();
        let limit = self.ctx.host_call_timeout;
        let result = match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(HostError::Timeout(format!(
                "{what} did not finish within {limit:?}"
            ))),
        };
        self.cpu.add_host_time(started.elapsed());
        result
    }

    /// Everything the guest wrote to stdout and stderr (bounded), if any.
    pub(crate) fn output(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        (!text.trim().is_empty()).then(|| text.into_owned())
    }

    /// The last lines the guest wrote to stderr, for crash reports.
    pub(crate) fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub(crate) fn no_sandbox(plugin: &str) -> HostError {
    HostError::NoSandbox(format!(
        "plugin `{plugin}` called a sandbox capability, but no sandbox is attached to this call"
    ))
}
