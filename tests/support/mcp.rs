//! A minimal MCP client over Streamable HTTP for the Rust tests and the
//! benchmark: the initialize handshake, then JSON-RPC requests whose
//! answers come back as JSON or as server-sent events. The protocol
//! tests proper use the official Python SDK (tests/mcp); this one is for
//! what Rust checks best (the live WebSocket, timings).

use serde_json::{json, Value};

pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    /// The Agent Host session named with the header, if one is.
    session: Option<String>,
    mcp_session: Option<String>,
    next_id: u64,
}

impl McpClient {
    /// Connects (the handshake included) to `base`'s `/mcp` as the token's
    /// user, driving `session` or, if `None`, a new one.
    pub async fn connect(base: &str, token: &str, session: Option<&str>) -> (Self, Value) {
        let mut client = Self {
            http: reqwest::Client::new(),
            url: format!("{base}/mcp"),
            token: token.to_string(),
            session: session.map(str::to_string),
            mcp_session: None,
            next_id: 0,
        };
        let init = client
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "rust-test", "version": "1"}}),
            )
            .await;
        client
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        (client, init)
    }

    async fn post(&mut self, message: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&message);
        if let Some(s) = &self.session {
            req = req.header("agenthost-session", s);
        }
        if let Some(s) = &self.mcp_session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let res = req.send().await.expect("POST /mcp");
        if let Some(id) = res.headers().get("mcp-session-id") {
            self.mcp_session = Some(id.to_str().unwrap().to_string());
        }
        res
    }

    /// Sends a request; its answer (`result` or `error`), skipping any
    /// notifications that came first.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let res = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let status = res.status();
        let sse = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
        let body = res.text().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        let messages: Vec<Value> = if sse {
            body.split("\n\n")
                .filter_map(|event| {
                    let data: Vec<&str> = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    (!data.is_empty()).then(|| data.join("\n"))
                })
                .filter(|d| !d.is_empty())
                .map(|d| serde_json::from_str(&d).unwrap())
                .collect()
        } else {
            vec![serde_json::from_str(&body).unwrap()]
        };
        messages
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {method} in {body}"))
    }

    /// `tools/call`; the call's result.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        assert!(answer["error"].is_null(), "{answer}");
        answer["result"].clone()
    }
}

/// The text parts of a tool result, joined.
pub fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect()
}
