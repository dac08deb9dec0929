//! A policy for OpenAI-compatible chat models with tool calling: every
//! tool, the computer included, is offered as a function.

agenthost_sdk::policy_plugin!("../../wit/v0.2.0");

#[path = "../../shared/llm_policy.rs"]
mod llm_policy;

use exports::agenthost::plugin::policy::{Context, Guest, Info, PolicyError, StepOutput};

struct OpenAiPolicy;

impl Guest for OpenAiPolicy {
    fn describe() -> Info {
        Info {
            name: "openai-policy".into(),
            description:
                "Chat models with tool calling through the host's OpenAI-compatible provider".into(),
        }
    }

    fn step(ctx: Context) -> Result<StepOutput, PolicyError> {
        llm_policy::step(
            ctx,
            &llm_policy::Flavor {
                provider: "openai",
                builtin_computer: false,
            },
        )
    }
}

export!(OpenAiPolicy);
