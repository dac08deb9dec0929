//! Test fixture: a policy component built against the frozen WIT 0.1.0
//! (`wit/v0.1.0`). It uses what 0.2.0 changed: the tuple `act` (an empty
//! one meant a reply), a string error, and the state blob.
//!
//! It answers the person's last message:
//! * `run CMD`: runs CMD with the `bash` tool, then replies with its output;
//! * `say TEXT`: an act with no tool calls and TEXT (0.1.0's reply);
//! * `remember TEXT`: keeps TEXT as its state blob;
//! * `recall`: replies with the state blob it was handed ("none" if none);
//! * `fail`: fails the step with an error string.

wit_bindgen::generate!({ world: "policy-plugin", path: "../../../wit/v0.1.0" });

use agenthost::plugin::llm::{Message, MessagePart, Role};
use agenthost::plugin::types::ToolUse;
use exports::agenthost::plugin::policy::{Context, Decision, Guest, Info, StepOutput};

struct V01Policy;

fn reply(text: String, state: Option<Vec<u8>>) -> StepOutput {
    StepOutput {
        decision: Decision::Reply(text),
        state,
    }
}

fn last_text(m: &Message) -> String {
    m.parts
        .iter()
        .filter_map(|p| match p {
            MessagePart::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Guest for V01Policy {
    fn describe() -> Info {
        Info {
            name: "v0-1-policy".into(),
            description: "Test fixture built against WIT 0.1.0".into(),
        }
    }

    fn step(ctx: Context) -> Result<StepOutput, String> {
        let state = ctx.state.clone();
        let Some(last) = ctx.history.last() else {
            return Ok(reply("nothing to do".into(), state));
        };
        // After a tool ran: report what it said.
        let results: Vec<String> = last
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::ToolResult(r) => Some(
                    r.content
                        .iter()
                        .filter_map(|c| match c {
                            agenthost::plugin::types::ContentPart::Text(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(""),
                ),
                _ => None,
            })
            .collect();
        if !results.is_empty() {
            return Ok(reply(format!("output: {}", results.join("\n")), state));
        }
        if last.role != Role::User {
            return Ok(reply("waiting".into(), state));
        }
        let said = last_text(last);
        let said = said.trim();
        if let Some(cmd) = said.strip_prefix("run ") {
            let call = ToolUse {
                id: format!("v01_{}", ctx.step),
                name: "bash".into(),
                input: serde_json::json!({ "command": cmd }).to_string(),
            };
            return Ok(StepOutput {
                decision: Decision::Act((Some(format!("running {cmd}")), vec![call])),
                state,
            });
        }
        if let Some(text) = said.strip_prefix("say ") {
            return Ok(StepOutput {
                decision: Decision::Act((Some(text.to_string()), Vec::new())),
                state,
            });
        }
        if let Some(text) = said.strip_prefix("remember ") {
            return Ok(reply("remembered".into(), Some(text.as_bytes().to_vec())));
        }
        if said == "recall" {
            let seen = match &state {
                Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                None => "none".into(),
            };
            return Ok(reply(format!("state: {seen}"), state));
        }
        if said == "fail" {
            return Err("the v0.1.0 policy failed on purpose".into());
        }
        Ok(reply(format!("v0.1.0 policy heard: {said}"), state))
    }
}

export!(V01Policy);
