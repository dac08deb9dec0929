//! Sessions: one actor per session runs the agent loop and owns the
//! session's sandbox and policy instance; everything else (REST, WebSocket)
//! talks to it through a [`SessionHandle`].
//!
//! The stored event log is the truth. The actor appends to it, clients
//! replay it by cursor, and after a host restart a session that was
//! running comes back paused with its history intact.

mod actor;
mod approval;
pub mod history;
mod hub;
mod llm;
mod log;
mod loop_guard;
mod quota;
mod recording;
mod run;
mod snapshots;
mod switch;
mod tool_call;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

pub use approval::{ApprovalRules, RulesError, MAX_NOTE_CHARS};
pub use hub::{Frame, Hub};
pub use log::EventLog;
pub use quota::{Permit, Quotas};
pub use recording::{Recorder, Recording, RecordingConfig, RecordingError};
pub use snapshots::{SnapshotConfig, SnapshotError, Snapshots};

use crate::config::AgentConfig;
use crate::event::Event;
use crate::llm::Providers;
use crate::plugins::bindings::current::types::ToolUse;
use crate::plugins::{Registry, RegistryError};
use crate::sandbox::WarmPool;
use crate::store::{
    ForkOrigin, Session, SessionSettings, SessionStatus, Snapshot, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("{0}")]
    InvalidState(String),
    #[error("no policy named `{0}` is installed")]
    UnknownPolicy(String),
    #[error("`{0}` is not a policy")]
    NotAPolicy(String),
    #[error("the message is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the message is empty")]
    EmptyMessage,
    #[error("{0}")]
    InvalidInput(String),
    #[error("the session has no desktop: {0}")]
    NoSandbox(String),
    #[error("the session's actor stopped")]
    Stopped,
    /// A per-user cap; `code` names which.
    #[error("{message}")]
    Quota {
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("all {0} desktops are in use; try again shortly")]
    Busy(usize),
    #[error("the host is stopping")]
    ShuttingDown,
    /// Another host of the fleet runs the session.
    #[error("the session runs on host {}", .0.id)]
    Elsewhere(crate::store::FleetHost),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            e => Self::Store(e),
        }
    }
}

/// That `name` is an installed policy, as the error a client should see.
/// "TITLE (fork at N)", within the API's title bound.
fn fork_title(title: &str, at: i64) -> String {
    let base: String = if title.is_empty() { "session" } else { title }
        .chars()
        .take(160)
        .collect();
    format!("{base} (fork at {at})")
}

fn check_policy(registry: &Registry, name: &str) -> Result<(), SessionError> {
    match registry.policy(name) {
        Ok(_) => Ok(()),
        Err(RegistryError::WrongKind { .. }) => Err(SessionError::NotAPolicy(name.into())),
        Err(_) => Err(SessionError::UnknownPolicy(name.into())),
    }
}

/// What the server shares with every session.
pub struct Shared {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub pool: Option<Arc<WarmPool>>,
    pub providers: Providers,
    pub agent: AgentConfig,
    /// Operator configuration per policy, passed to its steps as JSON.
    pub policy_config: BTreeMap<String, serde_json::Value>,
    pub default_policy: Option<String>,
    pub quotas: Quotas,
    /// Which tool calls wait for a person (`[approval]`).
    pub approval: ApprovalRules,
    pub recording: RecordingConfig,
    /// Model prices, for each session's cost estimate.
    pub prices: Arc<crate::llm::Prices>,
    /// Where run recordings go, a directory per session; `None`: nowhere
    /// (recording is refused).
    pub recordings_dir: Option<std::path::PathBuf>,
    /// Where plugin log lines go: the server log and live followers.
    pub plugin_logs: Arc<crate::plugins::PluginLogs>,
    /// MCP servers started in each session's sandbox for its runs.
    pub mcp: crate::mcp::McpConfig,
    /// What those servers offered when last started.
    pub mcp_catalog: Arc<crate::mcp::McpCatalog>,
    /// This host's name, shown as the host running its sessions.
    pub host_id: Arc<str>,
    /// The fleet this host is part of, if any.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where and when desktop files are saved (`[snapshots]`).
    pub snapshots: Snapshots,
}

