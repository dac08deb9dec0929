//! A component that passed validation and is ready to instantiate.

use serde::Serialize;

use super::bindings::current::{policy, types::ToolSpec};
use super::dispatch::{PolicyPre, ToolPre};
use super::{CacheOutcome, InputSchema, Manifest, PluginKind, Shape};

/// What a component says about itself at load.
#[derive(Debug, Clone)]
pub enum Describe {
    Tool(Vec<ToolSpec>),
    Policy(policy::Info),
}

#[derive(Clone)]
pub(crate) enum Pre {
    Tool(ToolPre),
    Policy(PolicyPre),
}

/// Immutable once built: a hot swap replaces the whole `Arc<LoadedPlugin>`,
/// so in-flight calls finish on the version they started with.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub sha256: String,
    pub shape: Shape,
    pub describe: Describe,
    pub cache: CacheOutcome,
    pub(crate) pre: Pre,
    /// Each tool's input schema, compiled at load (tools only).
    pub(crate) schemas: std::collections::BTreeMap<String, InputSchema>,
}

impl LoadedPlugin {
    pub fn kind(&self) -> PluginKind {
        self.shape.kind
    }

    pub fn tools(&self) -> &[ToolSpec] {
        match &self.describe {
            Describe::Tool(t) => t,
            Describe::Policy(_) => &[],
        }
    }

    pub fn summary(&self) -> PluginSummary {
        PluginSummary {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            kind: self.kind(),
            description: self.manifest.description.clone(),
            sha256: self.sha256.clone(),
            wit_version: self.shape.wit_version.clone(),
            capabilities_requested: self
                .manifest
                .capabilities
                .iter()
                .map(|c| c.to_string())
                .collect(),
            imports: self.shape.imports.clone(),
            tools: self
                .tools()
                .iter()
                .map(|t| ToolSummary {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    input_schema: serde_json::from_str(&t.input_schema)
                        .unwrap_or(serde_json::Value::Null),
                })
                .collect(),
            policy: match &self.describe {
                Describe::Policy(i) => Some(PolicySummary {
                    name: i.name.clone(),
                    description: i.description.clone(),
                }),
                Describe::Tool(_) => None,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolSummary {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    pub name: String,
    pub description: String,
}

/// The JSON `agenthost plugin check` prints and the API will return.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub description: String,
    pub sha256: String,
    pub wit_version: String,
    pub capabilities_requested: Vec<String>,
    pub imports: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySummary>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("kind", &self.kind())
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}
