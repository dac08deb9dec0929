//! `agenthost plugin new`: a Rust plugin crate that builds as it is, with
//! the WIT it targets copied in so the crate does not depend on this repo.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use agenthost::plugins::Manifest;

/// The contract new plugins target (`wit/v0.2.0/`), copied into each
/// project so it builds outside this repository.
const WIT: [(&str, &str); 9] = [
    ("types.wit", include_str!("../../../wit/v0.2.0/types.wit")),
    (
        "computer.wit",
        include_str!("../../../wit/v0.2.0/computer.wit"),
    ),
    ("shell.wit", include_str!("../../../wit/v0.2.0/shell.wit")),
    ("files.wit", include_str!("../../../wit/v0.2.0/files.wit")),
    ("llm.wit", include_str!("../../../wit/v0.2.0/llm.wit")),
    ("log.wit", include_str!("../../../wit/v0.2.0/log.wit")),
    ("tool.wit", include_str!("../../../wit/v0.2.0/tool.wit")),
    ("policy.wit", include_str!("../../../wit/v0.2.0/policy.wit")),
    ("worlds.wit", include_str!("../../../wit/v0.2.0/worlds.wit")),
];

const TOOL_LIB: &str = r##"//! A tool for Agent Host. `describe` lists the tools this component offers;
//! `invoke` runs one call. Host capabilities (computer, shell, files, llm)
//! are in `agenthost::plugin::*`; declare the ones you use in plugin.toml.

wit_bindgen::generate!({ world: "tool-plugin", path: "wit" });

use agenthost::plugin::types::{ContentPart, ToolSpec, ToolUse};
use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "{{tool}}".into(),
            description: "Echoes its `text` input back.".into(),
            input_schema: r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#.into(),
        }]
    }

    fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
        let input: serde_json::Value =
            serde_json::from_str(&call.input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let text = input["text"]
            .as_str()
            .ok_or_else(|| ToolError::InvalidInput("`text` must be a string".into()))?;
        Ok(ToolOutput { content: vec![ContentPart::Text(text.to_string())] })
    }
}

export!(Plugin);
"##;

const POLICY_LIB: &str = r#"//! A policy for Agent Host: `step` sees the session's history and decides
//! what happens next. Ask a model with `agenthost::plugin::llm::complete`
//! (declare `llm` in plugin.toml).

wit_bindgen::generate!({ world: "policy-plugin", path: "wit" });

use agenthost::plugin::llm::{MessagePart, Role};
use exports::agenthost::plugin::policy::{Context, Decision, Guest, Info, PolicyError, StepOutput};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Info {
        Info { name: "{{name}}".into(), description: "Repeats the last thing the person said.".into() }
    }

    fn step(ctx: Context) -> Result<StepOutput, PolicyError> {
        let said = ctx
            .history
            .iter()
            .rev()
            .filter(|m| m.role == Role::User)
            .flat_map(|m| m.parts.iter())
            .find_map(|p| match p {
                MessagePart::Text(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(StepOutput { decision: Decision::Reply(format!("You said: {said}")), state: None })
    }
}

export!(Plugin);
"#;

pub fn create(parent: &Path, name: &str, policy: bool) -> anyhow::Result<PathBuf> {
    agenthost::plugins::Manifest::parse(&format!("name = \"{name}\"\nversion = \"0.1.0\"\n"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = parent.join(name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::create_dir_all(dir.join("wit"))?;
    let crate_name = name.replace('-', "_");
    let deps = if policy { "" } else { "serde_json = \"1\"\n" };
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nwit-bindgen = \"0.61\"\n{deps}\n[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\n\n\
             # Not part of any enclosing workspace.\n[workspace]\n"
        ),
    )?;
    let lib = if policy { POLICY_LIB } else { TOOL_LIB }
        .replace("{{tool}}", &crate_name)
        .replace("{{name}}", name);
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    for (file, text) in WIT {
        std::fs::write(dir.join("wit").join(file), text)?;
    }
    let manifest = Manifest {
        name: name.to_string(),
        version: "0.1.0".into(),
        kind: Some(if policy {
            agenthost::plugins::PluginKind::Policy
        } else {
            agenthost::plugins::PluginKind::Tool
        }),
        description: String::new(),
        capabilities: Default::default(),
    };
    std::fs::write(dir.join("plugin.toml"), manifest.to_toml())?;
    std::fs::write(dir.join(".gitignore"), "target/\n")?;
    Ok(dir)
}
