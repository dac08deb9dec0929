//! `agenthost plugin step`: one step of a policy component, without a
//! server, a sandbox or a token. The history comes from a file of session
//! events (what `GET /api/v1/sessions/{id}/events` returns) and/or a new
//! message; the model is the configured provider, or recorded answers
//! (`--replay`) for offline tests. The decision is printed as JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};

use agenthost::capabilities::{CallContext, LlmBackend};
use agenthost::config::Overrides;
use agenthost::event::{Event, EventBody, Source};
use agenthost::llm::{Providers, RecordedLlm, StandaloneLlm};
use agenthost::plugins::bindings::current::llm::Role;
use agenthost::plugins::bindings::current::policy::{Context, Decision, PolicyError};
use agenthost::plugins::bindings::current::types::HostError;
use agenthost::plugins::{parse_capability_list, EffectiveGrants, PolicyInstance, Registry};
use agenthost::session::history;

use super::plugin::{load_config, read_component, runtime_from, LimitFlags, PrintLog};

/// Bound on a history file, read whole.
const MAX_HISTORY_BYTES: u64 = 64 << 20;

#[derive(Args)]
pub struct StepArgs {
    file: PathBuf,
    /// The person's message, added after the history.
    #[arg(long)]
    message: Option<String>,
    /// Session events as JSON: an array, or the `{"events": [...]}` page the API returns.
    #[arg(long)]
    history: Option<PathBuf>,
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Capabilities to grant. A policy asks the model through `llm`.
    #[arg(long, default_value = "llm")]
    grant: String,
    /// Answer the policy's model calls from this file of recorded answers instead of a provider.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// The operator's tuning for the policy (`context.config`), as JSON.
    #[arg(long, default_value = "{}")]
    config: String,
    /// The state blob of the previous step, as the last `plugin step` printed it (base64).
    #[arg(long)]
    state: Option<String>,
    #[command(flatten)]
    limits: LimitFlags,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HistoryFile {
    Events(Vec<Event>),
    Page { events: Vec<Event> },
}

fn read_history(path: &Path) -> anyhow::Result<Vec<Event>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_HISTORY_BYTES,
        "{} is larger than {MAX_HISTORY_BYTES} bytes",
        path.display()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: HistoryFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a list of session events (an array, or {{\"events\": [...]}})",
            path.display()
        )
    })?;
    Ok(match file {
        HistoryFile::Events(e) | HistoryFile::Page { events: e } => e,
    })
}

fn decision_json(decision: &Decision) -> Value {
    match decision {
        Decision::Act(act) => json!({
            "type": "act",
            "text": act.text,
            "calls": act.calls.iter().map(|c| json!({
                "id": c.id,
                "name": c.name,
                // The input as the model would see it, or the raw text if it is not JSON.
                "input": serde_json::from_str::<Value>(&c.input).unwrap_or_else(|_| json!(c.input)),
            })).collect::<Vec<_>>(),
        }),
        Decision::Reply(text) => json!({"type": "reply", "text": text}),
        Decision::Finish(text) => json!({"type": "finish", "text": text}),
    }
}

fn host_error(e: &HostError) -> (&'static str, &str) {
    match e {
        HostError::Denied(m) => ("denied", m),
        HostError::NoSandbox(m) => ("no_sandbox", m),
        HostError::Invalid(m) => ("invalid", m),
        HostError::Timeout(m) => ("timeout", m),
        HostError::Failed(m) => ("failed", m),
    }
}

pub async fn step(args: StepArgs, data_dir: &Path) -> anyhow::Result<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    anyhow::ensure!(
        args.message.is_some() || args.history.is_some(),
        "give the policy something to decide on: --message TEXT and/or --history FILE"
    );
    serde_json::from_str::<Value>(&args.config).context("--config is not JSON")?;
    let state = args
        .state
        .as_deref()
        .map(|s| b64.decode(s))
        .transpose()
        .context("--state is not base64")?;

    let (bytes, manifest, default_name) = read_component(&args.file, args.manifest.as_deref())?;
    let granted = parse_capability_list(&args.grant)?;
    let mut config = load_config(data_dir)?;
    config.apply_overrides(Overrides {
        anthropic_api_key: std::env::var("ANTHROPIC_API_KEY").ok(),
        anthropic_base_url: std::env::var("ANTHROPIC_BASE_URL").ok(),
        openai_api_key: std::env::var("OPENAI_API_KEY").ok(),
        openai_base_url: std::env::var("OPENAI_BASE_URL").ok(),
        ..Overrides::default()
    })?;
    let runtime = runtime_from(&config, data_dir, &args.limits)?;
    let plugin = runtime.load(bytes, manifest, &default_name).await?;

    let mut events = match &args.history {
        Some(path) => read_history(path)?,
        None => Vec::new(),
    };
    if let Some(text) = args.message {
        events.push(Event {
            id: "cli".into(),
            seq: events.last().map_or(1, |e| e.seq + 1),
            session_id: "cli".into(),
            source: Source::User,
            ts: 0,
            body: EventBody::user_message(text),
        });
    }
    let messages = history::messages(&events);
    let step = messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .count() as u32;
    // The tools a session on this data directory would offer.
    let tools = Registry::open(runtime.clone(), data_dir)
        .await?
        .tool_specs();

    let recorded = match &args.replay {
        Some(path) => Some(Arc::new(RecordedLlm::load(path)?)),
        None => None,
    };
    let llm: Option<Arc<dyn LlmBackend>> = match &recorded {
        Some(r) => Some(r.clone()),
        None => {
            let providers = Providers::from_config(&config.llm)?;
            if !providers.has_anthropic() && !providers.has_openai() {
                eprintln!(
                    "note: no model provider is configured (ANTHROPIC_API_KEY, OPENAI_BASE_URL): \
                     the policy's llm calls will fail; --replay FILE answers them from a recording"
                );
            }
            // The model's text as it streams, so a slow answer shows progress.
            Some(Arc::new(StandaloneLlm::new(
                providers,
                Arc::new(|delta: &str| eprint!("{delta}")),
            )))
        }
    };
    let ctx = CallContext {
        llm,
        log: Arc::new(PrintLog),
        ..CallContext::default()
    };
    let grants = EffectiveGrants::new(
        &plugin.manifest.name,
        plugin.manifest.capabilities.clone(),
        granted,
    );
    // What the policy was shown, so an author can tell a history file was read as meant.
    let shown = json!({"step": step, "messages": messages.len(), "tools": tools.len()});
    let mut instance = PolicyInstance::new(runtime.clone(), Arc::new(plugin), grants, ctx)?;
    let context = Context {
        session_id: "cli".into(),
        step,
        history: messages,
        tools,
        state,
        config: args.config,
    };
    let outcome = instance.step(context).await?;
    let mut out = match outcome {
        Ok(output) => json!({
            "decision": decision_json(&output.decision),
            "state": output.state.map(|s| b64.encode(s)),
            "context": shown,
        }),
        Err(PolicyError::Host(e)) => {
            let (kind, message) = host_error(&e);
            super::plugin::print_json(&json!({"error": {"kind": kind, "message": message}}))?;
            anyhow::bail!("the policy stopped on a host error ({kind}): {message}")
        }
        Err(PolicyError::Failed(m)) => {
            super::plugin::print_json(&json!({"error": {"kind": "failed", "message": m}}))?;
            anyhow::bail!("the policy failed: {m}")
        }
    };
    if let Some(r) = recorded {
        out["replayed_answers"] = json!(r.used());
    }
    super::plugin::print_json(&out)
}
