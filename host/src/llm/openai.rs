//! OpenAI-compatible chat completions, streamed: the wire format vLLM,
//! llama.cpp's server and Ollama speak.
//!
//! Tool results can only carry text in this format, so images a tool
//! returned follow as a user message of image parts right after the tool
//! messages.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::retry::{self, RetryPolicy};
use super::sse::SseReader;
use super::{DeltaSink, ImageSource, InputCounting, LlmError, Provider, Secret};
use crate::plugins::bindings::current::llm::{
    MessagePart, Request, Response, Role, StopReason, Usage,
};
use crate::plugins::bindings::current::types::{ContentPart, ToolUse};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// E.g. `http://127.0.0.1:11434/v1`. Without a base URL the provider is off.
    pub base_url: Option<String>,
    /// Also read from `OPENAI_API_KEY`; local servers usually need none.
    pub api_key: Option<Secret>,
    pub model: String,
    pub max_attempts: u32,
    pub timeout_secs: u64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: "default".into(),
            max_attempts: 5,
            timeout_secs: 600,
        }
    }
}

pub struct OpenAi {
    http: reqwest::Client,
    key: Option<Secret>,
    url: String,
    model: String,
    retry: RetryPolicy,
}

impl OpenAi {
    pub fn from_config(config: &OpenAiConfig) -> Result<Option<Self>, LlmError> {
        let Some(base) = &config.base_url else {
            return Ok(None);
        };
        let http = retry::http_client(config.timeout_secs)?;
        Ok(Some(Self {
            http,
            key: config.api_key.clone(),
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: config.model.clone(),
            retry: RetryPolicy::with_attempts(config.max_attempts),
        }))
    }
}

async fn image_url(handle: &str, images: &dyn ImageSource) -> Result<Value, LlmError> {
    let (bytes, media_type) = images
        .image(handle)
        .await
        .ok_or_else(|| LlmError::MissingImage(handle.to_string()))?;
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok(
        json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}),
    )
}

async fn messages_json(
    request: &Request,
    images: &dyn ImageSource,
) -> Result<Vec<Value>, LlmError> {
    let mut out = Vec::new();
    if let Some(system) = &request.system {
        out.push(json!({"role": "system", "content": system}));
    }
    for m in &request.messages {
        let mut content = Vec::new();
        let mut tool_calls = Vec::new();
        let mut tool_images = Vec::new();
        for part in &m.parts {
            match part {
                MessagePart::Text(t) => content.push(json!({"type": "text", "text": t})),
                MessagePart::Image(img) => content.push(image_url(&img.handle, images).await?),
                MessagePart::ToolUse(u) => tool_calls.push(json!({
                    "id": u.id, "type": "function",
                    "function": {"name": u.name, "arguments": u.input},
                })),
                MessagePart::ToolResult(r) => {
                    let mut text = Vec::new();
                    for c in &r.content {
                        match c {
                            ContentPart::Text(t) => text.push(t.clone()),
                            ContentPart::Image(img) => {
                                text.push("[screenshot attached below]".into());
                                tool_images.push(image_url(&img.handle, images).await?);
                            }
                        }
                    }
                    let mut body = text.join("\n");
                    if r.is_error {
                        body = format!("Error: {body}");
                    }
                    out.push(
                        json!({"role": "tool", "tool_call_id": r.tool_use_id, "content": body}),
                    );
                }
                // Chat completions take no reasoning back, and another
                // provider's blocks mean nothing here.
                MessagePart::Thinking(_) | MessagePart::Opaque(_) => {}
            }
        }
        match m.role {
            Role::Assistant => {
                let text: Vec<&str> = content.iter().filter_map(|c| c["text"].as_str()).collect();
                let mut msg = json!({"role": "assistant", "content": text.join("\n")});
                if !tool_calls.is_empty() {
                    msg["tool_calls"] = Value::Array(tool_calls);
                }
                out.push(msg);
            }
            Role::User => {
                content.extend(tool_images);
                if !content.is_empty() {
                    out.push(json!({"role": "user", "content": content}));
                }
            }
        }
    }
    Ok(out)
}

struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

fn count(v: &Value, pointer: &str) -> u32 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0) as u32
}

#[async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    fn input_counting(&self) -> InputCounting {
        InputCounting::IncludesCached
    }

    async fn complete(
        &self,
        request: &Request,
        model: Option<&str>,
        images: &dyn ImageSource,
        deltas: &dyn DeltaSink,
    ) -> Result<Response, LlmError> {
        let mut body = json!({
            "model": model.unwrap_or(&self.model),
            "messages": messages_json(request, images).await?,
            "max_tokens": request.max_tokens,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| {
                    let mut schema: Value = serde_json::from_str(&t.input_schema)
                        .unwrap_or_else(|_| json!({"type": "object"}));
                    if let Some(o) = schema.as_object_mut() {
                        o.remove("x-anthropic-builtin");
                    }
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": schema,
                    }})
                })
                .collect();
        }
        if !request.stop_sequences.is_empty() {
            body["stop"] = json!(request.stop_sequences);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        let response = self
            .retry
            .send(|| {
                let r = self.http.post(&self.url).json(&body);
                match &self.key {
                    Some(key) => r.bearer_auth(key.expose()),
                    None => r,
                }
            })
            .await?;
        let mut reader = SseReader::new(Box::pin(response.bytes_stream()));
        let mut text = String::new();
        let mut calls: BTreeMap<u64, PendingCall> = BTreeMap::new();
        let mut stop = None;
        let mut usage = Usage {
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        };
        let mut done = false;
        while let Some(event) = reader.next().await? {
            if event.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if let Some(message) = chunk.pointer("/error/message").and_then(Value::as_str) {
                return Err(LlmError::Stream(message.to_string()));
            }
            if chunk["usage"].is_object() {
                usage.input_tokens = count(&chunk, "/usage/prompt_tokens");
                usage.output_tokens = count(&chunk, "/usage/completion_tokens");
                usage.cache_read_tokens =
                    count(&chunk, "/usage/prompt_tokens_details/cached_tokens");
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            if let Some(piece) = delta["content"].as_str() {
                if !piece.is_empty() {
                    deltas.text(piece);
                    text.push_str(piece);
                }
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(0);
                let pending = calls.entry(index).or_insert_with(|| PendingCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                if let Some(id) = call["id"].as_str() {
                    pending.id = id.to_string();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    pending.name.push_str(name);
                }
                if let Some(args) = call["function"]["arguments"].as_str() {
                    pending.arguments.push_str(args);
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                stop = Some(match reason {
                    "stop" => StopReason::EndTurn,
                    "tool_calls" | "function_call" => StopReason::ToolUse,
                    "length" => StopReason::MaxTokens,
                    _ => StopReason::Other,
                });
            }
        }
        if !done && stop.is_none() {
            return Err(LlmError::Stream("stream ended before [DONE]".into()));
        }
        let mut parts = Vec::new();
        if !text.is_empty() {
            parts.push(MessagePart::Text(text));
        }
        for (index, call) in calls {
            parts.push(MessagePart::ToolUse(ToolUse {
                id: if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                },
                name: call.name,
                input: if call.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    call.arguments
                },
            }));
        }
        Ok(Response {
            parts,
            stop_reason: stop.unwrap_or(StopReason::Other),
            usage,
        })
    }
}
