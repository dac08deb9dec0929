//! Folding a streamed Messages API answer into one response.
//!
//! The events are the same JSON objects whichever way Claude is reached:
//! server-sent events from the Anthropic API and Vertex AI, base64 chunks
//! inside Amazon's event-stream frames from Bedrock. The transports unwrap
//! them; this module reads them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::PROVIDER;
use crate::llm::{DeltaSink, LlmError};
use crate::plugins::bindings::current::llm::{
    MessagePart, Opaque, Response, StopReason, Thinking, Usage,
};
use crate::plugins::bindings::current::types::ToolUse;

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

/// The answer so far.
pub struct Answer {
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop: Option<StopReason>,
    finished: bool,
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

impl Answer {
    pub fn new() -> Self {
        Self {
            blocks: BTreeMap::new(),
            usage: Usage {
                input_tokens: 0,
                output_tokens: 0,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
            stop: None,
            finished: false,
        }
    }

    /// Takes one event (its JSON text); streamed text goes to `deltas` as
    /// it comes. True once the message is complete (`message_stop`).
    pub fn event(&mut self, data: &str, deltas: &dyn DeltaSink) -> Result<bool, LlmError> {
        let data: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => return Ok(false),
        };
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match data["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let u = &data["message"]["usage"];
                let usage = &mut self.usage;
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
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let d = &data["delta"];
                match (self.blocks.get_mut(&index), d["type"].as_str()) {
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
                    self.stop = Some(stop_reason(s));
                }
                if let Some(n) = count(&data["usage"], "output_tokens") {
                    self.usage.output_tokens = n;
                }
            }
            "message_stop" => self.finished = true,
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
        Ok(self.finished)
    }

    /// The whole response; an error if the stream stopped before the end.
    pub fn finish(self) -> Result<Response, LlmError> {
        if !self.finished {
            return Err(LlmError::Stream("stream ended before message_stop".into()));
        }
        let parts = self
            .blocks
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
            stop_reason: self.stop.unwrap_or(StopReason::Other),
            usage: self.usage,
        })
    }
}
