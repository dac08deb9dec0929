//! Command-line interface.

mod builder;
mod dev;
mod mcp;
mod oci;
mod plugin;
mod remote;
mod scaffold;
mod serve;
mod step;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agenthost",
    version,
    about = "Runs AI computer-use agents whose tools and policies are WebAssembly components"
)]
pub struct Cli {
    /// Where installed plugins, grants and the compiled cache live.
    #[arg(long, env = "AGENTHOST_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write, check, try and install plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Speak MCP: bridge stdio-only clients to a running host.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Run the server: REST API, WebSocket, sandboxes, agents.
    Serve(serve::ServeArgs),
    /// Create API tokens.
    #[command(subcommand)]
    Token(serve::TokenCommand),
}

impl Cli {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".local/share/agenthost")
        })
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir();
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd, &data_dir).await,
        Command::Mcp(cmd) => mcp::run(cmd).await,
        Command::Serve(args) => serve::serve(args, &data_dir).await,
        Command::Token(cmd) => serve::token(cmd, &data_dir).await,
    }
}
