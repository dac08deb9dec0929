//! Recorded model answers, for testing a policy offline: `plugin step
//! --replay FILE` answers each `llm.complete` with the next answer in the
//! file instead of asking a provider. The file is JSON:
//!
//! ```json
//! {"llm": [
//!   {"text": "Looking.", "tool_uses": [{"name": "bash", "input": {"command": "ls"}}]},
//!   {"text": "Done."}
//! ]}
//! ```
//!
//! A tool use without an `id` gets `recorded-<answer>-<index>`. Running out
//! of answers is a `failed` host error naming how many there were.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;

use crate::capabilities::{ImageStore, LlmBackend};
use crate::plugins::bindings::current::llm::{MessagePart, Request, Response, StopReason, Usage};
use crate::plugins::bindings::current::types::{HostError, ToolUse};

/// Bound on a replay file, read whole.
const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path} is not a recording: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    llm: Vec<Answer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_uses: Vec<RecordedToolUse>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedToolUse {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default = "empty_object")]
    input: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

pub struct RecordedLlm {
    answers: Vec<Answer>,
    next: Mutex<usize>,
}

impl RecordedLlm {
    pub fn load(path: &Path) -> Result<Self, RecordingError> {
        let name = path.display().to_string();
        let read = |source| RecordingError::Read {
            path: name.clone(),
            source,
        };
        if std::fs::metadata(path).map_err(read)?.len() > MAX_FILE_BYTES {
            return Err(RecordingError::TooLarge { path: name });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let file: File = serde_json::from_str(&text)
            .map_err(|source| RecordingError::Parse { path: name, source })?;
        Ok(Self {
            answers: file.llm,
            next: Mutex::new(0),
        })
    }

    /// How many answers have been given.
    pub fn used(&self) -> usize {
        *self.next.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl LlmBackend for RecordedLlm {
    async fn complete(&self, _: Request, _: &ImageStore) -> Result<Response, HostError> {
        let index = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let index = *next;
            *next += 1;
            index
        };
        let answer = self.answers.get(index).ok_or_else(|| {
            HostError::Failed(format!(
                "the recording has no answer left (it holds {})",
                self.answers.len()
            ))
        })?;
        let mut parts: Vec<MessagePart> =
            answer.text.iter().cloned().map(MessagePart::Text).collect();
        for (i, call) in answer.tool_uses.iter().enumerate() {
            parts.push(MessagePart::ToolUse(ToolUse {
                id: call
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("recorded-{index}-{i}")),
                name: call.name.clone(),
                input: call.input.to_string(),
            }));
        }
        Ok(Response {
            parts,
            stop_reason: if answer.tool_uses.is_empty() {
                StopReason::EndTurn
            } else {
                StopReason::ToolUse
            },
            usage: Usage {
                input_tokens: 0,
                output_tokens: 0,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
        })
    }
}
