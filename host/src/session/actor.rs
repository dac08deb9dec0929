//! The session actor: the one place a session's state changes. It takes
//! commands in order, starts and stops the agent loop ([`super::run`]),
//! owns the sandbox and the policy instance, and records every state change
//! as an event.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::approval::Verdict;
use super::history;
use super::hub::Hub;
use super::llm::SessionLlm;
use super::log::EventLog;
use super::quota::Permit;
use super::recording::Recorder;
use super::run::{self, RunControl, RunEnd, Runner};
use super::switch::switch_policy;
use super::tool_call::{Busy, ToolCalls};
use super::{Command, Decision, ExternalCall, LiveState, SessionError, SessionHandle, Shared};
use crate::capabilities::{CallContext, ImageStore, LlmBackend};
use crate::event::{
    ApprovalDecided, ApprovalOutcome, ControlChanged, EventBody, Holder, RecordingSaved, Source,
    ToolCall,
};
use crate::plugins::bindings::current::types::ToolUse;
use crate::plugins::PolicyInstance;
use crate::sandbox::{Sandbox, SandboxError};
use crate::store::{Session, SessionSettings, SessionStatus, Snapshot};

/// Title given from the first message, in characters.
const TITLE_CHARS: usize = 60;
/// Bytes of recent tool images a session keeps in memory; older ones are
/// still read from the store by hash.
const SESSION_IMAGE_BUDGET: usize = 32 << 20;

type RunTask = JoinHandle<(Option<PolicyInstance>, RunEnd)>;

struct Actor {
    shared: Arc<Shared>,
    session: Session,
    log: EventLog,
    state: watch::Sender<LiveState>,
    sandbox: Option<Sandbox>,
    /// The policy instance between runs (a run owns it while it lasts).
    /// In a mutex only to make the actor `Sync`; never contended.
    policy: std::sync::Mutex<Option<PolicyInstance>>,
    control: Arc<RunControl>,
    llm: Arc<dyn LlmBackend>,
    spent: Arc<AtomicU64>,
    /// Images this session's tools produced, by handle. Per session, so a
    /// plugin can only ever resolve its own session's images.
    images: Arc<ImageStore>,
    /// The user's allowance this session uses: one sandbox while it holds
    /// one, one running agent while a run lasts.
    sandbox_permit: Option<Permit>,
    run_permit: Option<Permit>,
    /// The run's desktop video, while one is recorded.
    recorder: Option<Recorder>,
    /// Outside (MCP) tool calls in progress.
    external: Arc<std::sync::atomic::AtomicUsize>,
    /// The configured MCP servers, running in this sandbox (by name).
    mcp: Option<(String, Arc<crate::mcp::SessionMcp>)>,
}

/// Starts a session's actor. `recovered` is told once a session the
/// previous host left running has been marked paused.
pub(super) fn spawn(
    shared: Arc<Shared>,
    session: Session,
    recovered: Option<oneshot::Sender<()>>,
) -> SessionHandle {
    let (tx, rx) = mpsc::channel(64);
    let log = EventLog::new(
        shared.store.clone(),
        &session.id,
        Hub::default(),
        shared.metrics.clone(),
    );
    let (state, state_rx) = watch::channel(LiveState {
        status: session.status,
        policy: session.policy.clone(),
        pending_policy: None,
        sandbox: None,
        user_control: false,
        vnc: None,
        last_active: std::time::Instant::now(),
        settings: session.settings.clone(),
        awaiting_approval: None,
    });
    let spent = Arc::new(AtomicU64::new(
        (session.input_tokens + session.output_tokens).max(0) as u64,
    ));
    let llm: Arc<dyn LlmBackend> = Arc::new(SessionLlm {
        metrics: shared.metrics.clone(),
        providers: shared.providers.clone(),
        log: log.clone(),
        store: shared.store.clone(),
        spent: spent.clone(),
        budget: shared.agent.token_budget,
        user_id: session.user_id.clone(),
        tokens_per_day: shared.quotas.caps().tokens_per_day,
        prices: shared.prices.clone(),
    });
    let actor = Actor {
        shared,
        session,
        log: log.clone(),
        state,
        sandbox: None,
        policy: Default::default(),
        control: Arc::default(),
        llm,
        spent,
        images: Arc::new(ImageStore::with_budget(SESSION_IMAGE_BUDGET)),
        sandbox_permit: None,
        run_permit: None,
        recorder: None,
        external: Arc::default(),
        mcp: None,
    };
    let user_id = actor.session.user_id.as_str().into();
    let host = actor.shared.host_id.clone();
    tokio::spawn(actor.main(rx, recovered));
    SessionHandle {
        tx,
        user_id,
        host,
        log,
        state: state_rx,
    }
}

