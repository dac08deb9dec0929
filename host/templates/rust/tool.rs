//! {{name}}: a tool for Agent Host.
//!
//! `describe` lists the tools this component offers; `invoke` runs one
//! call. Host capabilities (computer, shell, files, llm, log) are in
//! `agenthost_sdk::*`; list the ones you use under `capabilities` in
//! plugin.toml (log needs no grant). Build: `agenthost plugin build`.

agenthost_sdk::tool_plugin!();

use agenthost_sdk::log::{self, Level};
use agenthost_sdk::types::{ToolSpec, ToolUse};
use agenthost_sdk::{input, spec, text};
use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;

// The input of `{{tool}}`. Its JSON Schema is derived from this type (doc
// comments become descriptions); the host checks every call against it
// before `invoke` runs.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Echo {
    /// The text to send back.
    text: String,
    /// How many times to repeat it.
    #[serde(default = "once")]
    #[schemars(range(min = 1, max = 10))]
    times: u32,
}

fn once() -> u32 {
    1
}

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Vec<ToolSpec> {
        vec![spec::<Echo>(
            "{{tool}}",
            "Sends `text` back, repeated `times` times.",
        )]
    }

    fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
        if call.name != "{{tool}}" {
            return Err(ToolError::InvalidInput(format!("no tool `{}` here", call.name)));
        }
        // A parse error becomes `invalid-input`, which the model sees.
        let echo: Echo = input(&call)?;
        log::log(Level::Info, &format!("echoing {} characters", echo.text.len()));
        let reply = vec![echo.text; echo.times as usize].join(" ");
        Ok(ToolOutput { content: vec![text(reply)] })
    }
}

export!(Plugin);
