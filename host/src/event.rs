//! The session's event vocabulary: one typed union of what can happen in a
//! session, written by the host and read back by the same types (the
//! store, the agent loop's history, the WebSocket and the REST API).
//!
//! On the wire every event is the envelope `{id, seq, session_id, kind,
//! source, ts, payload}`; `kind` names the variant and `payload` is its
//! record. A kind this host does not know (written by a newer host) or a
//! payload that does not match its kind is kept as [`EventBody::Unknown`]:
//! old logs always load, and nothing stored is ever rewritten.
//! `assistant_delta` is the one kind only ever sent live: the final text
//! is stored once, as `assistant_message`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::store::{SessionSettings, SessionStatus};

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    User,
    Agent,
    Tool,
    Host,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::Tool => "tool",
            Self::Host => "host",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => Self::User,
            "agent" => Self::Agent,
            "tool" => Self::Tool,
            "host" => Self::Host,
            _ => return None,
        })
    }
}

/// A message's text (user, assistant, or a streamed piece of one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Text {
    pub text: String,
}

/// The model's reasoning before it answered (Claude's extended thinking).
/// Shown to the person, and passed back to the model with the turn it
/// belongs to: a signed block must return unchanged for tool use to go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Thinking {
    pub text: String,
    /// The provider's signature over the text; a block without one is not
    /// sent back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A block of a model's reply that only its provider reads (Claude's
/// redacted thinking), kept to be sent back to that provider unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderPart {
    /// Which provider's block this is (`anthropic`).
    pub provider: String,
    /// The block as that provider sent it.
    pub data: String,
}

/// A tool call the policy decided on (or an outside client asked for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// Pairs the call with its `tool_result`.
    pub id: String,
    pub name: String,
    /// The input as a JSON document, exactly as the policy sent it.
    pub input: String,
    /// Who asked for the call when it was not the session's policy:
    /// `mcp` for an MCP client driving the session. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// A tool call's outcome. Every `tool_call` gets exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub name: String,
    pub content: Vec<StoredPart>,
    pub is_error: bool,
    #[serde(default)]
    pub duration_ms: u64,
}

/// A stored content part: text, or an image kept by its SHA-256 (read it
/// at `/api/v1/sessions/{id}/images/{sha256}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoredPart {
    Text {
        text: String,
    },
    Image {
        sha256: String,
        width: u32,
        height: u32,
        media_type: String,
    },
}

impl StoredPart {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

/// The session's status changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StateChanged {
    pub status: SessionStatus,
    /// Why, when the host knows (`cancelled`, `host restarted`, ...).
    #[serde(default)]
    pub reason: String,
}

/// Another policy drives the session from the next step on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicySwitched {
    pub from: String,
    pub to: String,
    /// The new policy's installed version.
    pub version: String,
}

/// Tokens one model call used, and the session's totals after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    #[serde(default)]
    pub cache_read_tokens: u32,
    #[serde(default)]
    pub cache_write_tokens: u32,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    /// The model that served the call, as the provider was asked for it.
    #[serde(default)]
    pub model: String,
    /// Estimated cost of this call in US dollars; absent when the model
    /// has no price (`[prices]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The session's estimated cost so far, in US dollars.
    #[serde(default)]
    pub total_cost_usd: f64,
}

/// Something went wrong; `code` is stable, `message` is for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// Who drives the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    User,
    Agent,
}

/// The person took the desktop over, or handed it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ControlChanged {
    pub holder: Holder,
}

/// A tool call waits for a person's approval before it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequested {
    /// The waiting `tool_call`'s id.
    pub tool_use_id: String,
    pub name: String,
    /// The call's input, as in its `tool_call`.
    pub input: String,
    /// Which rule asked (an operator rule, or the session's switch).
    pub reason: String,
    /// Unanswered by then (ms since the epoch), the call is denied.
    pub expires_at: i64,
}

/// What became of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// A person approved: the call runs.
    Approved,
    /// A person denied: the policy gets an error result with the note.
    Denied,
    /// Nobody answered in time; a denial.
    TimedOut,
    /// The session was paused, taken over, cancelled or restarted while
    /// the request waited; the call did not run.
    Withdrawn,
}

impl ApprovalOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::TimedOut => "timed out",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// The answer to an `approval_requested`; each request gets exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecided {
    pub tool_use_id: String,
    pub outcome: ApprovalOutcome,
    /// The person's note (a denial's reason reaches the policy), or why a
    /// request was withdrawn.
    #[serde(default)]
    pub note: String,
}

/// A run's desktop recording is ready at
/// `/api/v1/sessions/{id}/recordings/{file}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordingSaved {
    pub file: String,
    pub bytes: u64,
    pub duration_ms: u64,
    pub width: u16,
    pub height: u16,
}

