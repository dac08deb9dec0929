//! Server configuration: a TOML file, overridden by environment variables
//! and flags (those are parsed by the CLI and applied with
//! [`ServeConfig::apply_overrides`]).
//!
//! Every section has working defaults, so `agenthost serve` with no file
//! runs: SQLite under the data directory, a loopback listener, one warm
//! sandbox, and the scripted policy when no LLM key is configured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::llm::ProvidersConfig;
use crate::plugins::Limits;
use crate::sandbox::{PoolConfig, SandboxConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on. Loopback by default: put a TLS proxy in front
    /// to expose the host.
    pub listen: SocketAddr,
    /// `sqlite:PATH` or `postgres://...`; default: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Policy for new sessions; default: the first installed of
    /// anthropic-policy (with an Anthropic key), openai-policy (with an
    /// OpenAI-compatible endpoint), scripted-policy.
    pub default_policy: Option<String>,
    /// The chat page's built assets (`web/dist`, made by `npm run build` in
    /// `web/`, which setup runs); default: `web/dist` under the working
    /// directory if it exists.
    pub web_dir: Option<PathBuf>,
    /// Largest request body (plugin uploads included), in bytes.
    pub max_body_bytes: usize,
    pub sandbox: SandboxSection,
    pub agent: AgentConfig,
    pub quotas: QuotaConfig,
    pub approval: ApprovalConfig,
    pub recording: crate::session::RecordingConfig,
    pub plugins: PluginsSection,
    pub limits: Limits,
    pub llm: ProvidersConfig,
    /// MCP servers whose tools policies get (`[mcp.servers.NAME]`).
    pub mcp: crate::mcp::McpConfig,
    /// Hosts sharing one PostgreSQL database as a fleet (`[fleet]`).
    pub fleet: crate::fleet::FleetConfig,
    /// When sessions' desktop files are saved (`[snapshots]`).
    pub snapshots: crate::session::SnapshotConfig,
    /// Per-policy settings (`[policies.anthropic-policy]`), given to the
    /// policy's steps as JSON.
    pub policies: BTreeMap<String, toml::Table>,
    /// Model prices in US dollars per million tokens
    /// (`[prices."claude-sonnet-4-5"] input = 3.0 ...`), over the list
    /// prices the host knows; for each session's cost estimate.
    pub prices: BTreeMap<String, crate::llm::Price>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            default_policy: None,
            web_dir: None,
            max_body_bytes: 64 << 20,
            sandbox: SandboxSection::default(),
            agent: AgentConfig::default(),
            quotas: QuotaConfig::default(),
            approval: ApprovalConfig::default(),
            recording: Default::default(),
            plugins: PluginsSection::default(),
            limits: Limits::default(),
            llm: ProvidersConfig::default(),
            mcp: Default::default(),
            fleet: Default::default(),
            snapshots: Default::default(),
            policies: BTreeMap::new(),
            prices: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSection {
    pub image: String,
    pub screen_width: u32,
    pub screen_height: u32,
    pub memory_mb: i64,
    pub cpus: f64,
    /// Sandboxes kept booted for new sessions.
    pub warm: usize,
    pub max_running: usize,
    /// Seconds a session's sandbox may sit unused before it is stopped;
    /// 0 never stops it.
    pub idle_timeout_secs: u64,
    /// Label value marking this host's containers. Two hosts on one Docker
    /// engine need different owners.
    pub owner: String,
    /// Where sandboxes may send traffic: "internet" (default; never
    /// link-local, private ranges or this machine), "none", or
    /// "unfiltered" (no iptables rules; for hosts without them).
    pub egress: crate::sandbox::Egress,
    /// Size of the agent's writable home, in MiB.
    pub home_mb: u32,
    /// Size of the sandbox's /tmp, in MiB.
    pub tmp_mb: u32,
}

impl Default for SandboxSection {
    fn default() -> Self {
        let s = SandboxConfig::default();
        let p = PoolConfig::default();
        Self {
            image: s.image,
            screen_width: s.screen.0,
            screen_height: s.screen.1,
            memory_mb: s.memory_bytes >> 20,
            cpus: s.nano_cpus as f64 / 1e9,
            warm: p.warm,
            max_running: p.max_running,
            idle_timeout_secs: p.idle_timeout.map_or(0, |d| d.as_secs()),
            owner: s.owner,
            egress: s.egress,
            home_mb: s.home_mb,
            tmp_mb: s.tmp_mb,
        }
    }
}

impl SandboxSection {
    pub fn sandbox_config(&self) -> SandboxConfig {
        SandboxConfig {
            image: self.image.clone(),
            screen: (self.screen_width, self.screen_height),
            memory_bytes: self.memory_mb << 20,
            nano_cpus: (self.cpus * 1e9) as i64,
            owner: self.owner.clone(),
            egress: self.egress,
            home_mb: self.home_mb,
            tmp_mb: self.tmp_mb,
            ..SandboxConfig::default()
        }
    }

    pub fn pool_config(&self) -> PoolConfig {
        PoolConfig {
            warm: self.warm,
            max_running: self.max_running,
            idle_timeout: (self.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(self.idle_timeout_secs)),
        }
    }
}

/// Bounds on one session's agent loop.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Policy steps per user message before the session pauses.
    pub max_steps: u32,
    /// Input plus output tokens a session may spend in total.
    pub token_budget: u64,
    /// Largest user message, in bytes.
    pub max_message_bytes: usize,
    /// Seconds a session may sit idle (not running, nobody connected)
    /// before its actor is evicted: its sandbox and policy instance are
    /// released and it comes back from the store on next use. 0: never.
    pub evict_idle_secs: u64,
    /// The same tool call with the same input and the same result (for
    /// the computer tool: an unchanged screen) this many times in a row
    /// pauses the session as looping. 0: never.
    pub loop_guard_repeats: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_steps: 50,
            token_budget: 5_000_000,
            max_message_bytes: 64 << 10,
            evict_idle_secs: 600,
            loop_guard_repeats: 4,
        }
    }
}

