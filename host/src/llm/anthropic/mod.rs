//! Claude's Messages API, streamed, reached directly (an API key), through
//! Amazon Bedrock ([`bedrock`]) or through Google Vertex AI ([`vertex`]):
//! one request body and one stream reader, three ways there.
//!
//! Requests are built from the WIT types: text, images (base64), tool use
//! and tool results. A tool whose input schema carries an
//! `"x-anthropic-builtin"` object is sent as that built-in tool instead (the
//! computer-use tool: `{"type": "computer_20250124", "display_width_px": ..}`),
//! upgraded to the newest version for the models that take it
//! ([`computer_tool`]), with the beta header of the version sent. Prompt caching marks the system prompt,
//! the tool list and the newest message, so each step re-reads the history
//! from the cache instead of paying for it again.

mod bedrock;
mod computer_tool;
mod stream;
mod vertex;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::retry::{self, RetryPolicy};
use super::sse::SseReader;
use super::{DeltaSink, ImageSource, InputCounting, LlmError, Provider, Secret};
pub use bedrock::BedrockConfig;
pub use vertex::VertexConfig;

use crate::plugins::bindings::current::llm::{Message, MessagePart, Request, Response, Role};
use crate::plugins::bindings::current::types::ContentPart;

/// Where Claude is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// The Anthropic API, with `api_key`.
    #[default]
    Anthropic,
    /// Amazon Bedrock, with AWS credentials (`[llm.anthropic.bedrock]`).
    Bedrock,
    /// Google Vertex AI, with a service account or the metadata server
    /// (`[llm.anthropic.vertex]`).
    Vertex,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicConfig {
    /// Where Claude is reached; `anthropic` by default.
    pub platform: Platform,
    /// Also read from `ANTHROPIC_API_KEY`. Without a key the Anthropic
    /// platform is off.
    pub api_key: Option<Secret>,
    pub base_url: String,
    pub model: String,
    pub max_attempts: u32,
    /// The beta flag sent with a built-in computer tool; by default the
    /// one matching the tool's version.
    pub computer_use_beta: Option<String>,
    /// Parts of model names that take the newest computer-use tool
    /// (`computer_20251124`, with zoom).
    pub newest_computer_tool_models: Vec<String>,
    pub timeout_secs: u64,
    pub bedrock: BedrockConfig,
    pub vertex: VertexConfig,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            platform: Platform::Anthropic,
            api_key: None,
            base_url: "https://api.anthropic.com".into(),
            model: "claude-sonnet-4-5".into(),
            max_attempts: 5,
            computer_use_beta: None,
            newest_computer_tool_models: vec!["opus-4-5".into()],
            timeout_secs: 600,
            bedrock: BedrockConfig::default(),
            vertex: VertexConfig::default(),
        }
    }
}

/// A setting from the environment (the cloud SDKs' names), if set.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// How requests reach Claude.
enum Transport {
    Api { key: Secret, url: String },
    Bedrock(bedrock::Bedrock),
    Vertex(vertex::Vertex),
}

pub struct Anthropic {
    http: reqwest::Client,
    transport: Transport,
    model: String,
    beta: Option<String>,
    newest_computer_tool: Vec<String>,
    retry: RetryPolicy,
}

impl Anthropic {
    /// `None` when the Anthropic platform has no key; Bedrock and Vertex
    /// say what is missing.
    pub fn from_config(config: &AnthropicConfig) -> Result<Option<Self>, LlmError> {
        let transport = match config.platform {
            Platform::Anthropic => match config.api_key.clone() {
                None => return Ok(None),
                Some(key) => Transport::Api {
                    key,
                    url: format!("{}/v1/messages", config.base_url.trim_end_matches('/')),
                },
            },
            Platform::Bedrock => {
                Transport::Bedrock(bedrock::Bedrock::from_config(&config.bedrock)?)
            }
            Platform::Vertex => Transport::Vertex(vertex::Vertex::from_config(&config.vertex)?),
        };
        let http = retry::http_client(config.timeout_secs)?;
        Ok(Some(Self {
            http,
            transport,
            model: config.model.clone(),
            beta: config.computer_use_beta.clone().filter(|b| !b.is_empty()),
            newest_computer_tool: config.newest_computer_tool_models.clone(),
            retry: RetryPolicy::with_attempts(config.max_attempts),
        }))
    }