impl Shared {
    /// A session's recordings directory. Session ids are made by the
    /// store from letters and digits, so the path stays inside.
    pub fn recordings_of(&self, session_id: &str) -> Option<std::path::PathBuf> {
        self.recordings_dir.as_ref().map(|d| d.join(session_id))
    }
}

/// The parts of a session's state that only exist while the host runs.
#[derive(Debug, Clone)]
pub struct LiveState {
    pub status: SessionStatus,
    pub policy: String,
    /// A policy switch requested while a step runs; applied before the next.
    pub pending_policy: Option<String>,
    /// The sandbox container's name, once one is attached.
    pub sandbox: Option<String>,
    /// The person drives the desktop (live view input allowed, agent paused).
    pub user_control: bool,
    /// Where the live view connects; never sent to clients.
    pub vnc: Option<crate::sandbox::VncTarget>,
    /// When the actor last took a command or finished a run (eviction).
    pub last_active: Instant,
    /// The session's switches (ask before acting, ...).
    pub settings: SessionSettings,
    /// The tool call waiting for the person's approval, if one is.
    pub awaiting_approval: Option<crate::event::ApprovalRequested>,
}

impl LiveState {
    /// Holds a desktop nobody uses now (no run, no person), so it gives it
    /// up when another session needs the room.
    fn gives_desktop_up(&self) -> bool {
        self.sandbox.is_some() && self.status != SessionStatus::Running && !self.user_control
    }
}

/// A person's answer to an approval request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub tool_use_id: String,
    pub approve: bool,
    pub note: String,
}

pub(crate) enum Command {
    UserMessage(String, oneshot::Sender<Result<Event, SessionError>>),
    Pause(oneshot::Sender<Result<(), SessionError>>),
    Resume(oneshot::Sender<Result<(), SessionError>>),
    Cancel(oneshot::Sender<Result<(), SessionError>>),
    SwitchPolicy(String, oneshot::Sender<Result<(), SessionError>>),
    Delete(oneshot::Sender<Result<(), SessionError>>),
    AttachSandbox(oneshot::Sender<Result<(), SessionError>>),
    TakeOver(oneshot::Sender<Result<(), SessionError>>),
    HandBack(oneshot::Sender<Result<(), SessionError>>),
    Decide(Decision, oneshot::Sender<Result<(), SessionError>>),
    Settings(SessionSettings, oneshot::Sender<Result<(), SessionError>>),
    /// A tool call from outside the agent loop (an MCP client): stored,
    /// then handed back to be run by the caller.
    External(
        ToolUse,
        String,
        oneshot::Sender<Result<ExternalCall, SessionError>>,
    ),
    /// Save the desktop's files now (a fork of the session as it is);
    /// `None` when the session has no desktop.
    Snapshot(oneshot::Sender<Result<Option<Snapshot>, SessionError>>),
    /// Give the sandbox back (another session needs the room); refused
    /// while a run or a person uses it.
    ReleaseSandbox(oneshot::Sender<Result<(), SessionError>>),
    /// Stop the actor, releasing sandbox and policy instance, if it has
    /// been idle for the duration with nobody watching; replies whether it
    /// stopped. The actor decides, because only it knows whether a command
    /// it took since the evictor looked started something.
    Evict(Duration, oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
    user_id: Arc<str>,
    /// The host running the actor (this one).
    pub host: Arc<str>,
    pub log: EventLog,
    pub state: watch::Receiver<LiveState>,
}

impl SessionHandle {
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SessionError>>) -> Command,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(command(tx))
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)?
    }

    pub async fn user_message(&self, text: String) -> Result<Event, SessionError> {
        self.call(|tx| Command::UserMessage(text, tx)).await
    }

    pub async fn pause(&self) -> Result<(), SessionError> {
        self.call(Command::Pause).await
    }

    pub async fn resume(&self) -> Result<(), SessionError> {
        self.call(Command::Resume).await
    }

    pub async fn cancel(&self) -> Result<(), SessionError> {
        self.call(Command::Cancel).await
    }

    pub async fn switch_policy(&self, policy: String) -> Result<(), SessionError> {
        self.call(|tx| Command::SwitchPolicy(policy, tx)).await
    }

    /// Makes sure a sandbox is attached (the live view needs one).
    pub async fn attach_sandbox(&self) -> Result<(), SessionError> {
        self.call(Command::AttachSandbox).await
    }

    /// The person takes the desktop: the agent pauses after its current
    /// step and live-view input is let through.
    pub async fn take_over(&self) -> Result<(), SessionError> {
        self.call(Command::TakeOver).await
    }

    /// Control back to the agent; a session the takeover paused resumes.
    pub async fn hand_back(&self) -> Result<(), SessionError> {
        self.call(Command::HandBack).await
    }

    /// Approves or denies the tool call waiting for the person.
    pub async fn decide(&self, decision: Decision) -> Result<(), SessionError> {
        if decision.note.chars().count() > MAX_NOTE_CHARS {
            return Err(SessionError::InvalidInput(format!(
                "a note has at most {MAX_NOTE_CHARS} characters"
            )));
        }
        self.call(|tx| Command::Decide(decision, tx)).await
    }

    /// Replaces the session's switches; a run in progress follows them
    /// from its next tool call.
    pub async fn set_settings(&self, settings: SessionSettings) -> Result<(), SessionError> {
        self.call(|tx| Command::Settings(settings, tx)).await
    }

    pub fn live(&self) -> LiveState {
        self.state.borrow().clone()
    }

    /// Saves the desktop's files now; `None` if the session has none.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, SessionError> {
        self.call(Command::Snapshot).await
    }

    /// Stores `call` as the session's next tool call, marked as asked for
    /// `via` a client (`mcp`), and returns what runs it. Refused while the
    /// agent runs or a person drives the desktop: one driver at a time.
    pub async fn external_call(
        &self,
        call: ToolUse,
        via: &str,
    ) -> Result<ExternalCall, SessionError> {
        let via = via.to_string();
        self.call(|tx| Command::External(call, via, tx)).await
    }
}

