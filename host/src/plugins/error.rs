//! Everything that can go wrong loading or running a plugin, each variant
//! worded for the person who has to act on it.

use std::time::Duration;

use super::manifest::Capability;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("not a WebAssembly file: {0}")]
    NotWasm(String),
    #[error(
        "this is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
         (cargo build --target wasm32-wasip2), or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    #[error(
        "the component implements no world this host knows: it must export \
         `agenthost:plugin/tool` or `agenthost:plugin/policy` of a supported version \
         ({supported}) (it exports: {found})"
    )]
    UnknownWorld { found: String, supported: String },
    #[error(
        "the component was built against agenthost:plugin@{found}, which this host does not support \
         (supported: {supported}); rebuild it against a supported WIT version"
    )]
    UnsupportedVersion { found: String, supported: String },
    #[error(
        "the component was built against agenthost:plugin@{0}, a version still in development; \
         this host serves it only with `allow_unreleased_wit = true` under [plugins]"
    )]
    UnreleasedVersion(String),
    #[error(
        "the component mixes WIT versions ({0}); build all of it against one version of agenthost:plugin"
    )]
    MixedVersions(String),
    #[error("the component imports `{0}`, which this host does not provide")]
    UnsatisfiedImport(String),
    #[error("the manifest says kind = \"{manifest}\" but the component is a {component}")]
    KindMismatch { manifest: String, component: String },
    #[error("invalid manifest: {0}")]
    BadManifest(String),
    #[error("unknown capability `{name}` (known: {known})")]
    UnknownCapability { name: String, known: String },
    #[error("no plugin named `{0}` is installed")]
    NotInstalled(String),
    #[error("no tool named `{0}` is installed")]
    UnknownTool(String),
    #[error("tool `{tool}` is already provided by plugin `{owner}`")]
    DuplicateTool { tool: String, owner: String },
    #[error("plugin `{0}` has no earlier version to roll back to")]
    NoPreviousVersion(String),
    #[error(
        "{name} {version} is already installed with different bytes; \
         give the new build a new version in its manifest"
    )]
    VersionExists { name: String, version: String },
    #[error("{name} {version} is not installed (installed: {installed})")]
    VersionNotInstalled {
        name: String,
        version: String,
        installed: String,
    },
    #[error("plugin `{plugin}` is a {actual}, not a {expected}")]
    WrongKind {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("invalid tool input: {0}")]
    InvalidInput(String),
    #[error("plugin `{plugin}` returned an invalid tool description: {reason}")]
    BadDescription { plugin: String, reason: String },
    #[error("plugin `{plugin}` used more than its CPU time limit of {limit:?} and was stopped")]
    CpuLimit { plugin: String, limit: Duration },
    #[error("plugin `{plugin}` did not finish within its time limit of {limit:?} and was stopped")]
    WallClockTimeout { plugin: String, limit: Duration },
    #[error("plugin `{plugin}` tried to use more than its memory limit of {limit_bytes} bytes and was stopped")]
    MemoryLimit { plugin: String, limit_bytes: usize },
    #[error("plugin `{plugin}` returned {actual_bytes} bytes of output, over the limit of {limit_bytes}")]
    OutputTooLarge {
        plugin: String,
        actual_bytes: usize,
        limit_bytes: usize,
    },
    #[error("plugin `{plugin}` crashed: {reason}")]
    Trap { plugin: String, reason: String },
    #[error("plugin `{plugin}` was not granted `{capability}`")]
    Denied {
        plugin: String,
        capability: Capability,
    },
    #[error("plugin store error: {0}")]
    Io(String),
    #[error("wasmtime: {0}")]
    Engine(String),
}

impl PluginError {
    /// A stable, machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotWasm(_) => "not_wasm",
            Self::CoreModule => "core_module",
            Self::InvalidComponent(_) => "invalid_component",
            Self::UnknownWorld { .. } => "unknown_world",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::UnreleasedVersion(_) => "unreleased_version",
            Self::MixedVersions(_) => "mixed_versions",
            Self::UnsatisfiedImport(_) => "unsatisfied_import",
            Self::KindMismatch { .. } => "kind_mismatch",
            Self::BadManifest(_) => "bad_manifest",
            Self::UnknownCapability { .. } => "unknown_capability",
            Self::NotInstalled(_) => "not_installed",
            Self::UnknownTool(_) => "unknown_tool",
            Self::DuplicateTool { .. } => "duplicate_tool",
            Self::NoPreviousVersion(_) => "no_previous_version",
            Self::VersionExists { .. } => "version_exists",
            Self::VersionNotInstalled { .. } => "version_not_installed",
            Self::WrongKind { .. } => "wrong_kind",
            Self::InvalidInput(_) => "invalid_input",
            Self::BadDescription { .. } => "bad_description",
            Self::CpuLimit { .. } => "cpu_limit",
            Self::WallClockTimeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::Trap { .. } => "trap",
            Self::Denied { .. } => "denied",
            Self::Io(_) => "io",
            Self::Engine(_) => "engine",
        }
    }
}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}
