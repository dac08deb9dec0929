//! {{name}}: a policy for Agent Host.
//!
//! `step` sees the session so far and decides what happens next: run tools
//! (`act`), say something and wait (`reply`), or end (`finish`). This one
//! hands the conversation and the session's tools to the model and does
//! what it answers. Build: `agenthost plugin build`; try it:
//! `agenthost plugin step {{name}}.wasm --message "hello" --replay answers.json`.

agenthost_sdk::policy_plugin!();

use agenthost_sdk::llm::{self, MessagePart, Request};
use exports::agenthost::plugin::policy::{Act, Context, Decision, Guest, Info, PolicyError, StepOutput};

const SYSTEM: &str = "You operate a Linux desktop for the person through the tools you are given. \
    Work step by step and say briefly what you are doing.";

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "{{name}}".into(),
            description: "Asks the model what to do next and does it".into(),
        }
    }

    fn step(ctx: Context) -> Result<StepOutput, PolicyError> {
        // A host error (no provider, budget spent) goes back as it came: `?`.
        let response = llm::complete(&Request {
            model: None,
            system: Some(SYSTEM.into()),
            messages: ctx.history,
            tools: ctx.tools,
            max_tokens: 4096,
            temperature: None,
            stop_sequences: Vec::new(),
        })?;
        let mut said = Vec::new();
        let mut calls = Vec::new();
        for part in response.parts {
            match part {
                MessagePart::Text(t) => said.push(t),
                MessagePart::ToolUse(call) => calls.push(call),
                // Reasoning and provider blocks: the host keeps them in the history.
                _ => {}
            }
        }
        let said = said.join("\n");
        let decision = if calls.is_empty() {
            Decision::Reply(said)
        } else {
            Decision::Act(Act {
                text: (!said.is_empty()).then_some(said),
                calls,
            })
        };
        Ok(StepOutput { decision, state: None })
    }
}

export!(Plugin);
