//! `agenthost mcp stdio`: a bridge for MCP clients that only start servers
//! as subprocesses (Claude Desktop's classic configuration). It reads
//! JSON-RPC messages from stdin, one per line, posts each to a running
//! host's `/mcp` with the user's token and the session, and writes every
//! message that comes back (answers, progress notifications) to stdout,
//! one per line, as they arrive.
//!
//! Requests run side by side, so a client can cancel a long call while it
//! runs; stdout is written by one task, so messages never interleave.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

/// Longest message read from either side, in bytes.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

#[derive(Subcommand)]
pub enum McpCommand {
    /// Bridge an MCP client speaking stdio to a running host's /mcp.
    Stdio(StdioArgs),
}

#[derive(Args)]
pub struct StdioArgs {
    /// The running host, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "AGENTHOST_SERVER")]
    server: String,
    /// Your API token (agenthost token create --user NAME).
    #[arg(long, env = "AGENTHOST_TOKEN", hide_env_values = true)]
    token: String,
    /// Drive this existing session of yours.
    #[arg(long, conflicts_with = "new", required_unless_present = "new")]
    session: Option<String>,
    /// Make a new session (with its desktop) and drive it.
    #[arg(long)]
    new: bool,
    /// The new session's policy, for when a person sends it a message.
    #[arg(long, requires = "new")]
    policy: Option<String>,
}

pub async fn run(cmd: McpCommand) -> anyhow::Result<()> {
    match cmd {
        McpCommand::Stdio(args) => stdio(args).await,
    }
}

/// What every request to `/mcp` carries.
struct Upstream {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    session: String,
    /// Set from the handshake's answer (protocol versions with sessions).
    mcp_session: Mutex<Option<String>>,
    protocol: Mutex<Option<String>>,
}

async fn stdio(args: StdioArgs) -> anyhow::Result<()> {
    let (base, http) = super::remote::client_for(&args.server)?;
    let session = match args.session {
        Some(id) => id,
        None => create_session(&http, &base, &args.token, args.policy).await?,
    };
    // stdout is the protocol; people read stderr.
    eprintln!("agenthost mcp: driving session {session} (watch it at {base}/#{session})");
    let upstream = Arc::new(Upstream {
        http,
        endpoint: format!("{base}/mcp"),
        token: args.token,
        session,
        mcp_session: Mutex::default(),
        protocol: Mutex::default(),
    });
    let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                return;
            }
        }
    });
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(line) = read_message(&mut stdin).await.context("reading stdin")? {
        let line = match line {
            Ok(line) => line,
            Err(size) => {
                eprintln!(
                    "agenthost mcp: dropped a message of over {size} bytes (limit {MAX_MESSAGE_BYTES})"
                );
                continue;
            }
        };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        let (upstream, out) = (upstream.clone(), out_tx.clone());
        tasks.spawn(async move {
            if let Err(e) = forward(&upstream, line.clone(), &out).await {
                // A request gets an error answer so the client is not left
                // waiting; a notification has nobody to tell.
                if let Some(id) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|m| m.get("id").cloned())
                {
                    let answer = serde_json::json!({
                        "jsonrpc": "2.0", "id": id,
                        "error": {"code": -32603, "message": format!("agenthost mcp: {e:#}")},
                    });
                    let _ = out.send(answer.to_string()).await;
                }
                eprintln!("agenthost mcp: {e:#}");
            }
        });
        // Reap finished requests as we go.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

/// The next line of `input`, read without holding more than
/// [`MAX_MESSAGE_BYTES`] of it: `Err(size)` for a longer one (the rest of
/// it is read and dropped); `None` at the end.
async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
) -> std::io::Result<Option<Result<String, usize>>> {
    let limit = MAX_MESSAGE_BYTES as u64 + 1;
    let mut line = Vec::new();
    if (&mut *input)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await?
        == 0
    {
        return Ok(None);
    }
    if line.len() <= MAX_MESSAGE_BYTES || line.ends_with(b"\n") {
        return Ok(Some(Ok(String::from_utf8_lossy(&line).into_owned())));
    }
    let mut size = line.len();
    loop {
        line.clear();
        let n = (&mut *input)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?;
        size += n;
        if n == 0 || line.ends_with(b"\n") {
            return Ok(Some(Err(size)));
        }
    }
}

