//! The conversation a policy sees, rebuilt from the stored events.
//!
//! Consecutive events of one role merge into one message (an assistant's
//! text and its tool calls; the tool results and a following user message),
//! which is the alternating shape the providers' APIs require.

use crate::plugins::bindings::current::llm::{Message, MessagePart, Role};
use crate::plugins::bindings::current::types::{ToolResult, ToolUse};
use crate::store::Event;

use super::event;

pub fn messages(events: &[Event]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for e in events {
        let p = &e.payload;
        let (role, part) = match e.kind.as_str() {
            event::USER_MESSAGE => (
                Role::User,
                MessagePart::Text(p["text"].as_str().unwrap_or_default().to_string()),
            ),
            event::ASSISTANT_MESSAGE => (
                Role::Assistant,
                MessagePart::Text(p["text"].as_str().unwrap_or_default().to_string()),
            ),
            event::TOOL_CALL => (
                Role::Assistant,
                MessagePart::ToolUse(ToolUse {
                    id: p["id"].as_str().unwrap_or_default().to_string(),
                    name: p["name"].as_str().unwrap_or_default().to_string(),
                    input: p["input"].as_str().unwrap_or("{}").to_string(),
                }),
            ),
            event::TOOL_RESULT => (
                Role::User,
                MessagePart::ToolResult(ToolResult {
                    tool_use_id: p["tool_use_id"].as_str().unwrap_or_default().to_string(),
                    content: event::content_parts(&p["content"]),
                    is_error: p["is_error"].as_bool().unwrap_or(false),
                }),
            ),
            _ => continue,
        };
        match out.last_mut() {
            Some(last) if last.role == role => last.parts.push(part),
            _ => out.push(Message {
                role,
                parts: vec![part],
            }),
        }
    }
    out
}

/// Tool calls that have no result yet: after a cancel or a crash they get
/// a synthetic error result so the history stays well-formed.
pub fn unanswered_calls(events: &[Event]) -> Vec<(String, String)> {
    let mut open: Vec<(String, String)> = Vec::new();
    for e in events {
        match e.kind.as_str() {
            event::TOOL_CALL => open.push((
                e.payload["id"].as_str().unwrap_or_default().to_string(),
                e.payload["name"].as_str().unwrap_or_default().to_string(),
            )),
            event::TOOL_RESULT => {
                let id = e.payload["tool_use_id"].as_str().unwrap_or_default();
                open.retain(|(open_id, _)| open_id != id);
            }
            _ => {}
        }
    }
    open
}
