//! The session's event kinds and their payloads: the vocabulary shared by
//! the store, the WebSocket and the REST API.
//!
//! Every stored event has the envelope `{id, seq, session_id, kind, source,
//! ts, payload}`. `assistant_delta` is the one kind that is only ever sent
//! live: the final text is stored once, as `assistant_message`.

use serde_json::{json, Value};

use crate::plugins::bindings::current::types::ContentPart;
use crate::store::SessionStatus;

pub const USER_MESSAGE: &str = "user_message";
pub const ASSISTANT_DELTA: &str = "assistant_delta";
pub const ASSISTANT_MESSAGE: &str = "assistant_message";
pub const TOOL_CALL: &str = "tool_call";
pub const TOOL_RESULT: &str = "tool_result";
pub const STATE_CHANGED: &str = "state_changed";
pub const POLICY_SWITCHED: &str = "policy_switched";
pub const USAGE: &str = "usage";
pub const ERROR: &str = "error";
pub const CONTROL_CHANGED: &str = "control_changed";

/// Who caused an event.
pub mod source {
    pub const USER: &str = "user";
    pub const AGENT: &str = "agent";
    pub const TOOL: &str = "tool";
    pub const HOST: &str = "host";
}

pub fn text(text: &str) -> Value {
    json!({ "text": text })
}

pub fn tool_call(id: &str, name: &str, input: &str) -> Value {
    json!({ "id": id, "name": name, "input": input })
}

/// A stored tool-result content part: text, or an image by its SHA-256.
pub fn text_part(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

pub fn image_part(sha256: &str, width: u32, height: u32, media_type: &str) -> Value {
    json!({
        "type": "image", "sha256": sha256,
        "width": width, "height": height, "media_type": media_type,
    })
}

pub fn tool_result(
    tool_use_id: &str,
    name: &str,
    content: Vec<Value>,
    is_error: bool,
    duration_ms: u64,
) -> Value {
    json!({
        "tool_use_id": tool_use_id, "name": name, "content": content,
        "is_error": is_error, "duration_ms": duration_ms,
    })
}

pub fn state_changed(status: SessionStatus, reason: &str) -> Value {
    json!({ "status": status, "reason": reason })
}

pub fn error(code: &str, message: &str) -> Value {
    json!({ "code": code, "message": message })
}

/// Content parts of a stored tool result, back as WIT parts. Images come
/// back as handles the host's image source resolves by hash.
pub fn content_parts(content: &Value) -> Vec<ContentPart> {
    use crate::plugins::bindings::current::types::Image;
    content
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| match p["type"].as_str()? {
            "text" => Some(ContentPart::Text(p["text"].as_str()?.to_string())),
            "image" => Some(ContentPart::Image(Image {
                handle: format!("img-{}", p["sha256"].as_str()?),
                width: p["width"].as_u64()? as u32,
                height: p["height"].as_u64()? as u32,
                media_type: p["media_type"].as_str()?.to_string(),
            })),
            _ => None,
        })
        .collect()
}
