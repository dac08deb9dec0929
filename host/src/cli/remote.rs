//! The plugin commands against a running server, through its API, when
//! given `--server URL` and a token: a CLI install then reaches the server
//! at once (the server does not watch its data directory), and `plugin
//! dev` follows the plugin's log lines from the server.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

/// Bound on one API answer the CLI reads whole (a plugin description).
const MAX_ANSWER_BYTES: usize = 4 << 20;

#[derive(Args, Clone, Default)]
pub struct ServerArgs {
    /// A running server to act on through its API, e.g. http://127.0.0.1:8080
    /// (default: the data directory, which a running server does not watch).
    #[arg(long, env = "AGENTHOST_SERVER")]
    server: Option<String>,
    /// An operator token for --server (agenthost token create --admin).
    #[arg(long, env = "AGENTHOST_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A server's base URL as given (checked, without a trailing slash) and
/// an HTTP client for it.
pub fn client_for(server: &str) -> anyhow::Result<(String, reqwest::Client)> {
    let base = server.trim_end_matches('/').to_string();
    anyhow::ensure!(
        base.starts_with("http://") || base.starts_with("https://"),
        "--server must be an http:// or https:// URL, not `{base}`"
    );
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    Ok((base, http))
}

#[derive(Clone)]
pub struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    /// `None` when no server was named.
    pub fn from_args(args: &ServerArgs) -> anyhow::Result<Option<Self>> {
        let Some(server) = &args.server else {
            return Ok(None);
        };
        let token = args.token.clone().ok_or_else(|| {
            anyhow::anyhow!("--server needs an operator token: --token or AGENTHOST_TOKEN")
        })?;
        let (base, http) = client_for(server)?;
        Ok(Some(Self { base, token, http }))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API's `{"error": {...}}` message, or the status.
    async fn answer(&self, response: reqwest::Response) -> anyhow::Result<Value> {
        let status = response.status();
        let bytes = agenthost::oci::bounded(response, MAX_ANSWER_BYTES as u64).await?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        anyhow::bail!("the server refused ({status}): {message}")
    }

    /// `POST /api/v1/plugins`: the server validates, installs and makes the
    /// version active at once (tools on their next call, policies at their
    /// next step).
    pub async fn install(
        &self,
        component: Vec<u8>,
        manifest_toml: Option<String>,
        name: &str,
        grant: &str,
    ) -> anyhow::Result<Value> {
        let mut form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(component).file_name("component.wasm"),
            )
            .text("name", name.to_string());
        if let Some(m) = manifest_toml {
            form = form.text("manifest", m);
        }
        if !grant.is_empty() {
            form = form.text("grant", grant.to_string());
        }
        let response = self
            .http
            .post(format!("{}/api/v1/plugins", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(response).await
    }

    /// Print the plugin's log lines as the server sends them, until the
    /// connection ends.
    pub async fn follow_logs(&self, name: &str) -> anyhow::Result<()> {
        let mut response = self
            .http
            .get(format!("{}/api/v1/plugins/{name}/logs", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if !response.status().is_success() {
            return self.answer(response).await.map(|_| ());
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    eprintln!(
                        "[{}] {}: {}",
                        v["plugin"].as_str().unwrap_or(name),
                        v["level"].as_str().unwrap_or("info"),
                        v["message"].as_str().unwrap_or_default().trim_end()
                    );
                }
            }
            // A line longer than any the server sends is not a log line.
            if pending.len() > MAX_ANSWER_BYTES {
                pending.clear();
            }
        }
        Ok(())
    }
}
