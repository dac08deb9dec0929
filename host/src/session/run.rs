//! The agent loop of one run: from a user message (or a resume) until the
//! policy replies, finishes, fails, or the session is paused.
//!
//! Each step: pick up events appended since the last step (a user may
//! write while the agent works), apply a pending policy switch, ask the
//! policy, then run its tool calls one by one, storing each call and result
//! as it happens. A pause takes effect between steps; a cancel aborts the
//! task wherever it is (the actor then closes open tool calls).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;
use tracing::Instrument;

use super::approval::{ApprovalGate, Verdict};
use super::history;
use super::log::EventLog;
use super::loop_guard::{LoopGuard, StepPrint};
use super::switch::switch_policy;
use super::tool_call::{crash_code, ToolCalls};
use super::{LiveState, Shared};
use crate::event::{
    ApprovalDecided, ApprovalOutcome, ApprovalRequested, Event, EventBody, Source, ToolCall,
};
use crate::plugins::bindings::current::policy::{Act, Context, Decision, PolicyError};
use crate::plugins::bindings::current::types::HostError;
use crate::plugins::bindings::current::types::{ToolSpec, ToolUse};
use crate::plugins::PolicyInstance;
use crate::store::StoreError;

/// Requests from the actor to a run in progress.
#[derive(Default)]
pub struct RunControl {
    pause: AtomicBool,
    switch: Mutex<Option<String>>,
    /// The tool call waiting for a person, if one is.
    pub approvals: ApprovalGate,
}

impl RunControl {
    /// Pauses after the current step; a call waiting for approval stops
    /// waiting (it does not run) and says `why`.
    pub fn request_pause(&self, why: &str) {
        self.pause.store(true, Ordering::SeqCst);
        self.approvals.withdraw(why);
    }

    pub fn reset(&self) {
        self.pause.store(false, Ordering::SeqCst);
        self.approvals.clear();
    }

    pub fn request_switch(&self, policy: String) {
        *self.switch.lock().unwrap_or_else(|p| p.into_inner()) = Some(policy);
    }