impl Actor {
    async fn main(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        recovered: Option<oneshot::Sender<()>>,
    ) {
        if self.session.status == SessionStatus::Running {
            self.recover().await;
        }
        if let Some(tx) = recovered {
            let _ = tx.send(());
        }
        let mut task: Option<RunTask> = None;
        loop {
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else { break };
                    if let Command::Evict(after, reply) = command {
                        let stop = self.idle_for(after, task.is_some());
                        if stop {
                            self.evict(&mut rx).await;
                        }
                        let _ = reply.send(stop);
                        if stop {
                            break;
                        }
                        continue;
                    }
                    self.state.send_modify(|s| s.last_active = std::time::Instant::now());
                    if self.command(command, &mut task).await.is_break() {
                        break;
                    }
                    if task.is_none() {
                        self.give_run_permit_back().await;
                    }
                    // A long command (a desktop booting) is activity too.
                    self.state.send_modify(|s| s.last_active = std::time::Instant::now());
                }
                end = async { task.as_mut().expect("guarded").await }, if task.is_some() => {
                    task = None;
                    self.state.send_modify(|s| s.last_active = std::time::Instant::now());
                    match end {
                        Ok((policy, end)) => {
                            self.set_policy(policy);
                            self.run_ended(end).await;
                        }
                        Err(e) => {
                            self.give_run_permit_back().await;
                            self.set_policy(None);
                            self.fail("internal", &format!("the agent loop stopped unexpectedly: {e}")).await;
                        }
                    }
                }
            }
        }
    }

    async fn command(
        &mut self,
        command: Command,
        task: &mut Option<RunTask>,
    ) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow::{Break, Continue};
        match command {
            Command::UserMessage(text, reply) => {
                let _ = reply.send(self.user_message(text, task).await);
            }
            Command::Pause(reply) => {
                let result = if task.is_some() {
                    self.control
                        .request_pause("the session was paused before the call was approved");
                    Ok(())
                } else {
                    Err(SessionError::InvalidState(format!(
                        "the session is {}, not running",
                        self.session.status.as_str()
                    )))
                };
                let _ = reply.send(result);
            }
            Command::Resume(reply) => {
                let result = match self.session.status {
                    _ if task.is_some() => Err(SessionError::InvalidState(
                        "the session is already running".into(),
                    )),
                    SessionStatus::Paused | SessionStatus::Error => self.start(task).await,
                    SessionStatus::Finished => Err(SessionError::InvalidState(
                        "the session is finished: send a message to ask a follow-up".into(),
                    )),
                    s => Err(SessionError::InvalidState(format!(
                        "the session is {}: send a message to start it",
                        s.as_str()
                    ))),
                };
                let _ = reply.send(result);
            }
            Command::Cancel(reply) => {
                let result = if let Some(t) = task.take() {
                    self.cancel(t).await;
                    Ok(())
                } else if self.session.status == SessionStatus::Paused {
                    self.set_status(SessionStatus::Idle, "cancelled").await;
                    Ok(())
                } else {
                    Err(SessionError::InvalidState(format!(
                        "the session is {}: there is nothing to cancel",
                        self.session.status.as_str()
                    )))
                };
                let _ = reply.send(result);
            }
            Command::SwitchPolicy(name, reply) => {
                let _ = reply.send(self.switch_policy(name, task.is_some()).await);
            }
            Command::AttachSandbox(reply) => {
                let result = match self.ensure_sandbox().await {
                    Err(e) => Err(e),
                    Ok(()) if self.sandbox.is_some() => Ok(()),
                    Ok(()) => Err(SessionError::NoSandbox(
                        "no sandbox could be started; see the session's error events".into(),
                    )),
                };
                let _ = reply.send(result);
            }
            Command::External(call, via, reply) => {
                let _ = reply.send(self.external_call(call, via, task.is_some()).await);
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.take_snapshot().await);
            }
            Command::ReleaseSandbox(reply) => {
                let result = if task.is_some() || self.state.borrow().user_control || self.busy() {
                    Err(SessionError::InvalidState(
                        "the session is using its desktop".into(),
                    ))
                } else {
                    self.release_sandbox().await;
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Command::Evict(_, reply) => {
                // Handled in `main`, which owns the command queue.
                let _ = reply.send(false);
            }
            Command::TakeOver(reply) => {
                let _ = reply.send(self.take_over(task).await);
            }
            Command::HandBack(reply) => {
                let result = if self.state.borrow().user_control {
                    self.set_control(false).await;
                    if task.is_none() && self.session.status == SessionStatus::Paused {
                        self.start(task).await
                    } else {
                        Ok(())
                    }
                } else {
                    Err(SessionError::InvalidState(
                        "the agent already has control".into(),
                    ))
                };
                let _ = reply.send(result);
            }
            Command::Decide(decision, reply) => {
                let result = if task.is_some() {
                    self.decide(decision)
                } else {
                    Err(SessionError::InvalidState(
                        "no tool call is waiting for approval".into(),
                    ))
                };
                let _ = reply.send(result);
            }
            Command::Settings(settings, reply) => {
                let result = self.set_settings(settings).await;
                if task.is_some() {
                    self.follow_recording_switch().await;
                }
                let _ = reply.send(result);
            }
            Command::Delete(reply) => {
                if let Some(t) = task.take() {
                    t.abort();
                    let _ = t.await;
                }
                // Dropped, not finished: ffmpeg is killed, the files go.
                self.recorder = None;
                if let Some(dir) = self.shared.recordings_of(&self.session.id) {
                    let _ = tokio::fs::remove_dir_all(dir).await;
                }
                self.run_permit = None;
                self.release_sandbox().await;
                let result = self
                    .shared
                    .store
                    .delete_session(&self.session.user_id, &self.session.id)
                    .await
                    .map_err(SessionError::from);
                let _ = reply.send(result);
                return Break(());
            }
            Command::Shutdown(reply) => {
                if let Some(t) = task.take() {
                    t.abort();
                    let _ = t.await;
                }
                self.stop_recording().await;
                self.log.settle().await;
                self.release_sandbox().await;
                let _ = reply.send(());
                return Break(());
            }
        }
        Continue(())
    }

    /// Whether the session has been idle for `after`: no run, not under
    /// the person's control, nobody watching, and no command since.
    fn idle_for(&self, after: std::time::Duration, running: bool) -> bool {
        let s = self.state.borrow();
        !running
            && !self.busy()
            && self.session.status != SessionStatus::Running
            && !s.user_control
            && s.last_active.elapsed() >= after
            && self.log.hub().clients() == 0
    }

    /// Stops taking commands and gives back the sandbox and the policy
    /// instance. Commands already queued behind the eviction are dropped
    /// unanswered (their callers see `Stopped` and open the session
    /// again, which starts a fresh actor: the queue is closed first).
    async fn evict(&mut self, rx: &mut mpsc::Receiver<Command>) {
        rx.close();
        while rx.try_recv().is_ok() {}
        self.log.settle().await;
        self.release_sandbox().await;
        self.set_policy(None);
    }

    /// Whether an outside tool call is in progress.
    fn busy(&self) -> bool {
        self.external.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Stores an outside client's tool call and hands back what runs it.
    async fn external_call(
        &mut self,
        call: ToolUse,
        via: String,
        running: bool,
    ) -> Result<ExternalCall, SessionError> {
        if running {
            return Err(SessionError::InvalidState(
                "the session's agent is running; pause or cancel it first".into(),
            ));
        }
        if self.state.borrow().user_control {
            return Err(SessionError::InvalidState(
                "a person has taken over the desktop; they hand it back from the page".into(),
            ));
        }
        self.ensure_sandbox().await?;
        let body = EventBody::ToolCall(ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            input: call.input.clone(),
            via: Some(via),
        });
        self.log.append(Source::Agent, body).await?;
        Ok(ExternalCall::new(
            self.tool_calls(),
            call,
            Busy::new(&self.external),
        ))
    }

    async fn user_message(
        &mut self,
        text: String,
        task: &mut Option<RunTask>,
    ) -> Result<crate::event::Event, SessionError> {
        let limit = self.shared.agent.max_message_bytes;
        if text.len() > limit {
            return Err(SessionError::TooLarge {
                size: text.len(),
                limit,
            });
        }
        if text.trim().is_empty() {
            return Err(SessionError::EmptyMessage);
        }
        // A finished session takes a follow-up: a new run over the whole
        // history, like a message to an idle one.
        // Everything that could refuse the run is settled before the
        // message is stored: a refused message is not kept half-handled.
        let run_permit = match task {
            Some(_) => None,
            None => Some(self.prepare_run().await?),
        };
        // Asking the agent something hands it the desktop back.
        if self.state.borrow().user_control {
            self.set_control(false).await;
        }
        let event = self
            .log
            .append(Source::User, EventBody::user_message(text.as_str()))
            .await?;
        if self.session.title.is_empty() {
            let title: String = text.trim().chars().take(TITLE_CHARS).collect();
            if self
                .shared
                .store
                .rename(&self.session.user_id, &self.session.id, &title)
                .await
                .is_ok()
            {
                self.session.title = title;
            }
        }
        // A message while the loop runs is picked up at its next step.
        if let Some(permit) = run_permit {
            self.launch(permit, task).await;
        }
        Ok(event)
    }

    /// What a run needs before it starts: a place under the user's running
    /// cap and under the daily token cap, and a sandbox.
    async fn prepare_run(&mut self) -> Result<Permit, SessionError> {
        let caps = self.shared.quotas.caps();
        if caps.tokens_per_day > 0 {
            let spent = self
                .shared
                .store
                .user_tokens_today(&self.session.user_id)
                .await?;
            if spent >= caps.tokens_per_day {
                return Err(SessionError::Quota {
                    code: "quota_tokens",
                    message: format!(
                        "you have used {spent} model tokens today, your daily limit is {}",
                        caps.tokens_per_day
                    ),
                    retry_after: Some(crate::store::secs_until_tomorrow()),
                });
            }
        }
        let running_elsewhere = self.running_elsewhere().await;
        let permit = self
            .shared
            .quotas
            .run(&self.session.user_id, running_elsewhere)?;
        self.publish_holdings().await;
        self.ensure_sandbox().await?;
        Ok(permit)
    }

    /// Starts the agent loop (see [`Self::launch`]) if nothing refuses it.
    async fn start(&mut self, task: &mut Option<RunTask>) -> Result<(), SessionError> {
        let permit = self.prepare_run().await?;
        self.launch(permit, task).await;
        Ok(())
    }

    /// Starts the agent loop with a policy instance (a new one if the
    /// session has none: new, restored, evicted, or after a crash).
    async fn launch(&mut self, permit: Permit, task: &mut Option<RunTask>) {
        let policy = match self.take_policy() {
            Some(p) => p,
            None => match self.new_policy_instance(&self.session.policy.clone()) {
                Ok(p) => p,
                Err(message) => {
                    self.fail("policy_unavailable", &message).await;
                    return;
                }
            },
        };
        self.control.reset();
        self.run_permit = Some(permit);
        self.set_status(SessionStatus::Running, "").await;
        self.connect_mcp().await;
        self.follow_recording_switch().await;
        let runner = Runner {
            shared: self.shared.clone(),
            log: self.log.clone(),
            control: self.control.clone(),
            session_id: self.session.id.clone(),
            user_id: self.session.user_id.clone(),
            policy_name: self.session.policy.clone(),
            tools: self.tool_calls(),
            spent: self.spent.clone(),
            state: self.state.clone(),
        };
        *task = Some(tokio::spawn(run::run(runner, policy)));
    }

    fn take_policy(&mut self) -> Option<PolicyInstance> {
        self.policy
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn set_policy(&mut self, policy: Option<PolicyInstance>) {
        *self.policy.get_mut().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    fn call_context(&self, with_sandbox: bool) -> CallContext {
        CallContext {
            sandbox: if with_sandbox {
                self.sandbox.as_ref().map(Sandbox::backends)
            } else {
                None
            },
            llm: Some(self.llm.clone()),
            images: self.images.clone(),
            log: self.shared.plugin_logs.clone(),
            ..CallContext::default()
        }
    }

    fn tool_calls(&self) -> ToolCalls {
        ToolCalls {
            shared: self.shared.clone(),
            log: self.log.clone(),
            session_id: self.session.id.clone(),
            ctx: self.call_context(true),
            mcp: self.mcp.as_ref().map(|(_, m)| m.clone()),
        }
    }

    /// Starts the configured MCP servers in the sandbox, once per sandbox.
    /// A server that fails is reported as an error event; the run goes on
    /// without its tools.
    async fn connect_mcp(&mut self) {
        if self.shared.mcp.servers.is_empty() {
            return;
        }
        let Some(sandbox) = &self.sandbox else {
            return;
        };
        if self
            .mcp
            .as_ref()
            .is_some_and(|(name, _)| *name == sandbox.name)
        {
            return;
        }
        let (name, exec) = (sandbox.name.clone(), sandbox.exec.clone());
        self.close_mcp().await;
        let (mcp, failures) =
            crate::mcp::SessionMcp::connect(&self.shared.mcp, &exec, &self.shared.mcp_catalog)
                .await;
        for (server, why) in failures {
            self.event_error(
                "mcp_unavailable",
                &format!("MCP server `{server}` is not available to this run: {why}"),
            )
            .await;
        }
        self.mcp = Some((name, Arc::new(mcp)));
    }

    async fn close_mcp(&mut self) {
        if let Some((_, mcp)) = self.mcp.take() {
            // The last holder closes; a run still holding it closes on drop.
            if let Ok(mcp) = Arc::try_unwrap(mcp) {
                mcp.close().await;
            }
        }
    }

    fn new_policy_instance(&self, name: &str) -> Result<PolicyInstance, String> {
        let registry = &self.shared.registry;
        let plugin = registry.policy(name).map_err(|e| e.to_string())?;
        let grants = registry.effective_grants(&plugin);
        PolicyInstance::new(
            registry.runtime().clone(),
            plugin,
            grants,
            self.call_context(false),
        )
        .map_err(|e| e.report())
    }

    async fn run_ended(&mut self, end: RunEnd) {
        self.stop_recording().await;
        // The loop may have applied a switch; the store has it, keep in step.
        self.session.policy = self.state.borrow().policy.clone();
        if let Some(name) = self.control.take_switch() {
            self.apply_switch(&name).await;
        }
        self.give_run_permit_back().await;
        // Saved before the run is reported over, so whoever sees the
        // session idle can fork it from there.
        if self.shared.snapshots.config.after_run {
            if let Err(e) = self.take_snapshot().await {
                tracing::warn!(session = %self.session.id, error = %e, "cannot save the desktop's files");
            }
        }
        match end {
            RunEnd::Replied => self.set_status(SessionStatus::Idle, "").await,
            RunEnd::Finished => self.set_status(SessionStatus::Finished, "").await,
            RunEnd::Paused(reason) => self.set_status(SessionStatus::Paused, &reason).await,
            RunEnd::Failed => self.set_status(SessionStatus::Error, "").await,
        }
    }

    /// Saves the desktop's files as the snapshot after the session's last
    /// event; `None` without a live desktop.
    async fn take_snapshot(&mut self) -> Result<Option<Snapshot>, SessionError> {
        let Some(sandbox) = self.sandbox.as_ref().filter(|s| s.is_alive()) else {
            return Ok(None);
        };
        self.log.settle().await;
        let store = &self.shared.store;
        let seq = store.session_by_id(&self.session.id).await?.last_seq;
        let snapshot = self
            .shared
            .snapshots
            .take(store, &self.session.id, seq, sandbox)
            .await
            .map_err(|e| SessionError::InvalidState(format!("cannot save the desktop: {e}")))?;
        Ok(Some(snapshot))
    }

    /// Unpacks the snapshot a fork starts from into its new desktop (once).
    async fn restore_snapshot(&self, sandbox: &Sandbox) {
        let store = &self.shared.store;
        let location = match store.restore_from(&self.session.id).await {
            Ok(Some(location)) => location,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(session = %self.session.id, error = %e, "cannot read the snapshot to restore");
                return;
            }
        };
        let snapshots = &self.shared.snapshots;
        let restored = match snapshots.local_copy(&self.session.id, &location).await {
            Ok(path) => sandbox.restore_home(&path).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = restored {
            self.event_error(
                "snapshot_unavailable",
                &format!("the desktop starts without the files of its snapshot: {e}"),
            )
            .await;
        }
        if let Err(e) = store.set_restore_from(&self.session.id, None).await {
            tracing::error!(session = %self.session.id, error = %e, "cannot clear the snapshot to restore");
        }
    }

    /// Hard stop: the loop is dropped wherever it is (an LLM stream, a tool
    /// call), then tool calls left without a result get one, so the
    /// history stays valid for the next run.
    async fn cancel(&mut self, task: RunTask) {
        task.abort();
        if let Ok((policy, _)) = task.await {
            self.set_policy(policy);
        }
        self.give_run_permit_back().await;
        self.stop_recording().await;
        // Appends the run began finish first, so the log read below holds
        // every tool call and result it will ever have.
        self.log.settle().await;
        self.session.policy = self.state.borrow().policy.clone();
        self.close_open_calls("cancelled by the user").await;
        if let Some(name) = self.control.take_switch() {
            self.apply_switch(&name).await;
        }
        self.set_status(SessionStatus::Idle, "cancelled").await;
    }

    /// Gives every unanswered approval request and tool call of a run that
    /// stopped its outcome, so the log reads whole.
    async fn close_open_calls(&mut self, why: &str) {
        self.control.approvals.clear();
        self.state.send_modify(|s| s.awaiting_approval = None);
        let events = match self.log.after(0).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(session = %self.session.id, error = %e, "cannot read history");
                return;
            }
        };
        for id in history::unanswered_approvals(&events) {
            let decided = EventBody::ApprovalDecided(ApprovalDecided {
                tool_use_id: id,
                outcome: ApprovalOutcome::Withdrawn,
                note: why.to_string(),
            });
            if let Err(e) = self.log.append(Source::Host, decided).await {
                tracing::error!(session = %self.session.id, error = %e, "cannot close approval");
            }
        }
        for (id, name) in history::unanswered_calls(&events) {
            let result = EventBody::not_run(id, name, why);
            if let Err(e) = self.log.append(Source::Host, result).await {
                tracing::error!(session = %self.session.id, error = %e, "cannot close tool call");
            }
        }
    }

    /// A session the previous host process left running.
    /// In a fleet the session may have run on another host, which died.
    async fn recover(&mut self) {
        let (interrupted, reason) = if self.shared.fleet.is_some() {
            (
                "interrupted: the host running the session was lost",
                "host lost",
            )
        } else {
            ("interrupted: the host restarted", "host restarted")
        };
        self.close_open_calls(interrupted).await;
        self.restore_last_snapshot().await;
        self.set_status(SessionStatus::Paused, reason).await;
    }

    /// After a lost host or a restart, the session's next desktop starts
    /// from its newest snapshot (its files as the last run left them).
    async fn restore_last_snapshot(&self) {
        let store = &self.shared.store;
        let result = match store.snapshot_at(&self.session.id, i64::MAX).await {
            Ok(Some(last)) => {
                store
                    .set_restore_from(&self.session.id, Some(&last.location))
                    .await
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(session = %self.session.id, error = %e, "cannot find the session's last snapshot");
        }
    }

    async fn switch_policy(&mut self, name: String, running: bool) -> Result<(), SessionError> {
        super::check_policy(&self.shared.registry, &name)?;
        if running {
            self.control.request_switch(name.clone());
            self.state.send_modify(|s| s.pending_policy = Some(name));
        } else {
            self.apply_switch(&name).await;
        }
        Ok(())
    }

    /// Switches between runs: the next run starts a fresh instance.
    async fn apply_switch(&mut self, name: &str) {
        match switch_policy(
            &self.shared,
            &self.log,
            &self.session.user_id,
            &self.session.policy,
            name,
        )
        .await
        {
            Ok(_) => {
                self.set_policy(None);
                self.session.policy = name.to_string();
                self.state.send_modify(|s| {
                    s.policy = name.to_string();
                    s.pending_policy = None;
                });
            }
            Err(message) => {
                self.state.send_modify(|s| s.pending_policy = None);
                self.event_error("policy_switch_failed", &message).await;
            }
        }
    }

    /// While a run lasts, records its desktop if the session's switch is
    /// on (and stops if it was switched off). A recording that cannot
    /// start is an error event; the run goes on.
    async fn follow_recording_switch(&mut self) {
        let wanted = self.session.settings.record_video;
        if !wanted {
            self.stop_recording().await;
            return;
        }
        if self.recorder.is_some() {
            return;
        }
        let (Some(sandbox), Some(dir)) = (
            self.sandbox.as_ref(),
            self.shared.recordings_of(&self.session.id),
        ) else {
            return;
        };
        let file = format!("{}.webm", crate::store::now_ms());
        match Recorder::start(sandbox.computer.clone(), &dir, file, &self.shared.recording).await {
            Ok(recorder) => self.recorder = Some(recorder),
            Err(e) => self.event_error("recording_failed", &e.to_string()).await,
        }
    }

    /// Finishes the run's recording, if one is going, and announces it.
    async fn stop_recording(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        match recorder.finish().await {
            Ok(r) => {
                let saved = EventBody::RecordingSaved(RecordingSaved {
                    file: r.file,
                    bytes: r.bytes,
                    duration_ms: r.duration_ms,
                    width: r.width,
                    height: r.height,
                });
                if let Err(e) = self.log.append(Source::Host, saved).await {
                    tracing::error!(session = %self.session.id, error = %e, "cannot record a recording");
                }
            }
            Err(e) => self.event_error("recording_failed", &e.to_string()).await,
        }
    }

    /// Passes a person's answer to the waiting run; the run stores it.
    fn decide(&self, decision: Decision) -> Result<(), SessionError> {
        let verdict = Verdict {
            outcome: if decision.approve {
                ApprovalOutcome::Approved
            } else {
                ApprovalOutcome::Denied
            },
            note: decision.note.trim().to_string(),
        };
        self.control
            .approvals
            .decide(&decision.tool_use_id, verdict)
            .map_err(|_| {
                SessionError::InvalidState(format!(
                    "no approval is waiting for tool call `{}` (answered, timed out or withdrawn already?)",
                    decision.tool_use_id
                ))
            })
    }

    async fn set_settings(&mut self, settings: SessionSettings) -> Result<(), SessionError> {
        if settings == self.session.settings {
            return Ok(());
        }
        self.shared
            .store
            .set_settings(&self.session.user_id, &self.session.id, &settings)
            .await?;
        self.session.settings = settings.clone();
        self.state.send_modify(|s| s.settings = settings.clone());
        self.log
            .append(Source::User, EventBody::SettingsChanged(settings))
            .await?;
        Ok(())
    }

    async fn take_over(&mut self, task: &mut Option<RunTask>) -> Result<(), SessionError> {
        if self.state.borrow().user_control {
            return Ok(());
        }
        self.ensure_sandbox().await?;
        if self.sandbox.is_none() {
            return Err(SessionError::NoSandbox(
                "no sandbox could be started".into(),
            ));
        }
        if task.is_some() {
            self.control
                .request_pause("the person took over the desktop before the call was approved");
        }
        self.set_control(true).await;
        Ok(())
    }

    async fn set_control(&mut self, user: bool) {
        self.state.send_modify(|s| s.user_control = user);
        let holder = if user { Holder::User } else { Holder::Agent };
        if let Err(e) = self
            .log
            .append(
                Source::User,
                EventBody::ControlChanged(ControlChanged { holder }),
            )
            .await
        {
            tracing::error!(session = %self.session.id, error = %e, "cannot record control change");
        }
    }

    /// Makes sure the session has a live sandbox. A per-user cap or a
    /// host with every desktop busy is an error the caller reports (429);
    /// anything else (no Docker, a sandbox that would not boot) is
    /// recorded as an error event and the session goes on without one.
    async fn ensure_sandbox(&mut self) -> Result<(), SessionError> {
        if self.sandbox.as_ref().is_some_and(Sandbox::is_alive) {
            return Ok(());
        }
        let Some(pool) = self.shared.pool.clone() else {
            return Ok(());
        };
        if let Some(dead) = self.sandbox.take() {
            tracing::warn!(session = %self.session.id, sandbox = %dead.name, "sandbox died; replacing it");
            let why = dead.computer.failure();
            pool.release(dead).await;
            self.sandbox_permit = None;
            let message = match why {
                Some(why) => format!("{why}; a fresh desktop replaces it (files and windows from before are gone)"),
                None => "the session's desktop stopped; a fresh one replaces it (files and windows from before are gone)".into(),
            };
            self.event_error("sandbox_replaced", &message).await;
        }
        // Desktops elsewhere count when an agent uses them: an idle one is
        // given back by its host to whoever needs the room there.
        let running_elsewhere = self.running_elsewhere().await;
        let permit = self
            .shared
            .quotas
            .sandbox(&self.session.user_id, running_elsewhere)?;
        self.publish_holdings().await;
        match pool.claim().await {
            Ok(sandbox) => {
                self.restore_snapshot(&sandbox).await;
                let (name, vnc) = (sandbox.name.clone(), sandbox.vnc_target());
                self.sandbox = Some(sandbox);
                self.sandbox_permit = Some(permit);
                self.state.send_modify(|s| {
                    s.sandbox = Some(name);
                    s.vnc = Some(vnc);
                });
                Ok(())
            }
            Err(SandboxError::PoolExhausted(n)) => Err(SessionError::Busy(n)),
            Err(e) => {
                self.state.send_modify(|s| {
                    s.sandbox = None;
                    s.vnc = None;
                });
                self.event_error("sandbox_unavailable", &e.to_string())
                    .await;
                Ok(())
            }
        }
    }

    /// The session's user's agents running on the fleet's other hosts;
    /// none outside a fleet.
    async fn running_elsewhere(&self) -> usize {
        match &self.shared.fleet {
            Some(fleet) => fleet.running_elsewhere(&self.session.user_id).await,
            None => 0,
        }
    }

    /// Publishes this host's holdings at once when a permit is taken or
    /// given back, before the caller hears of it: the user's next request,
    /// to another host, counts the change (other changes are published in
    /// the background).
    async fn publish_holdings(&self) {
        if let Some(fleet) = &self.shared.fleet {
            fleet.publish_holdings(&self.shared.quotas).await;
        }
    }

    /// The run is over: its permit goes back, published in a fleet.
    async fn give_run_permit_back(&mut self) {
        if self.run_permit.take().is_some() {
            self.publish_holdings().await;
        }
    }

    async fn release_sandbox(&mut self) {
        self.close_mcp().await;
        if let (Some(sandbox), Some(pool)) = (self.sandbox.take(), self.shared.pool.clone()) {
            pool.release(sandbox).await;
        }
        if self.sandbox_permit.take().is_some() {
            // Given back before the caller hears of it, so the user's next
            // request to another host finds the desktop free.
            self.publish_holdings().await;
        }
        self.state.send_modify(|s| {
            s.sandbox = None;
            s.vnc = None;
        });
    }

    async fn fail(&mut self, code: &str, message: &str) {
        self.event_error(code, message).await;
        self.set_status(SessionStatus::Error, code).await;
    }

    async fn event_error(&self, code: &str, message: &str) {
        if let Err(e) = self
            .log
            .append(Source::Host, EventBody::error(code, message))
            .await
        {
            tracing::error!(session = %self.session.id, error = %e, "cannot record error event");
        }
    }

    async fn set_status(&mut self, status: SessionStatus, reason: &str) {
        if self.session.status == status {
            return;
        }
        let store = &self.shared.store;
        if let Err(e) = store
            .set_status(&self.session.user_id, &self.session.id, status)
            .await
        {
            tracing::error!(session = %self.session.id, error = %e, "cannot store status");
        }
        self.session.status = status;
        self.state.send_modify(|s| s.status = status);
        if let Err(e) = self
            .log
            .append(Source::Host, EventBody::state_changed(status, reason))
            .await
        {
            tracing::error!(session = %self.session.id, error = %e, "cannot record status");
        }
    }
}