    /// Sends the body the way the platform takes it; the streaming answer.
    async fn send(
        &self,
        body: Value,
        model: &str,
        builtin: Option<String>,
    ) -> Result<reqwest::Response, LlmError> {
        let beta = builtin.map(|b| self.beta.clone().unwrap_or(b));
        let beta = beta.as_deref();
        match &self.transport {
            Transport::Api { key, url } => {
                self.retry
                    .send(|| {
                        let r = self
                            .http
                            .post(url)
                            .header("x-api-key", key.expose())
                            .header("anthropic-version", "2023-06-01")
                            .json(&body);
                        match beta {
                            Some(beta) => r.header("anthropic-beta", beta),
                            None => r,
                        }
                    })
                    .await
            }
            Transport::Vertex(vertex) => {
                let token = vertex.token(&self.http).await?;
                let url = vertex.url(model);
                let body = vertex::body(body);
                self.retry
                    .send(|| {
                        let r = self.http.post(&url).bearer_auth(token.expose()).json(&body);
                        match beta {
                            Some(beta) => r.header("anthropic-beta", beta),
                            None => r,
                        }
                    })
                    .await
            }
            Transport::Bedrock(bedrock) => {
                let url = bedrock.url(model);
                let bytes = serde_json::to_vec(&bedrock::body(body, beta))
                    .map_err(|e| LlmError::Transport(e.to_string()))?;
                // Signed per attempt (the signature carries the time); the
                // first signing here reports a bad setting once, up front.
                bedrock.sign(&url, &bytes)?;
                self.retry
                    .send(|| {
                        let mut r = self.http.post(&url).body(bytes.clone());
                        for (k, v) in bedrock.sign(&url, &bytes).unwrap_or_default() {
                            r = r.header(k, v);
                        }
                        r
                    })
                    .await
            }
        }
    }
}

async fn image_block(handle: &str, images: &dyn ImageSource) -> Result<Value, LlmError> {
    let (bytes, media_type) = images
        .image(handle)
        .await
        .ok_or_else(|| LlmError::MissingImage(handle.to_string()))?;
    Ok(json!({
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": media_type,
            "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
        }
    }))
}

fn tool_input(input: &str) -> Value {
    // The API wants an object; a policy that sent something else gets its
    // text kept rather than the call dropped.
    match serde_json::from_str::<Value>(input) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "input": input }),
    }
}

async fn message_json(m: &Message, images: &dyn ImageSource) -> Result<Value, LlmError> {
    let mut content = Vec::new();
    for part in &m.parts {
        content.push(match part {
            // Anthropic checks the signature: reasoning without one cannot
            // go back, and is left out.
            MessagePart::Thinking(t) => match &t.signature {
                Some(signature) => {
                    json!({"type": "thinking", "thinking": t.text, "signature": signature})
                }
                None => continue,
            },
            MessagePart::Opaque(o) if o.provider == PROVIDER => {
                match serde_json::from_str::<Value>(&o.data) {
                    Ok(block @ Value::Object(_)) => block,
                    _ => continue,
                }
            }
            // Another provider's block means nothing here.
            MessagePart::Opaque(_) => continue,
            MessagePart::Text(text) => json!({"type": "text", "text": text}),
            MessagePart::Image(img) => image_block(&img.handle, images).await?,
            MessagePart::ToolUse(u) => json!({
                "type": "tool_use", "id": u.id, "name": u.name, "input": tool_input(&u.input)
            }),
            MessagePart::ToolResult(r) => {
                let mut inner = Vec::new();
                for c in &r.content {
                    inner.push(match c {
                        ContentPart::Text(t) => json!({"type": "text", "text": t}),
                        ContentPart::Image(img) => image_block(&img.handle, images).await?,
                    });
                }
                json!({
                    "type": "tool_result",
                    "tool_use_id": r.tool_use_id,
                    "content": inner,
                    "is_error": r.is_error,
                })
            }
        });
    }
    Ok(json!({
        "role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
        "content": content,
    }))
}

