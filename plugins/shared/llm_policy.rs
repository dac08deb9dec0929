//! The agent loop's thinking half for LLM-backed policies, shared by
//! `anthropic-policy` and `openai-policy` (each crate includes this file
//! beside its own generated bindings).
//!
//! One step: take the history, keep only the most recent screenshots (old
//! ones cost tokens and rarely help), describe the tools, ask the model,
//! and turn its answer into tool calls or a reply.

use crate::exports::agenthost::plugin::policy::{Act, Context, Decision, PolicyError, StepOutput};
use agenthost_sdk::llm::{self, Message, MessagePart, Request};
use agenthost_sdk::types::{ContentPart, ToolSpec, ToolUse};
use serde::Deserialize;

/// What differs between the two policies.
pub struct Flavor {
    /// Routes the request to the host's provider (`anthropic`, `openai`).
    pub provider: &'static str,
    /// Send the `computer` tool as Anthropic's built-in computer-use tool.
    pub builtin_computer: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// The provider's model name; the host's configured default if unset.
    model: Option<String>,
    max_tokens: Option<u32>,
    /// Screenshots kept in the history sent to the model.
    keep_screenshots: Option<usize>,
    system_prompt: Option<String>,
    temperature: Option<f32>,
}

const DEFAULT_KEEP: usize = 3;
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub const SYSTEM_PROMPT: &str =
    "You are an agent operating a Debian Linux desktop (openbox window \
manager, Firefox ESR, xterm) in a sandbox, on behalf of the user. Use the tools to act: the \
computer tool for mouse, keyboard and screenshots, bash for shell commands (each call is a fresh \
shell; the user is `agent`, home /home/agent), and the editor tool for files. After each computer \
action you receive a screenshot of the settled screen; check it before the next step. To open \
Firefox, run `firefox-esr &` with bash or double-click its icon. Work step by step, and when the \
task is done, answer the user plainly with what you found or did.";

/// Replaces all but the `keep` most recent images with a short note.
fn prune_images(history: &mut [Message], keep: usize) {
    let mut seen = 0;
    let note = || "[older screenshot omitted]".to_string();
    for message in history.iter_mut().rev() {
        for part in message.parts.iter_mut().rev() {
            match part {
                MessagePart::Image(_) => {
                    seen += 1;
                    if seen > keep {
                        *part = MessagePart::Text(note());
                    }
                }
                MessagePart::ToolResult(result) => {
                    for c in result.content.iter_mut().rev() {
                        if matches!(c, ContentPart::Image(_)) {
                            seen += 1;
                            if seen > keep {
                                *c = ContentPart::Text(note());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The size of the newest screenshot: the coordinate space the model sees.
fn screen_size(history: &[Message]) -> (u32, u32) {
    for message in history.iter().rev() {
        for part in message.parts.iter().rev() {
            match part {
                MessagePart::Image(img) => return (img.width, img.height),
                MessagePart::ToolResult(r) => {
                    if let Some((w, h)) = r.content.iter().rev().find_map(|c| match c {
                        ContentPart::Image(img) => Some((img.width, img.height)),
                        _ => None,
                    }) {
                        return (w, h);
                    }
                }
                _ => {}
            }
        }
    }
    (1024, 768)
}

fn tools(ctx_tools: Vec<ToolSpec>, flavor: &Flavor, history: &[Message]) -> Vec<ToolSpec> {
    ctx_tools
        .into_iter()
        .map(|mut t| {
            if flavor.builtin_computer && t.name == "computer" {
                let (w, h) = screen_size(history);
                t.input_schema = serde_json::json!({
                    "x-anthropic-builtin": {
                        "type": "computer_20250124",
                        "display_width_px": w,
                        "display_height_px": h,
                    }
                })
                .to_string();
            }
            t
        })
        .collect()
}

pub fn step(ctx: Context, flavor: &Flavor) -> Result<StepOutput, PolicyError> {
    let config: Config = if ctx.config.trim().is_empty() {
        Config::default()
    } else {
        serde_json::from_str(&ctx.config)
            .map_err(|e| PolicyError::Failed(format!("invalid policy config: {e}")))?
    };
    let mut history = ctx.history;
    prune_images(
        &mut history,
        config.keep_screenshots.unwrap_or(DEFAULT_KEEP),
    );
    let request = Request {
        model: Some(match &config.model {
            Some(m) => format!("{}/{m}", flavor.provider),
            None => flavor.provider.to_string(),
        }),
        system: Some(
            config
                .system_prompt
                .clone()
                .unwrap_or_else(|| SYSTEM_PROMPT.into()),
        ),
        tools: tools(ctx.tools, flavor, &history),
        messages: history,
        max_tokens: config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: config.temperature,
        stop_sequences: Vec::new(),
    };
    let response = llm::complete(&request)?;
    let mut text = Vec::new();
    let mut uses: Vec<ToolUse> = Vec::new();
    for part in response.parts {
        match part {
            MessagePart::Text(t) => text.push(t),
            MessagePart::ToolUse(u) => uses.push(u),
            _ => {}
        }
    }
    let text = text.join("\n");
    let decision = if !uses.is_empty() {
        Decision::Act(Act {
            text: (!text.trim().is_empty()).then_some(text),
            calls: uses,
        })
    } else if text.trim().is_empty() {
        Decision::Reply("(the model returned no answer)".into())
    } else {
        Decision::Reply(text)
    };
    Ok(StepOutput {
        decision,
        state: None,
    })
}
