//! The Model Context Protocol, both ways: Agent Host serves its sessions'
//! tools to MCP clients ([`server`]; mounted at `/mcp` by the API), and
//! MCP servers the operator names give policies more tools ([`client`]).

pub mod client;
pub mod server;

pub use client::{McpCatalog, McpConfig, McpServerConfig, SessionMcp};

pub use server::{Caller, McpServer, SESSION_HEADER};
