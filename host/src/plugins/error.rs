//! Everything that can go wrong with a plugin, split by the phase it went
//! wrong in, each variant worded for the person who has to act on it.
//!
//! * [`LoadError`]: reading, validating, compiling and linking a component
//!   (the author fixes the component).
//! * [`RegistryError`]: what is installed and how (the operator fixes the
//!   manifest or the command).
//! * [`InvokeError`]: running a loaded plugin (the limits or the plugin's
//!   own code stopped it).
//!
//! Failures of something underneath (wasmtime, the file system, a parser)
//! are kept as [`std::error::Error::source`], not flattened into the
//! message: [`PluginError::report`] renders the whole chain where a person
//! reads it, and the CLI prints it through `anyhow`.

use std::time::Duration;

/// An underlying error kept as a source.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The engine itself (not one plugin) failed: setting it up, or a task
    /// the host ran for it.
    #[error("the WebAssembly engine failed while {doing}")]
    Engine {
        doing: &'static str,
        #[source]
        source: Source,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file: {0}")]
    NotWasm(String),
    #[error(
        "this is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
         (cargo build --target wasm32-wasip2), or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("invalid component")]
    InvalidComponent(#[source] Source),
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
    /// The linker refused the component's imports (a signature that does
    /// not match the host's, for instance).
    #[error("the component's imports do not match what this host provides")]
    Link(#[source] Source),
    /// The component says it implements a version this host knows, but its
    /// functions' types differ from it: its WIT was edited without a new
    /// version number.
    #[error(
        "the component's agenthost:plugin@{version} differs from this host's {version} contract \
         ({detail}): its WIT was changed under the same version. Build it against this host's \
         wit/v{version} unchanged (`agenthost plugin new` copies it into a project), or give \
         a changed contract a new version"
    )]
    WitDrift { version: String, detail: String },
    #[error("the manifest says kind = \"{manifest}\" but the component is a {component}")]
    KindMismatch { manifest: String, component: String },
    #[error("plugin `{plugin}` returned an invalid tool description: {reason}")]
    BadDescription { plugin: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
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
    #[error("the plugin store could not {doing}")]
    Io {
        doing: String,
        #[source]
        source: Source,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("invalid tool input: {0}")]
    InvalidInput(String),
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
    /// The guest trapped. `stderr` is the tail of what it wrote, which is
    /// often the only clue (a Python traceback, a Rust panic message).
    #[error("plugin `{plugin}` crashed{}", stderr_suffix(.stderr))]
    Trap {
        plugin: String,
        stderr: String,
        #[source]
        source: Source,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (it wrote: {stderr})")
    }
}

impl PluginError {
    /// Wraps a failure of the engine itself.
    pub(crate) fn engine(doing: &'static str, source: impl Into<Source>) -> Self {
        Self::Engine {
            doing,
            source: source.into(),
        }
    }

    /// A stable, machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Load(e) => e.code(),
            Self::Registry(e) => e.code(),
            Self::Invoke(e) => e.code(),
            Self::Engine { .. } => "engine",
        }
    }

    /// The message and every underlying cause, `: `-separated: what an API
    /// response or a tool result shows.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        // `transparent` forwards `source` to the inner error's own source,
        // so this walk starts below the message already printed.
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }
}

impl LoadError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotWasm(_) => "not_wasm",
            Self::CoreModule => "core_module",
            Self::InvalidComponent(_) => "invalid_component",
            Self::UnknownWorld { .. } => "unknown_world",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::UnreleasedVersion(_) => "unreleased_version",
            Self::MixedVersions(_) => "mixed_versions",
            Self::UnsatisfiedImport(_) | Self::Link(_) => "unsatisfied_import",
            Self::WitDrift { .. } => "wit_drift",
            Self::KindMismatch { .. } => "kind_mismatch",
            Self::BadDescription { .. } => "bad_description",
        }
    }

    /// wasmtime refused the bytes as a component.
    pub(crate) fn invalid(e: wasmtime::Error) -> Self {
        Self::InvalidComponent(e.into())
    }
}

impl RegistryError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadManifest(_) => "bad_manifest",
            Self::UnknownCapability { .. } => "unknown_capability",
            Self::NotInstalled(_) => "not_installed",
            Self::UnknownTool(_) => "unknown_tool",
            Self::DuplicateTool { .. } => "duplicate_tool",
            Self::NoPreviousVersion(_) => "no_previous_version",
            Self::VersionExists { .. } => "version_exists",
            Self::VersionNotInstalled { .. } => "version_not_installed",
            Self::WrongKind { .. } => "wrong_kind",
            Self::Io { .. } => "io",
        }
    }

    /// A file-system or encoding failure while doing `doing` (worded to
    /// follow "could not").
    pub(crate) fn io(doing: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::Io {
            doing: doing.into(),
            source: source.into(),
        }
    }
}

impl InvokeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid_input",
            Self::CpuLimit { .. } => "cpu_limit",
            Self::WallClockTimeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::Trap { .. } => "trap",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_every_cause_once_and_the_code_comes_from_the_phase() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only");
        let e: PluginError = RegistryError::io("write state.json", io).into();
        assert_eq!(e.code(), "io");
        assert_eq!(
            e.report(),
            "the plugin store could not write state.json: read-only"
        );
        let source = std::error::Error::source(&e).expect("the io error is kept as a source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());

        let trap: PluginError = InvokeError::Trap {
            plugin: "p".into(),
            stderr: "panicked at 'boom'".into(),
            source: "wasm trap: unreachable".into(),
        }
        .into();
        assert_eq!(trap.code(), "trap");
        assert_eq!(
            trap.report(),
            "plugin `p` crashed (it wrote: panicked at 'boom'): wasm trap: unreachable"
        );
        let plain: PluginError = LoadError::CoreModule.into();
        assert_eq!(plain.report(), plain.to_string());
    }
}
