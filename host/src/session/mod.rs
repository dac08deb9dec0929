//! Sessions: one actor per session runs the agent loop and owns the
//! session's sandbox and policy instance; everything else (REST, WebSocket)
//! talks to it through a [`SessionHandle`].
//!
//! The stored event log is the truth. The actor appends to it, clients
//! replay it by cursor, and after a host restart a session that was
//! running comes back paused with its history intact.

mod actor;
pub mod event;
mod history;
mod hub;
mod llm;
mod log;
mod run;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

pub use hub::{Frame, Hub};
pub use log::EventLog;

use crate::capabilities::ImageStore;
use crate::config::AgentConfig;
use crate::llm::Providers;
use crate::plugins::{PluginError, Registry};
use crate::sandbox::WarmPool;
use crate::store::{Event, Session, SessionStatus, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("the session is finished; start a new session to continue")]
    Finished,
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
    #[error("the session has no desktop: {0}")]
    NoSandbox(String),
    #[error("the session's actor stopped")]
    Stopped,
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
fn check_policy(registry: &Registry, name: &str) -> Result<(), SessionError> {
    match registry.policy(name) {
        Ok(_) => Ok(()),
        Err(PluginError::WrongKind { .. }) => Err(SessionError::NotAPolicy(name.into())),
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
    pub images: Arc<ImageStore>,
    /// Operator configuration per policy, passed to its steps as JSON.
    pub policy_config: BTreeMap<String, serde_json::Value>,
    pub default_policy: Option<String>,
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
    Shutdown(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
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

    pub fn live(&self) -> LiveState {
        self.state.borrow().clone()
    }
}

/// Every session the host has touched since it started.
pub struct Sessions {
    shared: Arc<Shared>,
    live: Mutex<HashMap<String, SessionHandle>>,
}

impl Sessions {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
            live: Mutex::default(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionHandle>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
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

    pub async fn create(
        &self,
        user: &str,
        title: &str,
        policy: Option<String>,
    ) -> Result<(Session, SessionHandle), SessionError> {
        let policy = policy.unwrap_or_else(|| self.default_policy());
        check_policy(&self.shared.registry, &policy)?;
        let session = self
            .shared
            .store
            .create_session(user, title, &policy)
            .await?;
        let handle = self.spawn(&session, true);
        Ok((session, handle))
    }

    /// The user's session, its actor started if it was not running.
    pub async fn open(
        &self,
        user: &str,
        id: &str,
    ) -> Result<(Session, SessionHandle), SessionError> {
        let session = self.shared.store.session(user, id).await?;
        if let Some(h) = self.live().get(id) {
            return Ok((session, h.clone()));
        }
        let handle = self.spawn(&session, false);
        Ok((session, handle))
    }

    /// The session's handle if its actor is running.
    pub fn running(&self, id: &str) -> Option<SessionHandle> {
        self.live().get(id).cloned()
    }

    fn spawn(&self, session: &Session, claim_sandbox: bool) -> SessionHandle {
        self.spawn_with(session, claim_sandbox, None)
    }

    fn spawn_with(
        &self,
        session: &Session,
        claim_sandbox: bool,
        recovered: Option<oneshot::Sender<()>>,
    ) -> SessionHandle {
        let mut live = self.live();
        if let Some(h) = live.get(&session.id) {
            return h.clone();
        }
        let handle = actor::spawn(
            self.shared.clone(),
            session.clone(),
            claim_sandbox,
            recovered,
        );
        live.insert(session.id.clone(), handle.clone());
        handle
    }

    pub async fn delete(&self, user: &str, id: &str) -> Result<(), SessionError> {
        let (_, handle) = self.open(user, id).await?;
        let result = handle.call(Command::Delete).await;
        self.live().remove(id);
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
            self.spawn_with(session, false, Some(tx));
            marked.push(rx);
        }
        for rx in marked {
            let _ = rx.await;
        }
        Ok(running.len())
    }

    /// Stops every actor: runs are cut at once (their sessions stay marked
    /// running, so the next start recovers them), in-flight event writes
    /// finish, sandboxes are destroyed.
    pub async fn shutdown(&self) {
        let handles: Vec<SessionHandle> = self.live().drain().map(|(_, h)| h).collect();
        for h in handles {
            let (tx, rx) = oneshot::channel();
            if h.tx.send(Command::Shutdown(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}