/// The JSON body for `request`, and the beta flag of the built-in tool it
/// uses, if it uses one.
async fn request_body(
    request: &Request,
    model: &str,
    newest_computer_tool: &[String],
    images: &dyn ImageSource,
) -> Result<(Value, Option<String>), LlmError> {
    let ephemeral = json!({"type": "ephemeral"});
    let mut messages = Vec::with_capacity(request.messages.len());
    for m in &request.messages {
        messages.push(message_json(m, images).await?);
    }
    if let Some(last) = messages
        .last_mut()
        .and_then(|m| m["content"].as_array_mut())
        .and_then(|c| c.last_mut())
    {
        last["cache_control"] = ephemeral.clone();
    }
    let mut builtin = None;
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let schema: Value =
                serde_json::from_str(&t.input_schema).unwrap_or_else(|_| json!({"type": "object"}));
            match schema.get("x-anthropic-builtin") {
                Some(Value::Object(b)) => {
                    let mut tool = Value::Object(b.clone());
                    computer_tool::fit(&mut tool, model, newest_computer_tool);
                    builtin = tool["type"]
                        .as_str()
                        .and_then(computer_tool::beta)
                        .or(builtin.take());
                    tool["name"] = json!(t.name);
                    tool
                }
                _ => json!({"name": t.name, "description": t.description, "input_schema": schema}),
            }
        })
        .collect();
    if let Some(last) = tools.last_mut() {
        last["cache_control"] = ephemeral.clone();
    }
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": messages,
        "stream": true,
    });
    if let Some(system) = &request.system {
        body["system"] = json!([{"type": "text", "text": system, "cache_control": ephemeral}]);
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if !request.stop_sequences.is_empty() {
        body["stop_sequences"] = json!(request.stop_sequences);
    }
    Ok((body, builtin))
}

/// The `provider` of the opaque blocks this provider produces.
const PROVIDER: &str = "anthropic";

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        match self.transport {
            Transport::Api { .. } => "anthropic",
            Transport::Bedrock(_) => "bedrock",
            Transport::Vertex(_) => "vertex",
        }
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    fn input_counting(&self) -> InputCounting {
        InputCounting::Separate
    }

    async fn complete(
        &self,
        request: &Request,
        model: Option<&str>,
        images: &dyn ImageSource,
        deltas: &dyn DeltaSink,
    ) -> Result<Response, LlmError> {
        let model = model.unwrap_or(&self.model);
        let (body, builtin) =
            request_body(request, model, &self.newest_computer_tool, images).await?;
        let response = self.send(body, model, builtin).await?;
        let mut answer = stream::Answer::new();
        if let Transport::Bedrock(_) = self.transport {
            use futures_util::StreamExt as _;
            let mut frames = bedrock::EventStream::default();
            let mut bytes = response.bytes_stream();
            'read: while let Some(chunk) = bytes.next().await {
                let chunk = chunk.map_err(|e| LlmError::Stream(e.without_url().to_string()))?;
                frames.push(&chunk);
                while let Some(frame) = frames.next_frame()? {
                    match frame {
                        bedrock::Frame::Event(data) => {
                            if answer.event(&data, deltas)? {
                                break 'read;
                            }
                        }
                        bedrock::Frame::Exception(kind, message) => {
                            return Err(LlmError::Stream(format!("{kind}: {message}")))
                        }
                        bedrock::Frame::Other => {}
                    }
                }
            }
        } else {
            let mut reader = SseReader::new(Box::pin(response.bytes_stream()));
            while let Some(event) = reader.next().await? {
                if answer.event(&event.data, deltas)? {
                    break;
                }
            }
        }
        answer.finish()
    }
}