    pub fn take_switch(&self) -> Option<String> {
        self.switch.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// How a run ended; the actor turns it into the session's status.
#[derive(Debug)]
pub enum RunEnd {
    Replied,
    Finished,
    Paused(String),
    /// An error event has been recorded.
    Failed,
}

pub struct Runner {
    pub shared: Arc<Shared>,
    pub log: EventLog,
    pub control: Arc<RunControl>,
    pub session_id: String,
    pub user_id: String,
    pub policy_name: String,
    pub tools: ToolCalls,
    pub spent: Arc<AtomicU64>,
    pub state: watch::Sender<LiveState>,
}

pub async fn run(
    mut runner: Runner,
    mut policy: PolicyInstance,
) -> (Option<PolicyInstance>, RunEnd) {
    // A run is a trace of its own: it outlives the request that started it.
    let span = tracing::info_span!(
        parent: None,
        "session.run",
        session.id = %runner.session_id,
        policy = %runner.policy_name,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let end = async {
        match runner.steps(&mut policy).await {
            Ok(end) => end,
            Err(e) => {
                tracing::error!(session = %runner.session_id, error = %e, "store failed during a run");
                runner.error("store_failed", &e.to_string()).await;
                RunEnd::Failed
            }
        }
    }
    .instrument(span.clone())
    .await;
    span.record(
        "outcome",
        match &end {
            RunEnd::Replied => "replied",
            RunEnd::Finished => "finished",
            RunEnd::Paused(_) => "paused",
            RunEnd::Failed => "failed",
        },
    );
    if matches!(end, RunEnd::Failed) {
        span.record("otel.status_code", "error");
    }
    (Some(policy), end)
}

impl Runner {
    async fn steps(&mut self, policy: &mut PolicyInstance) -> Result<RunEnd, StoreError> {
        let mut events = self.log.after(0).await?;
        let mut step: u32 = 0;
        let mut state = self.shared.store.policy_state(&self.session_id).await?;
        let mut guard = LoopGuard::new(self.shared.agent.loop_guard_repeats);
        loop {
            if self.control.pause.swap(false, Ordering::SeqCst) {
                return Ok(RunEnd::Paused("paused by the user".into()));
            }
            if let Some(name) = self.control.take_switch() {
                self.switch(policy, &name, &mut state).await;
            }
            let max = self.shared.agent.max_steps;
            if step >= max {
                self.error(
                    "step_limit",
                    &format!(
                        "the agent took {max} steps without finishing; resume to let it continue"
                    ),
                )
                .await;
                return Ok(RunEnd::Paused("step limit".into()));
            }
            let (spent, budget) = (
                self.spent.load(Ordering::Relaxed),
                self.shared.agent.token_budget,
            );
            if spent >= budget {
                self.error(
                    "token_budget",
                    &format!("the session has used {spent} tokens, its budget is {budget}"),
                )
                .await;
                return Ok(RunEnd::Failed);
            }
            self.catch_up(&mut events).await?;
            let context = Context {
                session_id: self.session_id.clone(),
                step,
                history: history::messages(&events),
                tools: self.tool_specs(),
                state: state.clone(),
                config: self
                    .shared
                    .policy_config
                    .get(&self.policy_name)
                    .map_or_else(|| "{}".to_string(), Value::to_string),
            };
            step += 1;
            let step_span = tracing::info_span!("policy.step", policy = %self.policy_name, step);
            let output = match policy.step(context).instrument(step_span).await {
                Ok(Ok(output)) => output,
                Ok(Err(error)) => {
                    self.error("policy_error", &policy_error_message(error))
                        .await;
                    return Ok(RunEnd::Failed);
                }
                Err(e) => {
                    self.error(
                        crash_code(&e),
                        &format!("policy `{}`: {}", self.policy_name, e.report()),
                    )
                    .await;
                    return Ok(RunEnd::Failed);
                }
            };
            if output.state != state {
                self.shared
                    .store
                    .set_policy_state(&self.session_id, output.state.as_deref())
                    .await?;
                state = output.state;
            }
            let reply = match output.decision {
                Decision::Act(Act { calls, .. }) if calls.is_empty() => {
                    self.error(
                        "policy_error",
                        &format!(
                            "policy `{}` decided to act with no tool calls; a policy that \
                             only has something to say decides `reply`",
                            self.policy_name
                        ),
                    )
                    .await;
                    return Ok(RunEnd::Failed);
                }
                Decision::Act(Act { text, calls: uses }) => {
                    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
                        events.push(
                            self.append(Source::Agent, EventBody::assistant_message(text))
                                .await?,
                        );
                    }
                    for u in &uses {
                        let call = EventBody::ToolCall(ToolCall {
                            id: u.id.clone(),
                            name: u.name.clone(),
                            input: u.input.clone(),
                            via: None,
                        });
                        events.push(self.append(Source::Agent, call).await?);
                    }
                    // A call that may not run leaves the rest of its step
                    // unrun too: they were planned on top of it.
                    let mut refused: Option<String> = None;
                    let mut print = StepPrint::default();
                    for u in uses {
                        let (name, input) = (u.name.clone(), u.input.clone());
                        let result = match &refused {
                            Some(why) => self.not_run(u, why.clone()).await?,
                            None => match self.approval(&u).await? {
                                Some(verdict) if !verdict.approved() => {
                                    refused = Some(
                                        "not run: an earlier call in this step did not run".into(),
                                    );
                                    self.not_run(u, refusal(&verdict)).await?
                                }
                                _ => self.tools.invoke(u).await?,
                            },
                        };
                        if let EventBody::ToolResult(r) = &result.body {
                            print.add(&name, &input, r);
                        }
                        events.push(result);
                    }
                    if let Some(why) = guard.observe(print) {
                        return Ok(RunEnd::Paused(why));
                    }
                    continue;
                }
                Decision::Reply(text) => text,
                Decision::Finish(text) => {
                    if !text.trim().is_empty() {
                        self.append(Source::Agent, EventBody::assistant_message(text))
                            .await?;
                    }
                    return Ok(RunEnd::Finished);
                }
            };
            events.push(
                self.append(Source::Agent, EventBody::assistant_message(reply))
                    .await?,
            );
            // A message that arrived during the step is answered in this run
            // rather than left waiting.
            if !self.catch_up(&mut events).await? {
                return Ok(RunEnd::Replied);
            }
        }
    }

    /// Appends events stored by others since the last one seen; true if a
    /// user message was among them.
    /// Brings the run's copy of the log up to date; true if a user message
    /// was among what it missed. Seqs are gapless from 1, so a gap in the
    /// copy is an event another writer appended while this run was busy
    /// (the llm capability's thinking and usage, a message the person sent
    /// during a step): the log is read again from the first gap and the
    /// missing events slotted in by seq, never skipped.
    async fn catch_up(&self, events: &mut Vec<Event>) -> Result<bool, StoreError> {
        let held = events
            .iter()
            .zip(1..)
            .take_while(|(e, n)| e.seq == *n)
            .count();
        let missing: Vec<Event> = self
            .log
            .after(held as i64)
            .await?
            .into_iter()
            .filter(|e| {
                events[held..]
                    .binary_search_by_key(&e.seq, |h| h.seq)
                    .is_err()
            })
            .collect();
        let user = missing
            .iter()
            .any(|e| matches!(e.body, EventBody::UserMessage(_)));
        events.extend(missing);
        events.sort_by_key(|e| e.seq);
        Ok(user)
    }

    async fn append(&self, source: Source, body: EventBody) -> Result<Event, StoreError> {
        self.log.append(source, body).await
    }

    async fn error(&self, code: &str, message: &str) {
        if let Err(e) = self
            .append(Source::Host, EventBody::error(code, message))
            .await
        {
            tracing::error!(session = %self.session_id, error = %e, "cannot record error event");
        }
    }

    /// A switch requested while this run was going: recorded through the
    /// one switch operation, then the instance is replaced before the next
    /// step and the state this run holds is dropped with the store's.
    async fn switch(
        &mut self,
        policy: &mut PolicyInstance,
        name: &str,
        state: &mut Option<Vec<u8>>,
    ) {
        let recorded = switch_policy(
            &self.shared,
            &self.log,
            &self.user_id,
            &self.policy_name,
            name,
        )
        .await;
        let swapped = recorded.and_then(|plugin| {
            let grants = self.shared.registry.effective_grants(&plugin);
            policy.swap(plugin, grants).map_err(|e| e.to_string())
        });
        match swapped {
            Ok(()) => {
                self.policy_name = name.to_string();
                *state = None;
                self.state.send_modify(|s| {
                    s.policy = name.to_string();
                    s.pending_policy = None;
                });
            }
            Err(message) => {
                self.state.send_modify(|s| s.pending_policy = None);
                self.error("policy_switch_failed", &message).await;
            }
        }
    }

    fn tool_specs(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    /// Asks the person first if a rule says so: stores the request, waits
    /// for an answer (or the timeout, or a pause), stores the outcome.
    /// `None`: no rule asks, the call just runs.
    async fn approval(&self, call: &ToolUse) -> Result<Option<Verdict>, StoreError> {
        let rules = &self.shared.approval;
        let ask = self.state.borrow().settings.ask_before_acting;
        let Some(reason) = rules.reason(&call.name, &call.input, ask) else {
            return Ok(None);
        };
        // Open before the request is stored: an answer sent the moment a
        // client sees it finds the gate open.
        let control = &self.control;
        let rx = control
            .approvals
            .open(&call.id, || control.pause.load(Ordering::SeqCst));
        let request = ApprovalRequested {
            tool_use_id: call.id.clone(),
            name: call.name.clone(),
            input: call.input.clone(),
            reason,
            expires_at: crate::store::now_ms() + rules.timeout.as_millis() as i64,
        };
        self.append(Source::Host, EventBody::ApprovalRequested(request.clone()))
            .await?;
        let paused = || Verdict {
            outcome: ApprovalOutcome::Withdrawn,
            note: "the session was paused before the call was approved".into(),
        };
        let verdict = match rx {
            None => paused(),
            Some(mut rx) => {
                self.state
                    .send_modify(|s| s.awaiting_approval = Some(request));
                let verdict = match tokio::time::timeout(rules.timeout, &mut rx).await {
                    Ok(Ok(verdict)) => verdict,
                    Ok(Err(_)) => paused(),
                    Err(_) if control.approvals.close(&call.id) => Verdict {
                        outcome: ApprovalOutcome::TimedOut,
                        note: format!("nobody answered within {} s", rules.timeout.as_secs()),
                    },
                    // An answer got in as the time ran out: it counts.
                    Err(_) => rx.try_recv().unwrap_or_else(|_| paused()),
                };
                self.state.send_modify(|s| s.awaiting_approval = None);
                verdict
            }
        };
        let source = match verdict.outcome {
            ApprovalOutcome::Approved | ApprovalOutcome::Denied => Source::User,
            ApprovalOutcome::TimedOut | ApprovalOutcome::Withdrawn => Source::Host,
        };
        let decided = ApprovalDecided {
            tool_use_id: call.id.clone(),
            outcome: verdict.outcome,
            note: verdict.note.clone(),
        };
        self.append(source, EventBody::ApprovalDecided(decided))
            .await?;
        Ok(Some(verdict))
    }

    /// The result of a call that did not run.
    async fn not_run(&self, call: ToolUse, why: String) -> Result<Event, StoreError> {
        let result = EventBody::not_run(call.id, call.name, why);
        self.append(Source::Host, result).await
    }
}

/// What the policy reads for a call that was not approved.
fn refusal(verdict: &Verdict) -> String {
    let head = match verdict.outcome {
        ApprovalOutcome::Approved => "approved",
        ApprovalOutcome::Denied => "the person denied this call",
        ApprovalOutcome::TimedOut => "not run: it needed the person's approval and",
        ApprovalOutcome::Withdrawn => "not run:",
    };
    match (verdict.outcome, verdict.note.trim()) {
        (ApprovalOutcome::Denied, "") => head.to_string(),
        (ApprovalOutcome::Denied, note) => format!("{head}: {note}"),
        (_, note) => format!("{head} {note}"),
    }
}

/// The session error text for a policy's own failure.
fn policy_error_message(error: PolicyError) -> String {
    match error {
        PolicyError::Failed(m) => m,
        PolicyError::Host(e) => match e {
            HostError::Denied(m) => format!("not granted: {m}"),
            HostError::NoSandbox(m) => format!("no sandbox: {m}"),
            HostError::Invalid(m) => format!("invalid request: {m}"),
            HostError::Timeout(m) => format!("timed out: {m}"),
            HostError::Failed(m) => m,
        },
    }
}