impl AgentConfig {
    pub fn evict_after(&self) -> Option<Duration> {
        (self.evict_idle_secs > 0).then(|| Duration::from_secs(self.evict_idle_secs))
    }
}

/// Which tool calls wait for a person's approval before they run
/// (`[approval]`). A person can also switch "ask before acting" on for one
/// session, which asks before every action.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Ask before every action in every session. Looking (a screenshot,
    /// the cursor position, a zoom, viewing a file) never asks.
    pub every_action: bool,
    /// Tools whose every call asks (`["editor"]`).
    pub tools: Vec<String>,
    /// Regular expressions over the `bash` tool's command; a command any
    /// of them matches asks (`['^\s*sudo\b', '\brm\s+-rf\b']`).
    pub bash: Vec<String>,
    /// Seconds a request waits for an answer; unanswered, it is a denial.
    pub timeout_secs: u64,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self {
            every_action: false,
            tools: Vec::new(),
            bash: Vec::new(),
            timeout_secs: 600,
        }
    }
}

/// How components are accepted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsSection {
    /// Accept components built against a WIT version still in development
    /// (a pre-release such as 0.3.0-dev). Off: only released versions load.
    pub allow_unreleased_wit: bool,
}

/// Per-user fair use across all of a user's sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Sandboxes one user may hold at once; default half of
    /// `sandbox.max_running` (at least 1), so one user never holds them all.
    pub sandboxes_per_user: Option<usize>,
    /// Sessions of one user running their agent at once; default: the
    /// sandbox cap.
    pub running_per_user: Option<usize>,
    /// LLM tokens (input + output) one user may spend per UTC day, across
    /// sessions; 0: no daily cap (the per-session budget still applies).
    pub tokens_per_day: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            sandboxes_per_user: None,
            running_per_user: None,
            tokens_per_day: 10_000_000,
        }
    }
}

/// The per-user caps in force, defaults resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCaps {
    pub sandboxes: usize,
    pub running: usize,
    pub tokens_per_day: u64,
}

impl ServeConfig {
    pub fn user_caps(&self) -> UserCaps {
        let sandboxes = self
            .quotas
            .sandboxes_per_user
            .unwrap_or((self.sandbox.max_running / 2).max(1));
        UserCaps {
            sandboxes,
            running: self.quotas.running_per_user.unwrap_or(sandboxes),
            tokens_per_day: self.quotas.tokens_per_day,
        }
    }
}

/// Values given as flags or environment variables, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub default_policy: Option<String>,
    pub sandbox_image: Option<String>,
    pub warm: Option<usize>,
    pub sandbox_owner: Option<String>,
    pub anthropic_api_key: Option<String>,
    pub anthropic_base_url: Option<String>,
    pub openai_api_key: Option<String>,
    pub openai_base_url: Option<String>,
    pub web_dir: Option<PathBuf>,
    /// Join the fleet on the database (`--fleet`).
    pub fleet: bool,
    pub host_id: Option<String>,
    pub advertise_url: Option<String>,
}

impl ServeConfig {
    /// Reads `path`; a missing file at the default location means defaults.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    pub fn apply_overrides(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.database_url {
            self.database_url = Some(v);
        }
        if let Some(v) = o.default_policy {
            self.default_policy = Some(v);
        }
        if let Some(v) = o.web_dir {
            self.web_dir = Some(v);
        }
        if let Some(v) = o.sandbox_image {
            self.sandbox.image = v;
        }
        if let Some(v) = o.warm {
            self.sandbox.warm = v;
        }
        if let Some(v) = o.sandbox_owner {
            self.sandbox.owner = v;
        }
        if o.fleet {
            self.fleet.enabled = true;
        }
        if let Some(v) = o.host_id {
            self.fleet.host_id = Some(v);
        }
        if let Some(v) = o.advertise_url {
            self.fleet.advertise_url = Some(v);
        }
        let anthropic = &mut self.llm.anthropic;
        if let Some(v) = o.anthropic_api_key.filter(|v| !v.is_empty()) {
            anthropic.api_key = Some(v.into());
        }
        if let Some(v) = o.anthropic_base_url {
            anthropic.base_url = v;
        }
        let openai = &mut self.llm.openai;
        if let Some(v) = o.openai_api_key.filter(|v| !v.is_empty()) {
            openai.api_key = Some(v.into());
        }
        if let Some(v) = o.openai_base_url {
            openai.base_url = Some(v);
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.mcp.validate().map_err(ConfigError::Invalid)?;
        if self.sandbox.max_running == 0 {
            return Err(ConfigError::Invalid(
                "sandbox.max_running must be > 0".into(),
            ));
        }
        if self.sandbox.warm > self.sandbox.max_running {
            return Err(ConfigError::Invalid(
                "sandbox.warm cannot exceed sandbox.max_running".into(),
            ));
        }
        if self.agent.max_steps == 0 {
            return Err(ConfigError::Invalid("agent.max_steps must be > 0".into()));
        }
        if self.approval.timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "approval.timeout_secs must be > 0".into(),
            ));
        }
        crate::session::ApprovalRules::new(&self.approval)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    pub fn web_dir(&self) -> Option<PathBuf> {
        self.web_dir.clone().or_else(|| {
            let default = PathBuf::from("web/dist");
            default.join("index.html").is_file().then_some(default)
        })
    }

    pub fn database_url(&self, data_dir: &Path) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("agenthost.db").display()))
    }
}
