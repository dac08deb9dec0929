//! Agent Host: runs AI computer-use agents whose tools and policies are
//! WebAssembly components.
//!
//! To run the host, start a [`Server`] with a [`ServeConfig`]; everything a
//! client sees is an [`Event`] in a session's log. The modules, outside in:
//!
//! * [`server`]: the lifecycle (start, recover sessions, graceful stop).
//! * [`api`]: the HTTP router: REST, the session WebSocket, the live
//!   desktop, the OpenAPI document, the chat page.
//! * [`session`]: one actor per session runs the agent loop; eviction,
//!   quotas, policy switching.
//! * [`event`]: the typed event vocabulary, written and read by the same
//!   types.
//! * [`export`]: a session as JSON Lines or one self-contained HTML page.
//! * [`plugins`]: the wasmtime runtime: engine, registry, compiled cache,
//!   grants, limits, hot swap, tool calls and policy steps, one bindgen
//!   module per released WIT version.
//! * [`capabilities`]: the host side of each WIT interface a plugin may
//!   import (computer, shell, files, llm, log), each behind one `authorize`.
//! * [`sandbox`]: Docker sandboxes, the warm pool, the exec service client.
//! * [`rfb`]: the VNC client (screenshots, input) and the live-view bridge.
//! * [`llm`]: model providers (Anthropic, OpenAI-compatible), streamed.
//! * [`store`]: sessions, events, images, tokens on SQLite or PostgreSQL.
//! * [`config`]: the configuration file.
//! * [`metrics`], [`otlp`]: Prometheus metrics, and traces over OTLP when
//!   an endpoint is configured.
//!
//! Integration tests and benchmarks drive the lower modules directly
//! (a sandbox without a server, a capability without a guest), which is
//! why they are public.

pub mod api;
pub mod capabilities;
pub mod config;
pub mod event;
pub mod export;
pub mod fleet;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod oci;
pub mod otlp;
pub mod plugins;
pub mod rfb;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod store;
pub mod url_path;

pub use config::ServeConfig;
pub use event::{Event, EventBody};
pub use server::Server;