/// Declares the union once: the variants, their kind names and payload
/// types, so writing, reading and the schema cannot drift apart.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident($payload:ty) = $kind:literal,)*) => {
        /// What happened, by kind, with the payload that kind carries.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventBody {
            $($(#[$doc])* $variant($payload),)*
            /// A kind this host does not know, or a payload that does not
            /// match its kind: kept and sent on exactly as stored.
            Unknown { kind: String, payload: Value },
        }

        impl EventBody {
            /// Every kind the host writes or streams.
            pub const KINDS: &'static [&'static str] = &[$($kind),*];

            pub fn kind(&self) -> &str {
                match self {
                    $(Self::$variant(_) => $kind,)*
                    Self::Unknown { kind, .. } => kind,
                }
            }

            /// Reads a stored or received payload. Never fails: what does
            /// not parse is kept as `Unknown`.
            pub fn parse(kind: &str, payload: Value) -> Self {
                let parsed = match kind {
                    $($kind => <$payload>::deserialize(&payload).map(Self::$variant),)*
                    _ => return Self::Unknown { kind: kind.to_string(), payload },
                };
                parsed.unwrap_or_else(|e| {
                    tracing::warn!(kind, error = %e, "an event payload does not match its kind; kept as stored");
                    Self::Unknown { kind: kind.to_string(), payload }
                })
            }

            fn serialize_payload<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$variant(p) => p.serialize(s),)*
                    Self::Unknown { payload, .. } => payload.serialize(s),
                }
            }

            /// The JSON Schema of each kind's payload, by kind.
            pub fn payload_schemas(
                generator: &mut schemars::SchemaGenerator,
            ) -> Vec<(&'static str, schemars::Schema)> {
                vec![$(($kind, generator.subschema_for::<$payload>()),)*]
            }
        }
    };
}

event_kinds! {
    /// The person wrote to the agent.
    UserMessage(Text) = "user_message",
    /// A piece of the assistant's reply while it streams (live only).
    AssistantDelta(Text) = "assistant_delta",
    /// The assistant's whole message.
    AssistantMessage(Text) = "assistant_message",
    /// The model's reasoning, stored when its reply arrives.
    Thinking(Thinking) = "thinking",
    /// A reply block only its provider reads, kept to send back.
    ProviderPart(ProviderPart) = "provider_part",
    ToolCall(ToolCall) = "tool_call",
    ToolResult(ToolResult) = "tool_result",
    StateChanged(StateChanged) = "state_changed",
    PolicySwitched(PolicySwitched) = "policy_switched",
    Usage(Usage) = "usage",
    Error(ErrorInfo) = "error",
    ControlChanged(ControlChanged) = "control_changed",
    /// A tool call waits for a person's approval.
    ApprovalRequested(ApprovalRequested) = "approval_requested",
    /// The approval request was answered, timed out or withdrawn.
    ApprovalDecided(ApprovalDecided) = "approval_decided",
    /// The session's switches changed (the whole new set).
    SettingsChanged(SessionSettings) = "settings_changed",
    /// A run's desktop video (the session's `record_video` switch).
    RecordingSaved(RecordingSaved) = "recording_saved",
}

impl EventBody {
    pub fn user_message(text: impl Into<String>) -> Self {
        Self::UserMessage(Text { text: text.into() })
    }

    pub fn assistant_message(text: impl Into<String>) -> Self {
        Self::AssistantMessage(Text { text: text.into() })
    }

    /// The result of a call that did not run (refused, cancelled,
    /// interrupted): an error saying why, taking no time.
    pub fn not_run(tool_use_id: String, name: String, why: impl Into<String>) -> Self {
        Self::ToolResult(ToolResult {
            tool_use_id,
            name,
            content: vec![StoredPart::text(why)],
            is_error: true,
            duration_ms: 0,
        })
    }

    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Error(ErrorInfo {
            code: code.into(),
            message: message.into(),
        })
    }

    pub fn state_changed(status: SessionStatus, reason: impl Into<String>) -> Self {
        Self::StateChanged(StateChanged {
            status,
            reason: reason.into(),
        })
    }

    /// The payload as a JSON value (for storing).
    pub fn payload(&self) -> Value {
        self.serialize_payload(serde_json::value::Serializer)
            .unwrap_or(Value::Null)
    }
}

/// One stored event: the envelope and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    /// Gapless per session, from 1.
    pub seq: i64,
    pub session_id: String,
    pub source: Source,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub body: EventBody,
}

impl Event {
    pub fn kind(&self) -> &str {
        self.body.kind()
    }
}

/// Serializes a body's payload in place (no intermediate value).
struct PayloadOf<'a>(&'a EventBody);