/// A tool call an outside client (MCP) asked for, already stored: run it
/// with [`ExternalCall::run`]. While it is held the session counts as
/// busy, so it is neither evicted nor stripped of its desktop mid-call.
pub struct ExternalCall {
    tools: tool_call::ToolCalls,
    call: ToolUse,
    _busy: tool_call::Busy,
}

impl ExternalCall {
    fn new(tools: tool_call::ToolCalls, call: ToolUse, busy: tool_call::Busy) -> Self {
        Self {
            tools,
            call,
            _busy: busy,
        }
    }

    /// Runs the call and stores its result. If `cancelled` fires first the
    /// call is dropped where it is and its result says so, so the log
    /// stays whole.
    pub async fn run(
        self,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> Result<Event, StoreError> {
        let (id, name) = (self.call.id.clone(), self.call.name.clone());
        tokio::select! {
            result = self.tools.invoke(self.call) => result,
            () = cancelled => {
                let result = crate::event::EventBody::not_run(id, name, "cancelled by the client");
                self.tools.log.append(crate::event::Source::Host, result).await
            }
        }
    }
}

/// The sessions whose actors run on this host.
pub struct Sessions {
    shared: Arc<Shared>,
    live: Mutex<HashMap<String, SessionHandle>>,
    /// Set by `shutdown`: no actor starts after it.
    closing: std::sync::atomic::AtomicBool,
}

impl Sessions {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
            live: Mutex::default(),
            closing: Default::default(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionHandle>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Actors running now (sessions not evicted).
    pub fn live_count(&self) -> usize {
        self.live().len()
    }

    fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The policy new sessions get: the configured one, else the best
    /// installed policy the configured providers can serve.
    pub fn default_policy(&self) -> String {
        if let Some(p) = &self.shared.default_policy {
            return p.clone();
        }
        let installed = |n: &str| self.shared.registry.policy(n).is_ok();
        let providers = &self.shared.providers;
        if providers.has_anthropic() && installed("anthropic-policy") {
            "anthropic-policy".into()
        } else if providers.has_openai() && installed("openai-policy") {
            "openai-policy".into()
        } else {
            "scripted-policy".into()
        }
    }

    /// Creates a session and claims its desktop. A user at their sandbox
    /// cap, or a host with every desktop busy, is refused (nothing is
    /// created) rather than left waiting; idle sessions give their
    /// desktops up first.
    pub async fn create(
        &self,
        user: &str,
        title: &str,
        policy: Option<String>,
        settings: SessionSettings,
    ) -> Result<(Session, SessionHandle), SessionError> {
        if self.closing() {
            return Err(SessionError::ShuttingDown);
        }
        let policy = policy.unwrap_or_else(|| self.default_policy());
        check_policy(&self.shared.registry, &policy)?;
        self.make_room(user, None).await;
        let session = self
            .shared
            .store
            .create_session_with(user, title, &policy, settings)
            .await?;
        if let Some(fleet) = &self.shared.fleet {
            // A new session's lease is free: this cannot lose.
            fleet.acquire(&session.id).await?;
        }
        let handle = self.spawn(&session)?;
        match handle.attach_sandbox().await {
            Err(e @ (SessionError::Quota { .. } | SessionError::Busy(_))) => {
                let _ = self.delete(user, &session.id).await;
                Err(e)
            }
            // No Docker: the session works without a desktop, and says so.
            _ => Ok((session, handle)),
        }
    }

    /// Before `user` needs a desktop (for `except`, a session of theirs
    /// that has none): if they are at their cap, their least recently used
    /// idle session gives its desktop back; if the host has none left, the
    /// least recently used idle session of anyone does.
    pub async fn make_room(&self, user: &str, except: Option<&str>) {
        if self.shared.quotas.sandboxes_held(user) >= self.shared.quotas.caps().sandboxes {
            self.release_idle(|h| &*h.user_id == user, except).await;
        }
        if let Some(pool) = &self.shared.pool {
            let stats = pool.stats();
            if stats.warm == 0 && stats.running >= pool.config().max_running {
                self.release_idle(|_| true, except).await;
            }
        }
    }

    /// Asks the least recently active idle session with a desktop among
    /// those `pick` selects to give it back.
    async fn release_idle(&self, pick: impl Fn(&SessionHandle) -> bool, except: Option<&str>) {
        let candidate = self
            .live()
            .iter()
            .filter(|(id, h)| Some(id.as_str()) != except && pick(h))
            .filter(|(_, h)| h.state.borrow().gives_desktop_up())
            .min_by_key(|(_, h)| h.state.borrow().last_active)
            .map(|(_, h)| h.clone());
        if let Some(h) = candidate {
            let _ = h.call(Command::ReleaseSandbox).await;
        }
    }

    /// The user's session, its actor started if it was not running.
    pub async fn open(
        &self,
        user: &str,
        id: &str,
    ) -> Result<(Session, SessionHandle), SessionError> {
        if self.closing() {
            return Err(SessionError::ShuttingDown);
        }
        let session = self.shared.store.session(user, id).await?;
        if let Some(h) = self.live().get(id) {
            if !h.tx.is_closed() {
                return Ok((session, h.clone()));
            }
        }
        if let Some(fleet) = &self.shared.fleet {
            if let Some(owner) = fleet.acquire(id).await? {
                return Err(SessionError::Elsewhere(owner));
            }
        }
        let handle = self.spawn(&session)?;
        Ok((session, handle))
    }

    /// The session's handle if its actor is running.
    pub fn running(&self, id: &str) -> Option<SessionHandle> {
        self.live().get(id).cloned()
    }

    fn spawn(&self, session: &Session) -> Result<SessionHandle, SessionError> {
        self.spawn_with(session, None)
    }

    /// Starts the session's actor (or returns the running one). Checked
    /// under the same lock `shutdown` takes, so no actor outlives a stop.
    fn spawn_with(
        &self,
        session: &Session,
        recovered: Option<oneshot::Sender<()>>,
    ) -> Result<SessionHandle, SessionError> {
        let mut live = self.live();
        if self.closing() {
            return Err(SessionError::ShuttingDown);
        }
        if let Some(h) = live.get(&session.id) {
            if !h.tx.is_closed() {
                return Ok(h.clone());
            }
        }
        let handle = actor::spawn(self.shared.clone(), session.clone(), recovered);
        live.insert(session.id.clone(), handle.clone());
        Ok(handle)
    }

    /// A new session of the user's with session `id`'s history up to event
    /// `at_seq` (by default, all of it), under `policy` (by default the
    /// same), whose first desktop starts from the newest snapshot taken by
    /// then. Forking the session as it is now (no `at_seq`) while it has a
    /// desktop here saves one first. The fork is stored paused: resuming
    /// it continues the task from that point.
    pub async fn fork(
        &self,
        user: &str,
        id: &str,
        at_seq: Option<i64>,
        policy: Option<String>,
    ) -> Result<(Session, ForkOrigin, Option<Snapshot>), SessionError> {
        if self.closing() {
            return Err(SessionError::ShuttingDown);
        }
        let store = &self.shared.store;
        let source = store.session(user, id).await?;
        let policy = policy.unwrap_or_else(|| source.policy.clone());
        check_policy(&self.shared.registry, &policy)?;
        let mut fresh = None;
        if at_seq.is_none() {
            if let Some(handle) = self.running(id) {
                fresh = handle.snapshot().await?;
            }
        }
        // Events appended since the snapshot (its own seq is the last one
        // it saw) are part of the fork only when asked for by number.
        let last = store.session(user, id).await?.last_seq;
        let at = match (at_seq, &fresh) {
            (Some(n), _) if n < 1 || n > last => {
                return Err(SessionError::InvalidInput(format!(
                    "at_seq must be between 1 and {last}, the session's last event"
                )))
            }
            (Some(n), _) => n,
            (None, Some(snapshot)) => snapshot.seq,
            (None, None) => last,
        };
        if at < 1 {
            return Err(SessionError::InvalidState(
                "the session has no events to fork from".into(),
            ));
        }
        let snapshot = match fresh {
            Some(s) => Some(s),
            None => store.snapshot_at(id, at).await?,
        };
        let title = fork_title(&source.title, at);
        let fork = store.fork_session(&source, at, &policy, &title).await?;
        // Calls the cut left open get their outcome, so the history reads
        // whole for the fork's policy.
        let events = store.all_events_after(&fork.id, 0).await?;
        let cut = format!("not run in this fork: it was cut at event {at}");
        for id in history::unanswered_approvals(&events) {
            let withdrawn =
                crate::event::EventBody::ApprovalDecided(crate::event::ApprovalDecided {
                    tool_use_id: id,
                    outcome: crate::event::ApprovalOutcome::Withdrawn,
                    note: cut.clone(),
                });
            store
                .append_event(&fork.id, crate::event::Source::Host, withdrawn)
                .await?;
        }
        for (id, name) in history::unanswered_calls(&events) {
            let result = crate::event::EventBody::not_run(id, name, cut.clone());
            store
                .append_event(&fork.id, crate::event::Source::Host, result)
                .await?;
        }
        let reason = format!("forked from {} at event {at}", source.id);
        store
            .append_event(
                &fork.id,
                crate::event::Source::Host,
                crate::event::EventBody::state_changed(SessionStatus::Paused, reason),
            )
            .await?;
        if let Some(snapshot) = &snapshot {
            if let Err(e) = self
                .shared
                .snapshots
                .start_from(store, snapshot, &fork.id)
                .await
            {
                // The fork still has its history; its desktop starts empty.
                tracing::warn!(fork = %fork.id, error = %e, "cannot give the fork its snapshot");
            }
        }
        let fork = store.session(user, &fork.id).await?;
        let origin = ForkOrigin {
            session_id: source.id,
            seq: at,
        };
        Ok((fork, origin, snapshot))
    }

    pub async fn delete(&self, user: &str, id: &str) -> Result<(), SessionError> {
        let (_, handle) = self.open(user, id).await?;
        // Read now: the rows go with the session.
        let snapshots = self.shared.store.snapshots(id).await?;
        let result = match handle.call(Command::Delete).await {
            // Evicted between the two: the next actor deletes.
            Err(SessionError::Stopped) => {
                let (_, handle) = self.open(user, id).await?;
                handle.call(Command::Delete).await
            }
            result => result,
        };
        self.live().remove(id);
        if result.is_ok() {
            self.shared
                .snapshots
                .remove_session(&self.shared.store, id, &snapshots)
                .await;
        }
        result
    }

    /// Brings back sessions a previous run of the host left running: each
    /// gets its actor, which marks it paused with the reason.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let running = self
            .shared
            .store
            .sessions_in_status(SessionStatus::Running)
            .await?;
        // Serve only once every one is marked, so nobody sees a session
        // that claims to run with nothing running it.
        let mut marked = Vec::new();
        for session in &running {
            let (tx, rx) = oneshot::channel();
            if self.spawn_with(session, Some(tx)).is_ok() {
                marked.push(rx);
            }
        }
        for rx in marked {
            let _ = rx.await;
        }
        Ok(running.len())
    }

