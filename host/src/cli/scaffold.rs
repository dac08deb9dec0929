//! `agenthost plugin new`: a plugin project in Rust, Python or JavaScript,
//! tool or policy, that builds with `agenthost plugin build` as it is. The
//! project carries what it needs (the WIT it targets, the language's
//! helpers, the Rust SDK crate, the wasm target), so it works outside this
//! repository.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::ValueEnum;

use agenthost::plugins::{Manifest, PluginKind};

pub use super::builder::Lang;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Tool,
    Policy,
}

/// The contract new plugins target (`wit/v0.2.0/`).
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

/// The SDK crate (`plugins/sdk`), copied into Rust projects as `sdk/`.
const SDK: [(&str, &str); 3] = [
    (
        "Cargo.toml",
        include_str!("../../../plugins/sdk/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/history.rs",
        include_str!("../../../plugins/sdk/src/history.rs"),
    ),
];

/// Where the SDK finds the WIT in this repository, and in a project.
const SDK_WIT_IN_REPO: &str = "\"../../wit/v0.2.0\"";
const SDK_WIT_IN_PROJECT: &str = "\"../wit\"";

const RUST_CARGO: &str = include_str!("../../templates/rust/Cargo.toml");
const RUST_CARGO_CONFIG: &str = include_str!("../../templates/rust/cargo-config.toml");
const RUST_TOOL: &str = include_str!("../../templates/rust/tool.rs");
const RUST_POLICY: &str = include_str!("../../templates/rust/policy.rs");
const PY_SDK: &str = include_str!("../../../plugins/sdk/python/agenthost_sdk.py");
const PY_TOOL: &str = include_str!("../../templates/python/tool.py");
const PY_POLICY: &str = include_str!("../../templates/python/policy.py");
const JS_PACKAGE: &str = include_str!("../../templates/js/package.json");
const JS_SDK: &str = include_str!("../../../plugins/sdk/js/sdk.js");
const JS_TOOL: &str = include_str!("../../templates/js/tool.js");
const JS_POLICY: &str = include_str!("../../templates/js/policy.js");

const GITIGNORE: &str = "target/\nnode_modules/\n__pycache__/\n*.wasm\n";

fn readme(name: &str, kind: Kind, lang: Lang) -> String {
    let (kind_word, source) = match (kind, lang) {
        (Kind::Tool, Lang::Rust) | (Kind::Policy, Lang::Rust) => (kind_name(kind), "src/lib.rs"),
        (_, Lang::Python) => (kind_name(kind), "app.py"),
        (Kind::Tool, Lang::Js) => ("tool", "src/tool.js"),
        (Kind::Policy, Lang::Js) => ("policy", "src/policy.js"),
    };
    let try_it = match kind {
        Kind::Tool => format!(
            "agenthost plugin invoke {name}.wasm {} '{{\"text\": \"hi\"}}'",
            name.replace('-', "_")
        ),
        Kind::Policy => {
            format!("agenthost plugin step {name}.wasm --message 'hello' --replay answers.json")
        }
    };
    format!(
        "# {name}\n\nAn Agent Host {kind_word}. The code is in `{source}`; `plugin.toml` names it and lists\n\
         the capabilities it needs; `wit/` is the contract it is built against.\n\n\
         ```sh\nagenthost plugin build            # prints the .wasm path last\n\
         agenthost plugin check {name}.wasm\n{try_it}\n\
         agenthost plugin dev               # rebuild and install into a running server on every change\n```\n"
    )
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Tool => "tool",
        Kind::Policy => "policy",
    }
}

/// Write a new project `parent/name`; returns its directory.
pub fn create(parent: &Path, name: &str, kind: Kind, lang: Lang) -> anyhow::Result<PathBuf> {
    Manifest::parse(&format!("name = \"{name}\"\nversion = \"0.1.0\"\n"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = parent.join(name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    let tool = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{tool}}", &tool)
            .replace("{{kind}}", kind_name(kind))
    };
    let mut files: Vec<(String, String)> = WIT
        .iter()
        .map(|(file, text)| (format!("wit/{file}"), text.to_string()))
        .collect();
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml".into(), fill(RUST_CARGO)));
            files.push((".cargo/config.toml".into(), RUST_CARGO_CONFIG.into()));
            let lib = if kind == Kind::Tool {
                RUST_TOOL
            } else {
                RUST_POLICY
            };
            files.push(("src/lib.rs".into(), fill(lib)));
            for (file, text) in SDK {
                files.push((
                    format!("sdk/{file}"),
                    text.replace(SDK_WIT_IN_REPO, SDK_WIT_IN_PROJECT),
                ));
            }
        }
        Lang::Python => {
            let app = if kind == Kind::Tool {
                PY_TOOL
            } else {
                PY_POLICY
            };
            files.push(("app.py".into(), fill(app)));
            files.push(("agenthost_sdk.py".into(), PY_SDK.into()));
        }
        Lang::Js => {
            files.push(("package.json".into(), fill(JS_PACKAGE)));
            let main = if kind == Kind::Tool {
                JS_TOOL
            } else {
                JS_POLICY
            };
            files.push((format!("src/{}.js", kind_name(kind)), fill(main)));
            files.push(("src/sdk.js".into(), JS_SDK.into()));
        }
    }
    let manifest = Manifest {
        name: name.to_string(),
        version: "0.1.0".into(),
        kind: Some(match kind {
            Kind::Tool => PluginKind::Tool,
            Kind::Policy => PluginKind::Policy,
        }),
        description: match kind {
            Kind::Tool => "Sends text back".into(),
            Kind::Policy => "Asks the model what to do next and does it".into(),
        },
        capabilities: match kind {
            Kind::Tool => Default::default(),
            Kind::Policy => ["llm".parse()?].into(),
        },
    };
    files.push(("plugin.toml".into(), manifest.to_toml()));
    files.push((".gitignore".into(), GITIGNORE.into()));
    files.push(("README.md".into(), readme(name, kind, lang)));
    for (file, text) in files {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}
