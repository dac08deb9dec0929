//! Reading a policy's `context.history`: the person's last words, the
//! results of the tools the policy asked for, and new tool uses.

use crate::llm::{Message, MessagePart, Role};
use crate::types::{ToolResult, ToolUse};

/// All text parts of a message, joined by newlines.
pub fn text_of(message: &Message) -> String {
    message
        .parts
        .iter()
        .filter_map(|p| match p {
            MessagePart::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the person said last: the text of the newest user message that
/// has any (tool results travel in user messages too, without text).
pub fn last_user_text(history: &[Message]) -> Option<String> {
    history
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
        .map(text_of)
        .find(|t| !t.is_empty())
}

/// The tool results at the end of the history: those of the calls the
/// policy decided last step, or none if the person spoke since.
pub fn latest_tool_results(history: &[Message]) -> Vec<&ToolResult> {
    match history.last() {
        Some(m) if m.role == Role::User => m
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::ToolResult(r) => Some(r),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A tool use for a decision: `input` is serialized to JSON text, and the
/// id is derived from the step and the call's position so it is unique in
/// the session and stable if the step is retried.
pub fn tool_use(step: u32, index: usize, name: &str, input: &serde_json::Value) -> ToolUse {
    ToolUse {
        id: format!("call-{step}-{index}"),
        name: name.into(),
        input: input.to_string(),
    }
}