    /// Evicts, every so often, the actors of sessions idle for `after`
    /// with nobody connected: they release their sandbox and policy
    /// instance, and come back from the store on next use. So the number
    /// of stored sessions is bounded by disk, not by memory or the
    /// engine's instance pool.
    pub fn start_evictor(self: &Arc<Self>, after: Duration) -> tokio::task::JoinHandle<()> {
        let sessions: Weak<Self> = Arc::downgrade(self);
        let period = (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                sessions.evict_idle(after).await;
            }
        })
    }

    /// One eviction pass: every actor idle for `after` with nobody
    /// connected is asked to stop, and leaves the map only once it agreed.
    /// A command that reached it meanwhile (a message whose desktop is
    /// still booting) makes it decline, so a run it started is never cut.
    pub async fn evict_idle(&self, after: Duration) {
        let candidates: Vec<(String, SessionHandle)> = self
            .live()
            .iter()
            .filter(|(_, h)| {
                let s = h.state.borrow();
                s.status != SessionStatus::Running
                    && !s.user_control
                    && s.last_active.elapsed() >= after
                    && h.log.hub().clients() == 0
            })
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        for (id, h) in candidates {
            let (tx, rx) = oneshot::channel();
            let stopped = match h.tx.send(Command::Evict(after, tx)).await {
                Ok(()) => rx.await.unwrap_or(true),
                Err(_) => true,
            };
            if stopped {
                let removed = {
                    let mut live = self.live();
                    let ours = live.get(&id).is_some_and(|cur| cur.tx.same_channel(&h.tx));
                    if ours {
                        live.remove(&id);
                    }
                    ours
                };
                if let (true, Some(fleet)) = (removed, &self.shared.fleet) {
                    fleet.release(&id).await;
                }
            }
        }
    }

    /// Stops every actor: runs are cut at once (their sessions stay marked
    /// running, so the next start recovers them), in-flight event writes
    /// finish, sandboxes are destroyed. No actor starts afterwards.
    pub async fn shutdown(&self) {
        let handles: Vec<SessionHandle> = {
            let mut live = self.live();
            self.closing
                .store(true, std::sync::atomic::Ordering::SeqCst);
            live.drain().map(|(_, h)| h).collect()
        };
        for h in handles {
            stop_actor(&h).await;
        }
        if let Some(fleet) = &self.shared.fleet {
            fleet.leave().await;
        }
    }

    /// Desktops this host could hand a new session: warm ones, ones
    /// booting to be warm, room to boot more, and those idle sessions hold
    /// (given up on demand, see [`Self::make_room`]). What a fleet host
    /// publishes for placement: zero means every desktop is in real use.
    pub fn free_desktops(&self) -> usize {
        let Some(pool) = &self.shared.pool else {
            return 0;
        };
        let s = pool.stats();
        let idle = self
            .live()
            .values()
            .filter(|h| h.state.borrow().gives_desktop_up())
            .count();
        s.warm + s.booting + pool.config().max_running.saturating_sub(s.running) + idle
    }

    /// Ids of the sessions whose actors run here.
    pub fn local_ids(&self) -> Vec<String> {
        self.live().keys().cloned().collect()
    }

    /// Stops the actor of a session whose lease another host took: the
    /// run is cut where it is and nothing more is written for it here.
    pub async fn drop_lost(&self, id: &str) {
        let handle = self.live().remove(id);
        if let Some(h) = handle {
            stop_actor(&h).await;
        }
    }

    /// Starts the actor of a session whose host was lost (its lease is
    /// already ours): it comes back paused with the reason.
    pub async fn adopt(&self, session: &Session) {
        let (tx, rx) = oneshot::channel();
        if self.spawn_with(session, Some(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn stop_actor(h: &SessionHandle) {
    let (tx, rx) = oneshot::channel();
    if h.tx.send(Command::Shutdown(tx)).await.is_ok() {
        let _ = rx.await;
    }
}
