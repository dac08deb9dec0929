//! Asking a person before a tool call runs.
//!
//! [`ApprovalRules`] decide which calls ask (the operator's `[approval]`
//! section, or the session's "ask before acting" switch). A run that meets
//! one opens the session's [`ApprovalGate`], stores `approval_requested`,
//! and waits; the actor answers through the gate (a person's approve or
//! deny, from REST or the WebSocket), a pause withdraws the request, and
//! an unanswered one times out as a denial. The run alone stores the
//! outcome, so every request gets exactly one `approval_decided`.

use std::sync::Mutex;
use std::time::Duration;

use regex::RegexSet;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::config::ApprovalConfig;
use crate::event::ApprovalOutcome;

/// The longest note a person may attach to a decision, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

#[derive(Debug, thiserror::Error)]
#[error("approval.bash: {0}")]
pub struct RulesError(#[from] regex::Error);

/// The operator's rules, compiled.
#[derive(Debug, Clone)]
pub struct ApprovalRules {
    every_action: bool,
    tools: Vec<String>,
    bash: RegexSet,
    pub timeout: Duration,
}

impl Default for ApprovalRules {
    fn default() -> Self {
        Self::new(&ApprovalConfig::default()).expect("the defaults compile")
    }
}

impl ApprovalRules {
    pub fn new(config: &ApprovalConfig) -> Result<Self, RulesError> {
        Ok(Self {
            every_action: config.every_action,
            tools: config.tools.clone(),
            bash: RegexSet::new(&config.bash)?,
            timeout: Duration::from_secs(config.timeout_secs),
        })
    }

    /// Why this call must wait for a person, or `None` if it may run.
    /// `ask_before_acting` is the session's own switch.
    pub fn reason(&self, tool: &str, input: &str, ask_before_acting: bool) -> Option<String> {
        if self.tools.iter().any(|t| t == tool) {
            return Some(format!("the operator asks before every `{tool}` call"));
        }
        // Most calls meet no rule: decide that before reading the input.
        let any_rule =
            self.every_action || ask_before_acting || (tool == "bash" && !self.bash.is_empty());
        if !any_rule {
            return None;
        }
        let input = serde_json::from_str::<Value>(input).unwrap_or(Value::Null);
        let field = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
        if tool == "bash" {
            if let Some(i) = self.bash.matches(field("command")).iter().next() {
                return Some(format!(
                    "the command matches the operator's pattern `{}`",
                    self.bash.patterns()[i]
                ));
            }
        }
        // Calls that only look (the screen, the cursor, a file) change
        // nothing; asking before each would make the switch unusable.
        let observation = match tool {
            "computer" => matches!(field("action"), "screenshot" | "cursor_position" | "zoom"),
            "editor" => field("command") == "view",
            _ => false,
        };
        if (self.every_action || ask_before_acting) && !observation {
            return Some(if ask_before_acting {
                "ask before acting is on for this session".into()
            } else {
                "the operator asks before every action".into()
            });
        }
        None
    }
}

/// What became of a request, as the run receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: ApprovalOutcome,
    pub note: String,
}

impl Verdict {
    pub fn approved(&self) -> bool {
        self.outcome == ApprovalOutcome::Approved
    }
}

struct Waiting {
    tool_use_id: String,
    reply: oneshot::Sender<Verdict>,
}

/// The one request a session's run may be waiting on.
#[derive(Default)]
pub struct ApprovalGate {
    waiting: Mutex<Option<Waiting>>,
}

/// Why a decision could not be delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum DecideError {
    /// No request for this call is waiting (never asked, or decided,
    /// timed out or withdrawn already).
    NotWaiting,
}

