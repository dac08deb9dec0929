//! Claude computer use as a policy component: the host's `computer` tool
//! is offered as Anthropic's built-in computer-use tool (sized to the
//! screenshots the model sees), other tools as ordinary tools.

agenthost_sdk::policy_plugin!("../../wit/v0.2.0");

#[path = "../../shared/llm_policy.rs"]
mod llm_policy;

use exports::agenthost::plugin::policy::{Context, Guest, Info, PolicyError, StepOutput};

struct AnthropicPolicy;

impl Guest for AnthropicPolicy {
    fn describe() -> Info {
        Info {
            name: "anthropic-policy".into(),
            description: "Claude computer use through the host's Anthropic provider".into(),
        }
    }

    fn step(ctx: Context) -> Result<StepOutput, PolicyError> {
        llm_policy::step(
            ctx,
            &llm_policy::Flavor {
                provider: "anthropic",
                builtin_computer: true,
            },
        )
    }
}

export!(AnthropicPolicy);
