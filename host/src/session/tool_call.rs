//! Running one tool call for a session and storing its result: the one
//! path every call takes, whether a policy planned it or an MCP client
//! asked for it, so both read the same in the log.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::log::EventLog;
use super::Shared;
use crate::capabilities::CallContext;
use crate::event::{Event, EventBody, Source, StoredPart, ToolResult};
use crate::plugins::bindings::current::tool::ToolError;
use crate::plugins::bindings::current::types::{ContentPart, ToolUse};
use crate::plugins::{InvokeError, PluginError, RegistryError};
use crate::store::StoreError;

/// What a session's tool calls run with.
#[derive(Clone)]
pub struct ToolCalls {
    pub shared: Arc<Shared>,
    pub log: EventLog,
    pub session_id: String,
    pub ctx: CallContext,
    /// The session's MCP servers, while connected.
    pub mcp: Option<Arc<crate::mcp::SessionMcp>>,
}

impl ToolCalls {
    /// Runs one tool call and stores its result. A tool's own error is a
    /// result the caller sees; a crash is also recorded as an error event.
    pub async fn invoke(&self, call: ToolUse) -> Result<Event, StoreError> {
        let span = tracing::info_span!(
            "tool.call",
            otel.name = %format_args!("tool {}", call.name),
            tool.name = %call.name,
            tool.call_id = %call.id,
            tool.is_error = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        self.run(call).instrument(span).await
    }

    async fn run(&self, call: ToolUse) -> Result<Event, StoreError> {
        if let Some(mcp) = self.mcp.as_ref().filter(|m| m.offers(&call.name)) {
            return self.invoke_mcp(mcp, call).await;
        }
        let started = Instant::now();
        let outcome = self
            .shared
            .registry
            .invoke_tool(call.clone(), self.ctx.clone())
            .await;
        let (content, is_error) = match outcome {
            Ok(Ok(output)) => (self.persist(output.content).await?, false),
            Ok(Err(ToolError::InvalidInput(m))) => {
                (vec![StoredPart::text(format!("invalid input: {m}"))], true)
            }
            Ok(Err(ToolError::Failed(m))) => (vec![StoredPart::text(m)], true),
            Err(PluginError::Registry(RegistryError::UnknownTool(name))) => (
                vec![StoredPart::text(format!("there is no tool named `{name}`"))],
                true,
            ),
            Err(e) => {
                let report = e.report();
                let error =
                    EventBody::error(crash_code(&e), format!("tool `{}`: {report}", call.name));
                self.log.append(Source::Host, error).await?;
                (
                    vec![StoredPart::text(format!("the tool failed: {report}"))],
                    true,
                )
            }
        };
        self.store_result(call, content, is_error, started).await
    }

    /// The tool specs a policy sees: the installed plugins' and the
    /// connected MCP servers'.
    pub fn specs(&self) -> Vec<crate::plugins::bindings::current::types::ToolSpec> {
        let mut specs = self.shared.registry.tool_specs();
        if let Some(mcp) = &self.mcp {
            specs.extend(mcp.tool_specs());
        }
        specs
    }

    /// A call to an MCP server's tool, stored like any other.
    async fn invoke_mcp(
        &self,
        mcp: &crate::mcp::SessionMcp,
        call: ToolUse,
    ) -> Result<Event, StoreError> {
        use crate::mcp::client::Part;
        let started = Instant::now();
        let (content, is_error) = match mcp.call(&call.name, &call.input).await {
            Ok((parts, is_error)) => {
                let mut content = Vec::with_capacity(parts.len());
                for part in parts {
                    content.push(match part {
                        Part::Text(text) => StoredPart::Text { text },
                        Part::Png {
                            bytes,
                            width,
                            height,
                        } => {
                            let sha = self
                                .shared
                                .store
                                .put_image(&self.session_id, &bytes, "image/png", width, height)
                                .await?;
                            StoredPart::Image {
                                sha256: sha,
                                width,
                                height,
                                media_type: "image/png".into(),
                            }
                        }
                    });
                }
                (content, is_error)
            }
            Err(why) => (vec![StoredPart::text(why)], true),
        };
        self.store_result(call, content, is_error, started).await
    }

    async fn store_result(
        &self,
        call: ToolUse,
        content: Vec<StoredPart>,
        is_error: bool,
        started: Instant,
    ) -> Result<Event, StoreError> {
        self.shared
            .metrics
            .tool_call(&call.name, started.elapsed(), is_error);
        let span = tracing::Span::current();
        span.record("tool.is_error", is_error);
        if is_error {
            span.record("otel.status_code", "error");
        }
        let result = EventBody::ToolResult(ToolResult {
            tool_use_id: call.id,
            name: call.name,
            content,
            is_error,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        self.log.append(Source::Tool, result).await
    }

    /// Tool output as stored: images go to the content-addressed store and
    /// are referenced by hash.
    async fn persist(&self, parts: Vec<ContentPart>) -> Result<Vec<StoredPart>, StoreError> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            out.push(match part {
                ContentPart::Text(t) => StoredPart::Text { text: t },
                ContentPart::Image(img) => match self.ctx.images.get(&img.handle) {
                    Some(stored) => {
                        let sha = self
                            .shared
                            .store
                            .put_image(
                                &self.session_id,
                                &stored.bytes,
                                stored.media_type,
                                stored.width,
                                stored.height,
                            )
                            .await?;
                        StoredPart::Image {
                            sha256: sha,
                            width: stored.width,
                            height: stored.height,
                            media_type: stored.media_type.to_string(),
                        }
                    }
                    None => {
                        StoredPart::text("[the tool returned an image that is no longer available]")
                    }
                },
            });
        }
        Ok(out)
    }
}

/// Marks a session busy while held: an outside tool call in progress.
pub struct Busy(Arc<std::sync::atomic::AtomicUsize>);

impl Busy {
    pub fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn crash_code(e: &PluginError) -> &'static str {
    match e {
        PluginError::Invoke(InvokeError::WallClockTimeout { .. }) => "plugin_timeout",
        PluginError::Invoke(InvokeError::MemoryLimit { .. }) => "plugin_memory_limit",
        PluginError::Invoke(InvokeError::CpuLimit { .. }) => "plugin_cpu_limit",
        _ => "plugin_crashed",
    }
}
