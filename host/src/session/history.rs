//! The conversation a policy sees, rebuilt from the stored events.
//!
//! Consecutive events of one role merge into one message (an assistant's
//! text and its tool calls; the tool results and a following user message),
//! which is the alternating shape the providers' APIs require. A result
//! is only passed on after its call: an event that no longer reads (kept
//! as `Unknown`) must not leave a provider a result without its call.

use std::collections::HashSet;

use crate::event::{Event, EventBody, StoredPart};
use crate::plugins::bindings::current::llm::{self, Message, MessagePart, Role};
use crate::plugins::bindings::current::types::{ContentPart, Image, ToolResult, ToolUse};

pub fn messages(events: &[Event]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut calls: HashSet<&str> = HashSet::new();
    for e in events {
        let (role, part) = match &e.body {
            EventBody::UserMessage(t) => (Role::User, MessagePart::Text(t.text.clone())),
            EventBody::AssistantMessage(t) => (Role::Assistant, MessagePart::Text(t.text.clone())),
            // Stored as the reply arrived, so before that turn's text and
            // calls: the order the provider wants them back in.
            EventBody::Thinking(t) => (
                Role::Assistant,
                MessagePart::Thinking(llm::Thinking {
                    text: t.text.clone(),
                    signature: t.signature.clone(),
                }),
            ),
            EventBody::ProviderPart(p) => (
                Role::Assistant,
                MessagePart::Opaque(llm::Opaque {
                    provider: p.provider.clone(),
                    data: p.data.clone(),
                }),
            ),
            EventBody::ToolCall(c) => {
                calls.insert(&c.id);
                (
                    Role::Assistant,
                    MessagePart::ToolUse(ToolUse {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        input: c.input.clone(),
                    }),
                )
            }
            EventBody::ToolResult(r) if calls.remove(r.tool_use_id.as_str()) => (
                Role::User,
                MessagePart::ToolResult(ToolResult {
                    tool_use_id: r.tool_use_id.clone(),
                    content: content_parts(&r.content),
                    is_error: r.is_error,
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

/// Stored content parts as WIT parts. Images come back as handles the
/// host's image source resolves by hash.
pub fn content_parts(parts: &[StoredPart]) -> Vec<ContentPart> {
    parts
        .iter()
        .map(|p| match p {
            StoredPart::Text { text } => ContentPart::Text(text.clone()),
            StoredPart::Image {
                sha256,
                width,
                height,
                media_type,
            } => ContentPart::Image(Image {
                handle: format!("img-{sha256}"),
                width: *width,
                height: *height,
                media_type: media_type.clone(),
            }),
        })
        .collect()
}

/// Tool calls that have no result yet: after a cancel or a crash they get
/// a synthetic error result so the history stays well-formed.
pub fn unanswered_calls(events: &[Event]) -> Vec<(String, String)> {
    let mut open: Vec<(String, String)> = Vec::new();
    for e in events {
        match &e.body {
            EventBody::ToolCall(c) => open.push((c.id.clone(), c.name.clone())),
            EventBody::ToolResult(r) => open.retain(|(id, _)| *id != r.tool_use_id),
            _ => {}
        }
    }
    open
}

/// Approval requests without an answer (a run that stopped while one
/// waited), by tool call id.
pub fn unanswered_approvals(events: &[Event]) -> Vec<String> {
    let mut open: Vec<String> = Vec::new();
    for e in events {
        match &e.body {
            EventBody::ApprovalRequested(r) => open.push(r.tool_use_id.clone()),
            EventBody::ApprovalDecided(d) => open.retain(|id| *id != d.tool_use_id),
            _ => {}
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Source, ToolCall, ToolResult as StoredResult};
    use serde_json::json;

    fn events(bodies: Vec<EventBody>) -> Vec<Event> {
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Event {
                id: format!("evt_{i}"),
                seq: i as i64 + 1,
                session_id: "ses".into(),
                source: Source::Host,
                ts: 0,
                body,
            })
            .collect()
    }

    fn call(id: &str) -> EventBody {
        EventBody::ToolCall(ToolCall {
            id: id.into(),
            name: "bash".into(),
            input: "{}".into(),
            via: None,
        })
    }

    fn result(id: &str) -> EventBody {
        EventBody::ToolResult(StoredResult {
            tool_use_id: id.into(),
            name: "bash".into(),
            content: vec![
                StoredPart::text("ok"),
                StoredPart::Image {
                    sha256: "ab".into(),
                    width: 4,
                    height: 3,
                    media_type: "image/png".into(),
                },
            ],
            is_error: false,
            duration_ms: 1,
        })
    }

    fn shape(messages: &[Message]) -> Vec<(Role, usize)> {
        messages.iter().map(|m| (m.role, m.parts.len())).collect()
    }

    #[test]
    fn turns_merge_by_role_and_ignore_what_a_model_never_sees() {
        let log = events(vec![
            EventBody::user_message("list files"),
            EventBody::state_changed(crate::store::SessionStatus::Running, ""),
            EventBody::assistant_message("looking"),
            call("c1"),
            call("c2"),
            result("c1"),
            result("c2"),
            EventBody::user_message("and now?"),
            EventBody::error("x", "y"),
            EventBody::assistant_message("done"),
        ]);
        let m = messages(&log);
        assert_eq!(
            shape(&m),
            vec![
                (Role::User, 1),
                (Role::Assistant, 3),
                (Role::User, 3),
                (Role::Assistant, 1)
            ]
        );
        match &m[2].parts[0] {
            MessagePart::ToolResult(r) => {
                assert_eq!(r.tool_use_id, "c1");
                assert!(
                    matches!(&r.content[1], ContentPart::Image(i) if i.handle == "img-ab" && i.width == 4)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reasoning_goes_back_first_in_the_turn_it_came_with() {
        let log = events(vec![
            EventBody::user_message("look"),
            EventBody::Thinking(crate::event::Thinking {
                text: "screenshot first".into(),
                signature: Some("sig".into()),
            }),
            EventBody::ProviderPart(crate::event::ProviderPart {
                provider: "anthropic".into(),
                data: "{}".into(),
            }),
            EventBody::assistant_message("looking"),
            call("c1"),
            result("c1"),
        ]);
        let m = messages(&log);
        assert_eq!(
            shape(&m),
            vec![(Role::User, 1), (Role::Assistant, 4), (Role::User, 1)]
        );
        assert!(
            matches!(&m[1].parts[0], MessagePart::Thinking(t) if t.signature.as_deref() == Some("sig"))
        );
        assert!(matches!(&m[1].parts[1], MessagePart::Opaque(o) if o.provider == "anthropic"));
        assert!(matches!(&m[1].parts[3], MessagePart::ToolUse(_)));
    }

    #[test]
    fn a_result_whose_call_no_longer_reads_is_left_out() {
        let unreadable = EventBody::parse("tool_call", json!({"call_id": "c1"}));
        let log = events(vec![
            EventBody::user_message("go"),
            unreadable,
            result("c1"),
        ]);
        assert_eq!(shape(&messages(&log)), vec![(Role::User, 1)]);
    }

    #[test]
    fn unanswered_calls_are_those_without_a_result() {
        let log = events(vec![call("c1"), call("c2"), result("c1"), call("c3")]);
        let open: Vec<String> = unanswered_calls(&log)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(open, vec!["c2", "c3"]);
    }
}
