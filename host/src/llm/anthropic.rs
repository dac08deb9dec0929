//! Anthropic's Messages API, streamed.
//!
//! Requests are built from the WIT types: text, images (base64), tool use
//! and tool results. A tool whose input schema carries an
//! `"x-anthropic-builtin"` object is sent as that built-in tool instead (the
//! computer-use tool: `{"type": "computer_20250124", "display_width_px": ..}`),
//! with the matching beta header. Prompt caching marks the system prompt,
//! the tool list and the newest message, so each step re-reads the history
//! from the cache instead of paying for it again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::retry::{self, RetryPolicy};
use super::sse::SseReader;
use super::{DeltaSink, ImageSource, InputCounting, LlmError, Provider, Secret};
use crate::plugins::bindings::current::llm::{
    Message, MessagePart, Opaque, Request, Response, Role, StopReason, Thinking, Usage,
};
use crate::plugins::bindings::current::types::{ContentPart, ToolUse};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicConfig {
    /// Also read from `ANTHROPIC_API_KEY`. Without a key the provider is off.
    pub api_key: Option<Secret>,
    pub base_url: String,
    pub model: String,
    pub max_attempts: u32,
    /// Beta flag sent when a request contains a built-in computer tool.
    pub computer_use_beta: String,
    pub timeout_secs: u64,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: "https://api.anthropic.com".into(),
            model: "claude-sonnet-4-5".into(),
            max_attempts: 5,
            computer_use_beta: "computer-use-2025-01-24".into(),
            timeout_secs: 600,
        }
    }
}

pub struct Anthropic {
    http: reqwest::Client,
    key: Secret,
    url: String,
    model: String,
    beta: String,
    retry: RetryPolicy,
}

impl Anthropic {
    pub fn from_config(config: &AnthropicConfig) -> Result<Option<Self>, LlmError> {
        let Some(key) = config.api_key.clone() else {
            return Ok(None);
        };
        let http = retry::http_client(config.timeout_secs)?;
        Ok(Some(Self {
            http,
            key,
            url: format!("{}/v1/messages", config.base_url.trim_end_matches('/')),
            model: config.model.clone(),
            beta: config.computer_use_beta.clone(),
            retry: RetryPolicy::with_attempts(config.max_attempts),
        }))
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

/// The JSON body for `request`, and whether it uses a built-in computer tool.
async fn request_body(
    request: &Request,
    model: &str,
    images: &dyn ImageSource,
) -> Result<(Value, bool), LlmError> {
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
    let mut builtin = false;
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let schema: Value =
                serde_json::from_str(&t.input_schema).unwrap_or_else(|_| json!({"type": "object"}));
            match schema.get("x-anthropic-builtin") {
                Some(Value::Object(b)) => {
                    builtin = true;
                    let mut tool = Value::Object(b.clone());
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

/// A content block being streamed.
enum Block {
    Text(String),
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// A block passed through untouched (`redacted_thinking`).
    Opaque(Value),
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

fn stop_reason(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        _ => StopReason::Other,
    }
}

fn count(v: &Value, key: &str) -> Option<u32> {
    v.get(key).and_then(Value::as_u64).map(|n| n as u32)
}

#[async_trait]
impl Provider for Anthropic {
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
        let (body, builtin) = request_body(request, model, images).await?;
        let response = self
            .retry
            .send(|| {
                let mut r = self
                    .http
                    .post(&self.url)
                    .header("x-api-key", self.key.expose())
                    .header("anthropic-version", "2023-06-01")
                    .json(&body);
                if builtin {
                    r = r.header("anthropic-beta", &self.beta);
                }
                r
            })
            .await?;
        let mut reader = SseReader::new(Box::pin(response.bytes_stream()));
        let mut blocks: BTreeMap<u64, Block> = BTreeMap::new();
        let mut usage = Usage {
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        };
        let mut stop = None;
        let mut finished = false;
        while let Some(event) = reader.next().await? {
            let data: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
            match data["type"].as_str().unwrap_or_default() {
                "message_start" => {
                    let u = &data["message"]["usage"];
                    usage.input_tokens = count(u, "input_tokens").unwrap_or(0);
                    usage.output_tokens = count(u, "output_tokens").unwrap_or(0);
                    usage.cache_read_tokens = count(u, "cache_read_input_tokens").unwrap_or(0);
                    usage.cache_write_tokens = count(u, "cache_creation_input_tokens").unwrap_or(0);
                }
                "content_block_start" => {
                    let b = &data["content_block"];
                    let block = match b["type"].as_str() {
                        Some("text") => {
                            let text = b["text"].as_str().unwrap_or_default().to_string();
                            if !text.is_empty() {
                                deltas.text(&text);
                            }
                            Block::Text(text)
                        }
                        Some("tool_use") => Block::ToolUse {
                            id: b["id"].as_str().unwrap_or_default().into(),
                            name: b["name"].as_str().unwrap_or_default().into(),
                            json: String::new(),
                        },
                        Some("thinking") => Block::Thinking {
                            text: b["thinking"].as_str().unwrap_or_default().into(),
                            signature: b["signature"]
                                .as_str()
                                .filter(|s| !s.is_empty())
                                .map(String::from),
                        },
                        Some("redacted_thinking") => Block::Opaque(b.clone()),
                        _ => Block::Other,
                    };
                    blocks.insert(index, block);
                }
                "content_block_delta" => {
                    let d = &data["delta"];
                    match (blocks.get_mut(&index), d["type"].as_str()) {
                        (Some(Block::Text(text)), Some("text_delta")) => {
                            let piece = d["text"].as_str().unwrap_or_default();
                            deltas.text(piece);
                            text.push_str(piece);
                        }
                        (Some(Block::ToolUse { json, .. }), Some("input_json_delta")) => {
                            json.push_str(d["partial_json"].as_str().unwrap_or_default());
                        }
                        (Some(Block::Thinking { text, .. }), Some("thinking_delta")) => {
                            text.push_str(d["thinking"].as_str().unwrap_or_default());
                        }
                        (Some(Block::Thinking { signature, .. }), Some("signature_delta")) => {
                            signature
                                .get_or_insert_with(String::new)
                                .push_str(d["signature"].as_str().unwrap_or_default());
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    if let Some(s) = data["delta"]["stop_reason"].as_str() {
                        stop = Some(stop_reason(s));
                    }
                    if let Some(n) = count(&data["usage"], "output_tokens") {
                        usage.output_tokens = n;
                    }
                }
                "message_stop" => {
                    finished = true;
                    break;
                }
                "error" => {
                    return Err(LlmError::Stream(
                        data.pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("error event")
                            .to_string(),
                    ))
                }
                _ => {}
            }
        }
        if !finished {
            return Err(LlmError::Stream("stream ended before message_stop".into()));
        }
        let parts = blocks
            .into_values()
            .filter_map(|b| match b {
                Block::Text(t) if !t.is_empty() => Some(MessagePart::Text(t)),
                Block::Thinking { text, signature } => {
                    Some(MessagePart::Thinking(Thinking { text, signature }))
                }
                Block::Opaque(block) => Some(MessagePart::Opaque(Opaque {
                    provider: PROVIDER.into(),
                    data: block.to_string(),
                })),
                Block::ToolUse { id, name, json } => Some(MessagePart::ToolUse(ToolUse {
                    id,
                    name,
                    input: if json.trim().is_empty() {
                        "{}".into()
                    } else {
                        json
                    },
                })),
                _ => None,
            })
            .collect();
        Ok(Response {
            parts,
            stop_reason: stop.unwrap_or(StopReason::Other),
            usage,
        })
    }
}
