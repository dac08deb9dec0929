//! MCP servers as tools for policies.
//!
//! An operator names MCP servers under `[mcp.servers.NAME]`. A stdio server
//! runs inside the session's sandbox, started through the exec service's
//! `spawn` (so it is confined like every command the agent runs: the
//! sandbox's user, filesystem and egress rules), and the host speaks MCP to
//! it over that connection with rmcp's client. Its tools join the session's
//! tool list as `NAME__tool`, and a call is stored like any tool result.
//!
//! Servers start with the session's first run on a desktop and stop with
//! the desktop. A server that fails to start or answer is reported once as
//! an error event; the run goes on without its tools.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use rmcp::model::{CallToolRequestParams, ContentBlock};
use rmcp::service::{RoleClient, RunningService};
use serde::Deserialize;

use crate::plugins::bindings::current::types::ToolSpec;
use crate::sandbox::ExecClient;

/// Separates a server's name from its tool's in the session's tool list.
pub const SEPARATOR: &str = "__";
/// How long a server has to start and list its tools.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on one image a server returns (decoded).
const MAX_IMAGE_BYTES: usize = 16 << 20;
/// Bound on the text of one result.
const MAX_TEXT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// One MCP server (`[mcp.servers.NAME]`): a command that speaks MCP on
/// stdio, run inside the session's sandbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program and its arguments, e.g. `["python3", "-m", "my_server"]`.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory in the sandbox (default: the agent's home).
    pub cwd: Option<String>,
}

impl McpConfig {
    /// Names are the prefix of tool names: letters, digits, `-` and `_`,
    /// and no `__` (the separator) inside.
    pub fn validate(&self) -> Result<(), String> {
        for (name, server) in &self.servers {
            let ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !name.contains(SEPARATOR);
            if !ok {
                return Err(format!(
                    "mcp.servers.{name}: a server name is 1 to 32 letters, digits, `-` or `_`, \
                     without `__`"
                ));
            }
            if server.command.is_empty() {
                return Err(format!("mcp.servers.{name}: `command` is empty"));
            }
        }
        Ok(())
    }
}

/// A server's answer part, for the session to store.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// A PNG, checked and measured.
    Png {
        bytes: Vec<u8>,
        width: u32,
        height: u32,
    },
}

struct Connection {
    name: String,
    service: RunningService<RoleClient, ()>,
    tools: Vec<ToolSpec>,
}

/// The MCP servers one session is connected to.
#[derive(Default)]
pub struct SessionMcp {
    connections: Vec<Connection>,
}

impl SessionMcp {
    /// Starts every configured server in the sandbox and lists its tools.
    /// Returns what connected and, for each server that did not, why.
    pub async fn connect(
        config: &McpConfig,
        exec: &ExecClient,
        catalog: &McpCatalog,
    ) -> (Self, Vec<(String, String)>) {
        let mut connections = Vec::new();
        let mut failures = Vec::new();
        for (name, server) in &config.servers {
            match tokio::time::timeout(START_TIMEOUT, Self::start(name, server, exec)).await {
                Ok(Ok(c)) => {
                    catalog.record(name, &c.tools);
                    connections.push(c)
                }
                Ok(Err(why)) => failures.push((name.clone(), why)),
                Err(_) => failures.push((
                    name.clone(),
                    format!("it did not answer within {} s", START_TIMEOUT.as_secs()),
                )),
            }
        }
        (Self { connections }, failures)
    }

