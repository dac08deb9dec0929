//! Agent Host: runs AI computer-use agents whose tools and policies are
//! WebAssembly components.
//!
//! * [`plugins`]: the wasmtime runtime: engine, registry, compiled cache,
//!   grants, limits, hot swap, tool calls and policy steps.
//! * [`capabilities`]: the host side of each WIT interface a plugin may
//!   import (computer, shell, files, llm, log), each behind one `authorize`.

pub mod api;
pub mod capabilities;
pub mod config;
pub mod event;
pub mod llm;
pub mod plugins;
pub mod rfb;
pub mod sandbox;
pub mod session;
pub mod store;
