//! Test fixture: a tool component built against the frozen WIT 0.1.0
//! (`wit/v0.1.0`), exercising each interface that changed in 0.2.0 (the
//! `tool-call` export, `computer.click` with a numeric count and named
//! modifiers, `llm`) and one that did not (`shell`). The host's tests load
//! it beside 0.2.0 components to prove old plugins keep working.

wit_bindgen::generate!({ world: "tool-plugin", path: "../../../wit/v0.1.0" });

use agenthost::plugin::computer::{self, MouseButton, Point};
use agenthost::plugin::llm::{self, Message, MessagePart, Request, Role};
use agenthost::plugin::shell::{self, Command};
use agenthost::plugin::types::{ContentPart, HostError, ToolSpec};
use exports::agenthost::plugin::tool::{Guest, ToolCall, ToolError, ToolOutput};
use serde_json::Value;

struct V01Tool;

fn host(e: HostError) -> ToolError {
    ToolError::Failed(match e {
        HostError::Denied(m) => format!("denied: {m}"),
        HostError::NoSandbox(m) => format!("no sandbox: {m}"),
        HostError::Invalid(m) => format!("invalid: {m}"),
        HostError::Timeout(m) => format!("timeout: {m}"),
        HostError::Failed(m) => m,
    })
}

fn text(t: String) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput {
        content: vec![ContentPart::Text(t)],
    })
}

impl Guest for V01Tool {
    fn describe() -> Vec<ToolSpec> {
        let spec = |name: &str, description: &str, schema: &str| ToolSpec {
            name: name.into(),
            description: description.into(),
            input_schema: schema.into(),
        };
        vec![
            spec(
                "v01_shell",
                "Runs a shell command in the sandbox and returns its stdout.",
                r#"{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}"#,
            ),
            spec(
                "v01_click",
                "Clicks at x, y `count` times holding `modifiers` (key names).",
                r#"{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"},"count":{"type":"integer"},"modifiers":{"type":"array","items":{"type":"string"}}},"required":["x","y","count"]}"#,
            ),
            spec(
                "v01_complete",
                "Asks the model and returns its text.",
                r#"{"type":"object","properties":{"prompt":{"type":"string"}},"required":["prompt"]}"#,
            ),
        ]
    }

    fn invoke(call: ToolCall) -> Result<ToolOutput, ToolError> {
        let input: Value = serde_json::from_str(&call.input)
            .map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let field = |name: &str| {
            input
                .get(name)
                .cloned()
                .ok_or_else(|| ToolError::InvalidInput(format!("`{name}` is required")))
        };
        match call.name.as_str() {
            "v01_shell" => {
                let command = field("command")?.as_str().unwrap_or_default().to_string();
                let out = shell::run(&Command {
                    command,
                    cwd: None,
                    env: Vec::new(),
                    timeout_ms: None,
                })
                .map_err(host)?;
                text(out.stdout)
            }
            "v01_click" => {
                let at = Point {
                    x: field("x")?.as_i64().unwrap_or(-1) as i32,
                    y: field("y")?.as_i64().unwrap_or(-1) as i32,
                };
                let count = field("count")?.as_u64().unwrap_or(0).min(255) as u8;
                let modifiers: Vec<String> = input
                    .get("modifiers")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| m.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                computer::click(at, MouseButton::Left, count, &modifiers).map_err(host)?;
                text(format!("clicked {count} time(s) at {}, {}", at.x, at.y))
            }
            "v01_complete" => {
                let prompt = field("prompt")?.as_str().unwrap_or_default().to_string();
                let response = llm::complete(&Request {
                    model: None,
                    system: None,
                    messages: vec![Message {
                        role: Role::User,
                        parts: vec![MessagePart::Text(prompt)],
                    }],
                    tools: Vec::new(),
                    max_tokens: 256,
                    temperature: None,
                })
                .map_err(host)?;
                let said: Vec<String> = response
                    .parts
                    .into_iter()
                    .filter_map(|p| match p {
                        MessagePart::Text(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                text(said.join(""))
            }
            other => Err(ToolError::InvalidInput(format!("no tool named `{other}`"))),
        }
    }
}

export!(V01Tool);