    async fn start(
        name: &str,
        server: &McpServerConfig,
        exec: &ExecClient,
    ) -> Result<Connection, String> {
        let env: Vec<(String, String)> = server
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (read, write) = exec
            .spawn(name, &server.command, &env, server.cwd.as_deref())
            .await
            .map_err(|e| format!("cannot start `{}`: {e:?}", server.command.join(" ")))?;
        let service = rmcp::serve_client((), (read, write))
            .await
            .map_err(|e| format!("the MCP handshake failed: {e}"))?;
        let listed = service
            .list_all_tools()
            .await
            .map_err(|e| format!("listing its tools failed: {e}"))?;
        let tools = listed
            .into_iter()
            .map(|t| ToolSpec {
                name: format!("{name}{SEPARATOR}{}", t.name),
                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()).to_string(),
            })
            .collect();
        Ok(Connection {
            name: name.to_string(),
            service,
            tools,
        })
    }

    /// The tools of every connected server, namespaced.
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        self.connections
            .iter()
            .flat_map(|c| c.tools.iter().cloned())
            .collect()
    }

    /// The connection and the server's own tool name, if `name` is one of
    /// the servers' tools.
    fn find(&self, name: &str) -> Option<(&Connection, String)> {
        let (server, tool) = name.split_once(SEPARATOR)?;
        let c = self.connections.iter().find(|c| c.name == server)?;
        c.tools
            .iter()
            .any(|t| t.name == name)
            .then(|| (c, tool.to_string()))
    }

    pub fn offers(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Calls a server's tool. `Ok((parts, is_error))` is the server's
    /// answer (a tool error included); `Err` is a failure to get one.
    pub async fn call(&self, name: &str, input: &str) -> Result<(Vec<Part>, bool), String> {
        let (c, tool) = self
            .find(name)
            .ok_or_else(|| format!("there is no tool named `{name}`"))?;
        let arguments = match serde_json::from_str::<serde_json::Value>(input) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => return Err("invalid input: the input must be a JSON object".into()),
        };
        let request = CallToolRequestParams::new(tool).with_arguments(arguments);
        let result = tokio::time::timeout(CALL_TIMEOUT, c.service.call_tool(request))
            .await
            .map_err(|_| format!("MCP server `{}` did not answer in time", c.name))?
            .map_err(|e| format!("MCP server `{}`: {e}", c.name))?;
        let parts = result.content.iter().map(part).collect();
        Ok((parts, result.is_error.unwrap_or(false)))
    }

    /// Closes every connection (the exec service then kills the servers).
    pub async fn close(self) {
        for c in self.connections {
            let _ = c.service.cancel().await;
        }
    }
}

/// One content block as stored: text (bounded), a PNG (checked), or a
/// note saying what was left out.
fn part(block: &ContentBlock) -> Part {
    match block {
        ContentBlock::Text(t) => {
            let mut text = t.text.clone();
            if text.len() > MAX_TEXT_BYTES {
                text.truncate(text.floor_char_boundary(MAX_TEXT_BYTES));
                text.push_str("\n[truncated]");
            }
            Part::Text(text)
        }
        ContentBlock::Image(img) if img.mime_type == "image/png" => {
            // Checked before decoding: base64 is 4 bytes per 3.
            if img.data.len() / 4 * 3 > MAX_IMAGE_BYTES {
                return Part::Text("[an image over 16 MiB was left out]".into());
            }
            match base64::engine::general_purpose::STANDARD.decode(&img.data) {
                Ok(bytes) => match png_size(&bytes) {
                    Some((width, height)) => Part::Png {
                        bytes,
                        width,
                        height,
                    },
                    None => Part::Text("[an image that is not a PNG was left out]".into()),
                },
                Err(_) => Part::Text("[an image that is not base64 was left out]".into()),
            }
        }
        ContentBlock::Image(img) => Part::Text(format!(
            "[an image of type {} was left out: only PNG is kept]",
            img.mime_type
        )),
        other => Part::Text(
            serde_json::to_string(other).unwrap_or_else(|_| "[unreadable content]".into()),
        ),
    }
}

/// A PNG's width and height from its header.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((word(16), word(20)))
}

/// What the configured servers offered when a session last started them,
/// for the API's listing.
#[derive(Default)]
pub struct McpCatalog(std::sync::Mutex<BTreeMap<String, Vec<String>>>);

impl McpCatalog {
    fn record(&self, server: &str, tools: &[ToolSpec]) {
        let names = tools.iter().map(|t| t.name.clone()).collect();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.to_string(), names);
    }

    /// The tool names a server offered last, if it ever started.
    pub fn tools_of(&self, server: &str) -> Option<Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_must_be_usable_as_tool_prefixes() {
        let config = |name: &str| McpConfig {
            servers: [(
                name.to_string(),
                McpServerConfig {
                    command: vec!["x".into()],
                    env: BTreeMap::new(),
                    cwd: None,
                },
            )]
            .into(),
        };
        assert!(config("notes").validate().is_ok());
        assert!(config("my-server_2").validate().is_ok());
        for bad in ["", "a__b", "has space", "ünï"] {
            assert!(config(bad).validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_checked_pngs_are_kept_as_images() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((640, 480)));
        assert_eq!(png_size(b"GIF89a"), None);
    }
}