/// `POST /api/v1/sessions` as the user; the new session's id.
async fn create_session(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    policy: Option<String>,
) -> anyhow::Result<String> {
    let mut body = serde_json::json!({"title": "MCP (stdio)"});
    if let Some(p) = policy {
        body["policy"] = Value::String(p);
    }
    let res = http
        .post(format!("{base}/api/v1/sessions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = res.status();
    let answer: Value = serde_json::from_slice(&agenthost::oci::bounded(res, 1 << 20).await?)
        .unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "the server refused a new session ({status}): {}",
            answer["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    answer["id"]
        .as_str()
        .map(str::to_string)
        .context("the server's answer has no session id")
}

/// Posts one message and passes on what comes back.
async fn forward(up: &Upstream, message: String, out: &mpsc::Sender<String>) -> anyhow::Result<()> {
    let mut req = up
        .http
        .post(&up.endpoint)
        .bearer_auth(&up.token)
        .header("agenthost-session", &up.session)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(id) = up
        .mcp_session
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        req = req.header("mcp-session-id", id);
    }
    // The protocol version: a stateless (2026-07-28) request names its own
    // in `_meta`, which the header must repeat; otherwise the handshake's.
    let parsed: Value = serde_json::from_str(&message).unwrap_or(Value::Null);
    let own = parsed["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
        .as_str()
        .map(str::to_string);
    let agreed = up
        .protocol
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(v) = own.or(agreed) {
        req = req.header("mcp-protocol-version", v);
    }
    // The standard headers (SEP-2243) a 2026-07-28 server routes on.
    if let Some(method) = parsed["method"].as_str() {
        req = req.header("mcp-method", method);
        let key = match method {
            "tools/call" | "prompts/get" => Some("name"),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
            "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
            _ => None,
        };
        if let Some(name) = key.and_then(|k| parsed["params"][k].as_str()) {
            req = req.header("mcp-name", header_safe(name));
        }
    }
    let res = req.body(message).send().await.context("posting to /mcp")?;
    if let Some(id) = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        *up.mcp_session.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
    }
    let status = res.status();
    if status == reqwest::StatusCode::ACCEPTED {
        return Ok(());
    }
    let is_sse = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !status.is_success() {
        let body = agenthost::oci::bounded(res, 1 << 20)
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let why = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        anyhow::bail!("the server refused ({status}): {why}");
    }
    if !is_sse {
        let body = agenthost::oci::bounded(res, MAX_MESSAGE_BYTES as u64).await?;
        return emit(up, &body, out).await;
    }
    // Server-sent events: each `data:` block is one message.
    let mut stream = res.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.context("reading the event stream")?);
        anyhow::ensure!(
            buf.len() <= MAX_MESSAGE_BYTES,
            "an event from the server exceeds {MAX_MESSAGE_BYTES} bytes"
        );
        while let Some(end) = find_event_end(&buf) {
            let event: Vec<u8> = buf.drain(..end.0).collect();
            buf.drain(..end.1);
            let data = sse_data(&event);
            if !data.is_empty() {
                emit(up, data.as_bytes(), out).await?;
            }
        }
    }
    Ok(())
}

/// A value as an HTTP header carries it: as is when it is plain visible
/// ASCII, else in SEP-2243's `=?base64?…?=` form.
fn header_safe(value: &str) -> String {
    let wrapped = value.starts_with([' ', '\t'])
        || value.ends_with([' ', '\t'])
        || !value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        || (value.starts_with("=?base64?") && value.ends_with("?="));
    if !wrapped {
        value.to_string()
    } else {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        format!("=?base64?{encoded}?=")
    }
}

/// Writes one message to stdout, noting the protocol version a handshake
/// agreed on (later requests carry it as a header).
async fn emit(up: &Upstream, body: &[u8], out: &mpsc::Sender<String>) -> anyhow::Result<()> {
    let message: Value =
        serde_json::from_slice(body).context("the server sent a message that is not JSON")?;
    if let Some(v) = message["result"]["protocolVersion"].as_str() {
        *up.protocol.lock().unwrap_or_else(|p| p.into_inner()) = Some(v.to_string());
    }
    out.send(message.to_string())
        .await
        .map_err(|_| anyhow::anyhow!("stdout closed"))
}

/// Where the first event in `buf` ends: (its length, plus the blank line).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `data:` lines of one event, joined.
fn sse_data(event: &[u8]) -> String {
    String::from_utf8_lossy(event)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_and_keep_only_data() {
        let buf = b"id: 1\ndata: {\"a\":1}\n\nretry: 5\r\n\r\ndata: x";
        let (len, sep) = find_event_end(buf).unwrap();
        assert_eq!(sse_data(&buf[..len]), "{\"a\":1}");
        let rest = &buf[len + sep..];
        let (len, _) = find_event_end(rest).unwrap();
        assert_eq!(sse_data(&rest[..len]), "");
        assert!(find_event_end(b"data: x").is_none());
    }

    #[tokio::test]
    async fn an_overlong_message_is_dropped_without_being_held() {
        let mut input: &[u8] = &[
            b"{\"a\":1}\n".as_slice(),
            &vec![b'x'; MAX_MESSAGE_BYTES + 10],
            b"\n{}\n",
        ]
        .concat();
        assert_eq!(
            read_message(&mut input).await.unwrap(),
            Some(Ok("{\"a\":1}\n".into()))
        );
        assert_eq!(
            read_message(&mut input).await.unwrap(),
            Some(Err(MAX_MESSAGE_BYTES + 11))
        );
        assert_eq!(
            read_message(&mut input).await.unwrap(),
            Some(Ok("{}\n".into()))
        );
        assert_eq!(read_message(&mut input).await.unwrap(), None);
    }

    #[test]
    fn header_values_outside_plain_ascii_are_wrapped() {
        assert_eq!(header_safe("bash"), "bash");
        assert_eq!(header_safe("café"), "=?base64?Y2Fmw6k=?=");
        assert_eq!(header_safe(" x"), "=?base64?IHg=?=");
    }
}
