//! A policy for OpenAI-compatible chat models with tool calling: every
//! tool, the computer included, is offered as a function.

wit_bindgen::generate!({ world: "policy-plugin", path: "../../wit" });

#[path = "../../shared/llm_policy.rs"]
mod llm_policy;

use exports::agenthost::plugin::policy::{Context, Guest, Info, StepOutput};

struct OpenAiPolicy;

impl Guest for OpenAiPolicy {
    fn describe() -> Info {
        Info {
            name: "openai-policy".into(),
            description:
                "Chat models with tool calling through the host's OpenAI-compatible provider".into(),
        }
    }

    fn step(ctx: Context) -> Result<StepOutput, String> {
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
