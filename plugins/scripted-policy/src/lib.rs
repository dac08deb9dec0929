//! The scripted policy: a deterministic, offline agent brain.
//!
//! It understands plain requests ("take a screenshot", "run `ls`",
//! "type hello", "click 100 200", "press ctrl+l", joined by "then" or new
//! lines) and turns them into tool calls one step at a time, so the product
//! works without an LLM key and tests are reproducible. Progress is derived
//! from the history alone (tool results since the last user message), so it
//! survives restarts and hot swaps. Its state blob holds only what the
//! person asked it to `remember` (and `recall` shows what it was handed),
//! which makes it the policy tests use to check that a switch drops state.

agenthost_sdk::policy_plugin!("../../wit/v0.2.0");

use agenthost_sdk::llm::{Message, MessagePart, Role};
use agenthost_sdk::types::{ContentPart, ToolUse};
use exports::agenthost::plugin::policy::{
    Act, Context, Decision, Guest, Info, PolicyError, StepOutput,
};
use serde_json::json;

const HELP: &str =
    "I am the scripted policy: I follow simple instructions without a language model. \
Try: \"take a screenshot\", \"run `ls -la`\", \"remember NOTE\", \"recall\", \"type hello\", \"press ctrl+l\", \"click 100 200\", \
\"scroll down\", \"wait 2\", or several joined with \"then\".";

/// One instruction, as a tool name and its JSON input.
fn parse_instruction(raw: &str) -> Option<(&'static str, serde_json::Value)> {
    let s = raw.trim().trim_end_matches(['.', '!']).trim();
    let lower = s.to_lowercase();
    let rest = |prefix_len: usize| s[prefix_len..].trim();
    if lower.contains("screenshot") {
        return Some(("computer", json!({"action": "screenshot"})));
    }
    for prefix in ["run ", "execute ", "$ "] {
        if lower.starts_with(prefix) {
            let cmd = rest(prefix.len()).trim_matches('`').trim();
            return (!cmd.is_empty()).then(|| ("bash", json!({"command": cmd})));
        }
    }
    if lower.starts_with("type ") {
        let text = rest(5);
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        return Some(("computer", json!({"action": "type", "text": text})));
    }
    for prefix in ["press ", "key "] {
        if lower.starts_with(prefix) {
            return Some((
                "computer",
                json!({"action": "key", "text": rest(prefix.len())}),
            ));
        }
    }
    for (prefix, action) in [
        ("double click ", "double_click"),
        ("double-click ", "double_click"),
        ("right click ", "right_click"),
        ("right-click ", "right_click"),
        ("click ", "left_click"),
        ("move to ", "mouse_move"),
    ] {
        if lower.starts_with(prefix) {
            let nums: Vec<i64> = rest(prefix.len())
                .split(|c: char| !c.is_ascii_digit() && c != '-')
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [x, y] = nums[..] {
                return Some(("computer", json!({"action": action, "coordinate": [x, y]})));
            }
            return None;
        }
    }
    if lower.starts_with("scroll ") {
        let direction = ["up", "down", "left", "right"]
            .into_iter()
            .find(|d| lower.contains(d))?;
        return Some((
            "computer",
            json!({"action": "scroll", "scroll_direction": direction, "scroll_amount": 3}),
        ));
    }
    if lower.starts_with("wait") {
        let seconds = lower
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(1.0);
        return Some(("computer", json!({"action": "wait", "duration": seconds})));
    }
    None
}

fn split_instructions(text: &str) -> Vec<&str> {
    text.split(['\n', ';'])
        .flat_map(|line| line.split(" then "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

struct Scripted;

impl Guest for Scripted {
    fn describe() -> Info {
        Info {
            name: "scripted-policy".into(),
            description: HELP.into(),
        }
    }

    /// Keeps its state blob across steps: only `remember` changes it.
    fn step(ctx: Context) -> Result<StepOutput, PolicyError> {
        let kept = ctx.state.clone();
        let mut out = decide(ctx)?;
        if out.state.is_none() {
            out.state = kept;
        }
        Ok(out)
    }
}

fn decide(ctx: Context) -> Result<StepOutput, PolicyError> {
    let Some(last_user) = ctx.history.iter().rposition(|m| {
        m.role == Role::User && m.parts.iter().any(|p| matches!(p, MessagePart::Text(_)))
    }) else {
        return Ok(reply(HELP.into()));
    };
    let request = agenthost_sdk::history::text_of(&ctx.history[last_user]);
    if matches!(
        request.trim().to_lowercase().as_str(),
        "done" | "bye" | "finish" | "stop"
    ) {
        return Ok(StepOutput {
            decision: Decision::Finish("Finished.".into()),
            state: None,
        });
    }
    if let Some(note) = request.trim().strip_prefix("remember ") {
        return Ok(StepOutput {
            decision: Decision::Reply("Remembered.".into()),
            state: Some(note.as_bytes().to_vec()),
        });
    }
    if request.trim().eq_ignore_ascii_case("recall") {
        return Ok(reply(match &ctx.state {
            Some(note) => format!("I remember: {}", String::from_utf8_lossy(note)),
            None => "I remember nothing.".into(),
        }));
    }
    let instructions = split_instructions(&request);
    let results: Vec<(&ToolUse, bool, String)> = tool_results_since(&ctx.history[last_user..]);
    let done = results.len();

    if let Some((_, true, error)) = results.last() {
        return Ok(reply(format!("Step {done} failed: {error}")));
    }
    match instructions.get(done) {
        Some(raw) => {
            let Some((tool, input)) = parse_instruction(raw) else {
                return Ok(reply(format!("I don't understand \"{raw}\". {HELP}")));
            };
            if !ctx.tools.iter().any(|t| t.name == tool) {
                return Ok(reply(format!(
                    "\"{raw}\" needs the `{tool}` tool, which this session does not have."
                )));
            }
            let call = ToolUse {
                id: format!("call_{}_{done}", ctx.step),
                name: tool.into(),
                input: input.to_string(),
            };
            Ok(StepOutput {
                decision: Decision::Act(Act {
                    text: Some(raw.to_string()),
                    calls: vec![call],
                }),
                state: None,
            })
        }
        None if done == 0 => Ok(reply(format!(
            "I don't understand \"{}\". {HELP}",
            request.trim()
        ))),
        None => {
            let last_text = results
                .last()
                .map(|(_, _, t)| t.trim().to_string())
                .unwrap_or_default();
            let summary = if last_text.is_empty() {
                format!("Done: {done} step(s).")
            } else {
                format!("Done: {done} step(s). Last output:\n{last_text}")
            };
            Ok(reply(summary))
        }
    }
}

/// (the call, whether it failed, its text) for each tool result after the
/// request, in order.
fn tool_results_since(history: &[Message]) -> Vec<(&ToolUse, bool, String)> {
    let uses: Vec<&ToolUse> = history
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter_map(|p| match p {
            MessagePart::ToolUse(u) => Some(u),
            _ => None,
        })
        .collect();
    history
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter_map(|p| match p {
            MessagePart::ToolResult(r) => {
                let call = uses.iter().find(|u| u.id == r.tool_use_id)?;
                let text = r
                    .content
                    .iter()
                    .filter_map(|c| match c {
                        ContentPart::Text(t) => Some(t.as_str()),
                        ContentPart::Image(_) => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                Some((*call, r.is_error, text))
            }
            _ => None,
        })
        .collect()
}

fn reply(text: String) -> StepOutput {
    StepOutput {
        decision: Decision::Reply(text),
        state: None,
    }
}

export!(Scripted);
