//! OpenTelemetry traces over OTLP: off unless an endpoint is configured
//! (OpenTelemetry's standard environment variables, see [`config`]).
//!
//! The host's `tracing` spans (HTTP requests, session runs, policy steps,
//! tool calls, LLM completions, fleet forwarding) are exported as OTLP
//! spans over HTTP in protobuf. This is a small layer of our own rather
//! than the OpenTelemetry SDK: the host needs spans only, one protocol and
//! no metrics or logs pipeline, and the SDK's crates would add minutes to
//! a cold build. A request's `traceparent` header makes its span part of
//! the caller's trace, and requests forwarded to another fleet host carry
//! the trace on.

pub mod config;
mod export;
mod layer;
mod proto;
mod span;

pub use config::{ConfigError, OtlpConfig};
pub use export::Exporter;
pub use layer::OtlpLayer;
pub use span::TraceContext;

/// Starts the exporter for `config`: the layer to add to the subscriber
/// and the handle that flushes at exit.
pub fn start(config: OtlpConfig) -> std::io::Result<(OtlpLayer, Exporter)> {
    let (exporter, queue) = Exporter::start(config)?;
    Ok((OtlpLayer::new(queue), exporter))
}

/// The current span's trace context as a `traceparent` header value, for
/// a request this host makes on the span's behalf; `None` when traces are
/// not exported.
pub fn traceparent() -> Option<String> {
    layer::current_context().map(|c| c.traceparent())
}