impl ApprovalGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the gate for one call. `withdrawn` is checked under the lock,
    /// so a pause that lands between the check and the wait still reaches
    /// the request (see [`Self::withdraw`]).
    pub fn open(
        &self,
        tool_use_id: &str,
        withdrawn: impl FnOnce() -> bool,
    ) -> Option<oneshot::Receiver<Verdict>> {
        let mut waiting = self.lock();
        if withdrawn() {
            return None;
        }
        let (reply, rx) = oneshot::channel();
        *waiting = Some(Waiting {
            tool_use_id: tool_use_id.to_string(),
            reply,
        });
        Some(rx)
    }

    /// A person's answer to the waiting request for `tool_use_id`.
    pub fn decide(&self, tool_use_id: &str, verdict: Verdict) -> Result<(), DecideError> {
        let mut waiting = self.lock();
        match waiting.take() {
            Some(w) if w.tool_use_id == tool_use_id => {
                w.reply.send(verdict).map_err(|_| DecideError::NotWaiting)
            }
            other => {
                *waiting = other;
                Err(DecideError::NotWaiting)
            }
        }
    }

    /// Ends whatever request waits (a pause, a takeover) with `why`.
    pub fn withdraw(&self, why: &str) {
        if let Some(w) = self.lock().take() {
            let _ = w.reply.send(Verdict {
                outcome: ApprovalOutcome::Withdrawn,
                note: why.to_string(),
            });
        }
    }

    /// Closes the gate after a wait that ended on its own (a timeout):
    /// true if the request was still waiting, false if an answer got in
    /// first (it is then in the receiver).
    pub fn close(&self, tool_use_id: &str) -> bool {
        let mut waiting = self.lock();
        match waiting.take() {
            Some(w) if w.tool_use_id == tool_use_id => true,
            other => {
                *waiting = other;
                false
            }
        }
    }

    /// Forgets a request whose run is gone (cancelled, aborted).
    pub fn clear(&self) {
        self.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(config: ApprovalConfig) -> ApprovalRules {
        ApprovalRules::new(&config).unwrap()
    }

    #[test]
    fn rules_match_tools_bash_patterns_and_the_session_switch() {
        let r = rules(ApprovalConfig {
            tools: vec!["editor".into()],
            bash: vec![r"^\s*sudo\b".into(), r"\brm\s+-rf\b".into()],
            ..ApprovalConfig::default()
        });
        assert!(r.reason("editor", r#"{"command":"view"}"#, false).is_some());
        let why = r.reason("bash", r#"{"command":"cd / && rm -rf x"}"#, false);
        assert!(why.unwrap().contains(r"\brm\s+-rf\b"));
        assert!(r
            .reason("bash", r#"{"command":"  sudo ls"}"#, false)
            .is_some());
        assert_eq!(r.reason("bash", r#"{"command":"ls -la"}"#, false), None);
        assert_eq!(r.reason("bash", "not json", false), None);
        assert_eq!(
            r.reason("computer", r#"{"action":"left_click"}"#, false),
            None
        );
        // The session's switch asks before acting, never before looking.
        assert!(r
            .reason("computer", r#"{"action":"left_click"}"#, true)
            .is_some());
        assert!(r.reason("bash", r#"{"command":"ls"}"#, true).is_some());
        assert_eq!(
            r.reason("computer", r#"{"action":"screenshot"}"#, true),
            None
        );
    }

    #[test]
    fn a_bad_pattern_is_a_config_error() {
        let e = ApprovalRules::new(&ApprovalConfig {
            bash: vec!["(unclosed".into()],
            ..ApprovalConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("approval.bash:"), "{e}");
    }

    fn approve() -> Verdict {
        Verdict {
            outcome: ApprovalOutcome::Approved,
            note: String::new(),
        }
    }

    #[test]
    fn the_gate_delivers_one_answer_to_the_waiting_call_only() {
        let gate = ApprovalGate::default();
        let mut rx = gate.open("call_1", || false).unwrap();
        assert_eq!(
            gate.decide("call_2", approve()),
            Err(DecideError::NotWaiting)
        );
        assert_eq!(gate.decide("call_1", approve()), Ok(()));
        assert_eq!(
            gate.decide("call_1", approve()),
            Err(DecideError::NotWaiting)
        );
        assert_eq!(rx.try_recv().unwrap(), approve());
    }

    #[test]
    fn a_pause_withdraws_the_request_even_before_the_wait_begins() {
        let gate = ApprovalGate::default();
        assert!(gate.open("call_1", || true).is_none());
        let mut rx = gate.open("call_1", || false).unwrap();
        gate.withdraw("paused");
        assert_eq!(rx.try_recv().unwrap().outcome, ApprovalOutcome::Withdrawn);
    }

    #[test]
    fn closing_after_a_timeout_loses_no_answer_that_got_in_first() {
        let gate = ApprovalGate::default();
        let mut rx = gate.open("call_1", || false).unwrap();
        gate.decide("call_1", approve()).unwrap();
        assert!(!gate.close("call_1"), "the answer won the race");
        assert!(rx.try_recv().unwrap().approved());
        let _rx = gate.open("call_2", || false).unwrap();
        assert!(gate.close("call_2"));
        assert_eq!(
            gate.decide("call_2", approve()),
            Err(DecideError::NotWaiting)
        );
    }
}
