//! The Model Context Protocol, both ways: Agent Host serves its sessions'
//! tools to MCP clients ([`server`]; mounted at `/mcp` by the API).

pub mod server;

pub use server::{Caller, McpServer, SESSION_HEADER};
