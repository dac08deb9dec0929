//! Client of the exec service inside the image (`sandbox-image/execd.py`):
//! one JSON line out, one back, per connection, authenticated by the
//! sandbox's secret. Serves the `shell` and `files` interfaces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::Activity;
use crate::capabilities::{FilesBackend, ShellBackend};
use crate::plugins::bindings::current::files::{Entry, EntryKind};
use crate::plugins::bindings::current::shell::{Command, Output};
use crate::plugins::bindings::current::types::HostError;

/// Output kept per command; the rest is drained and reported as truncated.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
const DEFAULT_TIMEOUT_MS: u32 = 120_000;
const MAX_TIMEOUT_MS: u32 = 600_000;
/// Slack on top of a command's own timeout before the host gives up.
const TRANSPORT_SLACK: Duration = Duration::from_secs(10);
/// The longest reply line the host reads for a command, a listing or a
/// stat: stdout and stderr are each capped at [`MAX_OUTPUT_BYTES`] by the
/// service, and JSON escaping at most sextuples a byte (`\u0000`).
const MAX_REPLY_BYTES: usize = 16 << 20;
/// The longest reply to a file read: the service's 64 MiB file limit in
/// base64, plus the envelope.
const MAX_FILE_REPLY_BYTES: usize = (64 << 20) / 3 * 4 + (1 << 20);

/// Reads one `\n`-terminated line of at most `limit` bytes. Whatever
/// answers on the exec port is untrusted (anything in the sandbox can
/// take the port), so nothing is buffered past the limit.
async fn read_reply_line<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    limit: usize,
) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut bounded = BufReader::new(reader.take(limit as u64 + 1));
    bounded.read_until(b'\n', &mut line).await?;
    if line.len() > limit {
        return Err(std::io::Error::other(format!(
            "the reply is longer than {limit} bytes"
        )));
    }
    Ok(line)
}

pub struct ExecClient {
    addr: SocketAddr,
    secret: String,
    activity: Arc<Activity>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl ExecClient {
    pub fn new(addr: SocketAddr, secret: String, activity: Arc<Activity>) -> Self {
        Self {
            addr,
            secret,
            activity,
        }
    }

    async fn request(&self, body: Value, timeout: Duration) -> Result<Value, HostError> {
        self.request_bounded(body, timeout, MAX_REPLY_BYTES).await
    }

    async fn request_bounded(
        &self,
        mut body: Value,
        timeout: Duration,
        limit: usize,
    ) -> Result<Value, HostError> {
        if let Some(stopped) = self.activity.stopped_error() {
            return Err(HostError::Failed(stopped));
        }
        self.activity.touch();
        body["secret"] = json!(self.secret);
        let exchange = async {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (read, mut write) = stream.into_split();
            let mut line = serde_json::to_vec(&body).map_err(std::io::Error::other)?;
            line.push(b'\n');
            write.write_all(&line).await?;
            read_reply_line(read, limit).await
        };
        let response = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(HostError::Timeout(format!(
                    "the sandbox did not answer within {timeout:?}"
                )))
            }
            Ok(Err(e)) => {
                return Err(HostError::Failed(format!(
                    "the sandbox is not reachable (it may have stopped): {e}"
                )))
            }
            Ok(Ok(r)) if r.is_empty() => {
                return Err(HostError::Failed(
                    "the sandbox closed the connection (it may have stopped)".into(),
                ))
            }
            Ok(Ok(r)) => r,
        };
        answer(&response)
    }

    /// Starts a long-lived process in the sandbox (an MCP server on stdio)
    /// and returns the connection as its stdout and stdin. Dropping both
    /// ends closes the connection, and the service kills the process.
    pub async fn spawn(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        cwd: Option<&str>,
    ) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf), HostError> {
        if let Some(stopped) = self.activity.stopped_error() {
            return Err(HostError::Failed(stopped));
        }
        self.activity.touch();
        let mut body =
            json!({"op": "spawn", "name": name, "argv": argv, "env": env, "secret": self.secret});
        if let Some(cwd) = cwd {
            body["cwd"] = json!(cwd);
        }
        let unreachable =
            |e: std::io::Error| HostError::Failed(format!("the sandbox is not reachable: {e}"));
        let stream = TcpStream::connect(self.addr).await.map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(&body).map_err(|e| HostError::Failed(e.to_string()))?;
        line.push(b'\n');
        write.write_all(&line).await.map_err(unreachable)?;
        // The reply line, read without taking any of the process's output
        // that may follow it in the same buffer.
        let mut reader = BufReader::new(read);
        let mut reply = Vec::new();
        let read_reply = async {
            loop {
                let buf = reader.fill_buf().await?;
                if buf.is_empty() {
                    return Err(std::io::Error::other("the sandbox closed the connection"));
                }
                if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    reply.extend_from_slice(&buf[..i]);
                    reader.consume(i + 1);
                    return Ok(());
                }
                let n = buf.len();
                reply.extend_from_slice(buf);
                reader.consume(n);
                if reply.len() > 64 << 10 {
                    return Err(std::io::Error::other("the reply is too long"));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read_reply)
            .await
            .map_err(|_| HostError::Timeout("the sandbox did not start the process".into()))?
            .map_err(unreachable)?;
        answer(&reply)?;
        Ok((reader, write))
    }

    pub async fn ping(&self) -> Result<(), HostError> {
        self.request(json!({"op": "ping"}), Duration::from_secs(2))
            .await
            .map(|_| ())
    }
}

