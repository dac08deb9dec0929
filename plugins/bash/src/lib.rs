//! The `bash` tool: runs a command in the sandbox's shell, as Anthropic's
//! bash tool does. Each call is a fresh `bash -c`: nothing (cwd, variables)
//! carries over between calls, which the description tells the model.

agenthost_sdk::tool_plugin!("../../wit/v0.2.0");

use agenthost_sdk::shell::{self, Command};
use agenthost_sdk::types::{ToolSpec, ToolUse};
use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    command: Option<String>,
    /// Accepted for compatibility with Anthropic's tool; there is no
    /// long-lived shell to restart, so it only acknowledges.
    #[serde(default)]
    restart: bool,
    timeout_seconds: Option<u32>,
}

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "command": {"type": "string", "description": "The bash command to run"},
    "restart": {"type": "boolean", "description": "Start a fresh shell (every call already does)"},
    "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 600}
  },
  "additionalProperties": false
}"#;

struct Bash;

impl Guest for Bash {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "bash".into(),
            description: "Run a bash command in the sandbox and get its output. Each call starts a new \
                shell in the home directory: chain steps with && or ; in one command. Long output is cut."
                .into(),
            input_schema: SCHEMA.into(),
        }]
    }

    fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
        if call.name != "bash" {
            return Err(ToolError::InvalidInput(format!(
                "this component has no tool `{}`",
                call.name
            )));
        }
        let input: Input = agenthost_sdk::input(&call)?;
        let command = match (input.command, input.restart) {
            (Some(c), _) if !c.trim().is_empty() => c,
            (_, true) => return Ok(text("shell restarted")),
            _ => {
                return Err(ToolError::InvalidInput(
                    "`command` is required and must not be empty".into(),
                ))
            }
        };
        let out = shell::run(&Command {
            command,
            cwd: None,
            env: Vec::new(),
            timeout_ms: input.timeout_seconds.map(|s| s.saturating_mul(1000)),
        })?;
        let mut body = out.stdout;
        if !out.stderr.is_empty() {
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(&out.stderr);
        }
        if out.truncated {
            body.push_str("\n[output truncated]");
        }
        if out.timed_out {
            return Err(ToolError::Failed(format!(
                "{body}\n[command timed out and was killed]"
            )));
        }
        match out.exit_code {
            Some(0) => Ok(text(if body.is_empty() {
                "(no output)".into()
            } else {
                body
            })),
            // A failing command is information for the model, not a tool failure.
            Some(code) => Ok(text(format!("{body}\n[exit code {code}]"))),
            None => Err(ToolError::Failed(format!("{body}\n[killed by a signal]"))),
        }
    }
}

fn text(s: impl Into<String>) -> ToolOutput {
    ToolOutput {
        content: vec![agenthost_sdk::text(s)],
    }
}

export!(Bash);