impl Serialize for PayloadOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_payload(s)
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    id: &'a str,
    seq: i64,
    session_id: &'a str,
    kind: &'a str,
    source: Source,
    ts: i64,
    payload: PayloadOf<'a>,
}

#[derive(Deserialize)]
struct Wire {
    id: String,
    seq: i64,
    session_id: String,
    kind: String,
    source: Source,
    ts: i64,
    payload: Value,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            id: &self.id,
            seq: self.seq,
            session_id: &self.session_id,
            kind: self.kind(),
            source: self.source,
            ts: self.ts,
            payload: PayloadOf(&self.body),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(Self {
            id: w.id,
            seq: w.seq,
            session_id: w.session_id,
            source: w.source,
            ts: w.ts,
            body: EventBody::parse(&w.kind, w.payload),
        })
    }
}

/// A live-only frame: the assistant's reply as it streams (no `seq`).
pub fn delta_frame(session_id: &str, text: &str) -> String {
    #[derive(Serialize)]
    struct Delta<'a> {
        kind: &'a str,
        session_id: &'a str,
        source: Source,
        payload: Text,
    }
    serde_json::to_string(&Delta {
        kind: "assistant_delta",
        session_id,
        source: Source::Agent,
        payload: Text { text: text.into() },
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(kind: &str, payload: Value) -> Value {
        json!({"id": "evt_1", "seq": 3, "session_id": "ses_1", "kind": kind,
               "source": "tool", "ts": 1, "payload": payload})
    }

    #[test]
    fn every_kind_round_trips_through_the_wire_format() {
        let bodies = [
            EventBody::user_message("hi"),
            EventBody::assistant_message("hello"),
            EventBody::ToolCall(ToolCall {
                id: "c1".into(),
                name: "bash".into(),
                input: r#"{"command":"ls"}"#.into(),
                via: None,
            }),
            EventBody::ToolCall(ToolCall {
                id: "c2".into(),
                name: "bash".into(),
                input: "{}".into(),
                via: Some("mcp".into()),
            }),
            EventBody::ToolResult(ToolResult {
                tool_use_id: "c1".into(),
                name: "bash".into(),
                content: vec![
                    StoredPart::text("ok"),
                    StoredPart::Image {
                        sha256: "ab".into(),
                        width: 2,
                        height: 1,
                        media_type: "image/png".into(),
                    },
                ],
                is_error: false,
                duration_ms: 7,
            }),
            EventBody::Thinking(Thinking {
                text: "look first".into(),
                signature: Some("sig".into()),
            }),
            EventBody::Thinking(Thinking {
                text: "unsigned".into(),
                signature: None,
            }),
            EventBody::ProviderPart(ProviderPart {
                provider: "anthropic".into(),
                data: r#"{"type":"redacted_thinking","data":"x"}"#.into(),
            }),
            EventBody::state_changed(SessionStatus::Paused, "host restarted"),
            EventBody::error("x", "y"),
            EventBody::ControlChanged(ControlChanged {
                holder: Holder::User,
            }),
        ];
        for body in bodies {
            let event = Event {
                id: "evt_1".into(),
                seq: 3,
                session_id: "ses_1".into(),
                source: Source::Host,
                ts: 1,
                body,
            };
            let text = serde_json::to_string(&event).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(back, event, "{text}");
            assert!(!matches!(back.body, EventBody::Unknown { .. }), "{text}");
        }
    }

    #[test]
    fn an_unknown_kind_is_kept_and_sent_on_as_stored() {
        let stored = wire("approval_requested", json!({"call": "c1", "extra": [1, 2]}));
        let event: Event = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(event.kind(), "approval_requested");
        assert_eq!(serde_json::to_value(&event).unwrap(), stored);
    }

    #[test]
    fn a_payload_that_does_not_match_its_kind_is_unknown_not_empty() {
        // A renamed field must not silently read as "".
        let body = EventBody::parse("tool_call", json!({"call_id": "c1", "name": "bash"}));
        assert!(matches!(body, EventBody::Unknown { .. }), "{body:?}");
        // Fields added later with defaults still read.
        let body = EventBody::parse(
            "tool_result",
            json!({"tool_use_id": "c1", "name": "bash", "content": [], "is_error": true}),
        );
        assert!(matches!(
            body,
            EventBody::ToolResult(ToolResult { duration_ms: 0, .. })
        ));
    }

    #[test]
    fn kinds_are_unique_and_cover_the_union() {
        let mut kinds = EventBody::KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), EventBody::KINDS.len());
        let mut generator = schemars::SchemaGenerator::default();
        assert_eq!(
            EventBody::payload_schemas(&mut generator).len(),
            EventBody::KINDS.len()
        );
    }
}