/// The service's `{"ok": ...}` or `{"error": {kind, message}}`.
fn answer(reply: &[u8]) -> Result<Value, HostError> {
    let value: Value = serde_json::from_slice(reply)
        .map_err(|e| HostError::Failed(format!("bad answer from the sandbox: {e}")))?;
    if let Some(err) = value.get("error") {
        let message = err["message"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string();
        return Err(match err["kind"].as_str() {
            Some("invalid") => HostError::Invalid(message),
            _ => HostError::Failed(message),
        });
    }
    Ok(value["ok"].clone())
}

fn entry(v: &Value) -> Result<Entry, HostError> {
    let kind = match v["kind"].as_str() {
        Some("file") => EntryKind::File,
        Some("directory") => EntryKind::Directory,
        Some("symlink") => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    Ok(Entry {
        name: v["name"].as_str().unwrap_or_default().to_string(),
        kind,
        size: v["size"].as_u64().unwrap_or(0),
    })
}

#[async_trait]
impl ShellBackend for ExecClient {
    async fn run(&self, command: Command) -> Result<Output, HostError> {
        let timeout_ms = command
            .timeout_ms
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .clamp(1, MAX_TIMEOUT_MS);
        let body = json!({
            "op": "run",
            "command": command.command,
            "cwd": command.cwd,
            "env": command.env,
            "timeout_ms": timeout_ms,
            "max_output": MAX_OUTPUT_BYTES,
        });
        let v = self
            .request(
                body,
                Duration::from_millis(timeout_ms as u64) + TRANSPORT_SLACK,
            )
            .await?;
        Ok(Output {
            stdout: v["stdout"].as_str().unwrap_or_default().to_string(),
            stderr: v["stderr"].as_str().unwrap_or_default().to_string(),
            exit_code: v["exit_code"].as_i64().map(|c| c as i32),
            truncated: v["truncated"].as_bool().unwrap_or(false),
            timed_out: v["timed_out"].as_bool().unwrap_or(false),
        })
    }
}

const FILE_TIMEOUT: Duration = Duration::from_secs(60);

#[async_trait]
impl FilesBackend for ExecClient {
    async fn read(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let v = self
            .request_bounded(
                json!({"op": "read", "path": path}),
                FILE_TIMEOUT,
                MAX_FILE_REPLY_BYTES,
            )
            .await?;
        b64()
            .decode(v["content"].as_str().unwrap_or_default())
            .map_err(|e| HostError::Failed(format!("bad file content from the sandbox: {e}")))
    }

    async fn write(&self, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.request(
            json!({"op": "write", "path": path, "content": b64().encode(contents)}),
            FILE_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<Entry>, HostError> {
        let v = self
            .request(json!({"op": "list", "path": path}), FILE_TIMEOUT)
            .await?;
        v["entries"]
            .as_array()
            .map(|a| a.iter().map(entry).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    async fn stat(&self, path: &str) -> Result<Option<Entry>, HostError> {
        let v = self
            .request(json!({"op": "stat", "path": path}), FILE_TIMEOUT)
            .await?;
        match &v["entry"] {
            Value::Null => Ok(None),
            e => entry(e).map(Some),
        }
    }
}
