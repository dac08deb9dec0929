//! A span as OTLP sees it: ids, times, attributes, events and status,
//! gathered from a `tracing` span's fields while it is open, with bounds on
//! everything a caller or a plugin can make large.
//!
//! A few field names steer the export rather than becoming attributes, as
//! in `tracing-opentelemetry`: `otel.name` (the span's name), `otel.kind`
//! (`server`, `client`, `internal`), `otel.status_code` (`error`),
//! `otel.status_message`, and `traceparent` (a W3C trace context a request
//! arrived with, which becomes the parent of a span that has no local one).

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};

/// Attributes kept per span (or event); more are counted as dropped.
pub const MAX_ATTRIBUTES: usize = 32;
/// Events kept per span.
pub const MAX_EVENTS: usize = 16;
/// The longest string value kept, in bytes; longer ones are cut.
pub const MAX_VALUE_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
}

#[derive(Debug, Clone)]
pub struct SpanEvent {
    pub unix_nanos: u64,
    pub name: String,
    pub attributes: Vec<(String, Value)>,
    pub dropped_attributes: u32,
}

/// A closed span, ready to export.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(String, Value)>,
    pub dropped_attributes: u32,
    pub events: Vec<SpanEvent>,
    pub dropped_events: u32,
    /// Set when the span failed: its status is ERROR with this message.
    pub error: Option<String>,
}

/// An open span, kept in the `tracing` registry's extensions.
#[derive(Debug)]
pub struct LiveSpan {
    pub span: FinishedSpan,
    /// The trace context the span arrived with, if any (`traceparent`).
    remote_parent: Option<TraceContext>,
}

impl LiveSpan {
    /// A span named `name` under `parent` (a local span's context), or a
    /// new trace's root.
    pub fn new(name: &str, parent: Option<TraceContext>) -> Self {
        Self {
            span: FinishedSpan {
                trace_id: parent.map_or_else(new_trace_id, |p| p.trace_id),
                span_id: new_span_id(),
                parent_span_id: parent.map(|p| p.span_id),
                name: name.to_string(),
                kind: SpanKind::Internal,
                start_unix_nanos: now_unix_nanos(),
                end_unix_nanos: 0,
                attributes: Vec::new(),
                dropped_attributes: 0,
                events: Vec::new(),
                dropped_events: 0,
                error: None,
            },
            remote_parent: None,
        }
    }

    pub fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.span.trace_id,
            span_id: self.span.span_id,
        }
    }

    /// Takes a remote parent from a `traceparent` field, for a span that
    /// had no local parent: the span joins the caller's trace.
    pub fn adopt_remote_parent(&mut self) {
        if self.span.parent_span_id.is_none() {
            if let Some(remote) = self.remote_parent.take() {
                self.span.trace_id = remote.trace_id;
                self.span.parent_span_id = Some(remote.span_id);
            }
        }
    }

    pub fn add_event(
        &mut self,
        name: String,
        attributes: Vec<(String, Value)>,
        dropped_attributes: u32,
        error: bool,
    ) {
        if error && self.span.error.is_none() {
            self.span.error = Some(name.clone());
        }
        if self.span.events.len() < MAX_EVENTS {
            self.span.events.push(SpanEvent {
                unix_nanos: now_unix_nanos(),
                name,
                attributes,
                dropped_attributes,
            });
        } else {
            self.span.dropped_events += 1;
        }
    }

    pub fn finish(mut self) -> FinishedSpan {
        self.span.end_unix_nanos = now_unix_nanos().max(self.span.start_unix_nanos);
        self.span
    }
}

/// Where recorded field values go: a span's attributes, or an event's.
pub trait FieldSink {
    fn put(&mut self, field: &Field, value: Value);
}

/// Turns `tracing`'s field values into OTLP values for a [`FieldSink`].
pub struct Recorder<'a, S: FieldSink>(pub &'a mut S);

impl<S: FieldSink> Visit for Recorder<'_, S> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field, Value::String(bounded(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field, int_or_string(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field, Value::Double(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.put(field, Value::String(bounded_debug(value)));
    }
}

/// A span's fields become its attributes, except the steering names.
impl FieldSink for LiveSpan {
    fn put(&mut self, field: &Field, value: Value) {
        let span = &mut self.span;
        match (field.name(), &value) {
            ("otel.name", Value::String(s)) => span.name = s.clone(),
            ("otel.kind", Value::String(s)) => {
                span.kind = match s.as_str() {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    _ => SpanKind::Internal,
                }
            }
            ("otel.status_code", Value::String(s)) => {
                if s.eq_ignore_ascii_case("error") && span.error.is_none() {
                    span.error = Some(String::new());
                }
            }
            ("otel.status_message", Value::String(s)) => span.error = Some(s.clone()),
            ("traceparent", Value::String(s)) => self.remote_parent = TraceContext::parse(s),
            (name, _) => put_attribute(
                &mut span.attributes,
                &mut span.dropped_attributes,
                name,
                value,
            ),
        }
    }
}

/// Replaces an attribute of the same name (a field recorded again), else
/// appends within the bound.
fn put_attribute(
    attributes: &mut Vec<(String, Value)>,
    dropped: &mut u32,
    name: &str,
    value: Value,
) {
    if let Some(slot) = attributes.iter_mut().find(|(k, _)| k == name) {
        slot.1 = value;
    } else if attributes.len() < MAX_ATTRIBUTES {
        attributes.push((name.to_string(), value));
    } else {
        *dropped += 1;
    }
}

/// An event's message and fields.
#[derive(Default)]
pub struct EventFields {
    pub message: String,
    pub attributes: Vec<(String, Value)>,
    pub dropped: u32,
}

impl FieldSink for EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            if let Value::String(s) = value {
                self.message = s;
            }
            return;
        }
        put_attribute(&mut self.attributes, &mut self.dropped, field.name(), value);
    }
}

fn int_or_string(value: u64) -> Value {
    i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::Int)
}

/// `value`, cut to [`MAX_VALUE_BYTES`] on a character boundary.
fn bounded(value: &str) -> String {
    if value.len() <= MAX_VALUE_BYTES {
        return value.to_string();
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// `value`'s Debug text, formatted no further than [`MAX_VALUE_BYTES`]: a
/// field holding a model's or a plugin's text is never copied whole first.
fn bounded_debug(value: &dyn std::fmt::Debug) -> String {
    /// Takes text until full, then stops the formatting with an error.
    struct Capped {
        text: String,
        cut: bool,
    }
    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = MAX_VALUE_BYTES - self.text.len();
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.cut = true;
            Err(std::fmt::Error)
        }
    }
    let mut out = Capped {
        text: String::new(),
        cut: false,
    };
    // The error is the cap stopping the formatting.
    let _ = std::fmt::write(&mut out, format_args!("{value:?}"));
    if out.cut {
        out.text.push('…');
    }
    out.text
}

/// Where a span sits: its trace and its own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
}

impl TraceContext {
    /// A W3C `traceparent` header: `VERSION-TRACEID-PARENTID-FLAGS`, hex.
    /// Anything else, or all-zero ids (invalid by the spec), is ignored.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four parts; later versions may add more.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !(hex(version) && hex(trace) && hex(span) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self { trace_id, span_id })
    }

    /// This context as a `traceparent` header, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }
}

fn new_trace_id() -> u128 {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return id;
        }
    }
}

fn new_span_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_the_spec_rejects() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(good).unwrap();
        assert_eq!(ctx.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ctx.span_id, 0x00f067aa0ba902b7);
        assert_eq!(ctx.traceparent(), good);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version may carry more parts.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_VALUE_BYTES + "…".len());
        assert!(cut.ends_with('…'));
        let cut = bounded_debug(&long);
        assert!(cut.len() <= MAX_VALUE_BYTES + "…".len(), "{}", cut.len());
        assert!(cut.starts_with("\"éé") && cut.ends_with('…'));
        assert_eq!(bounded_debug(&"short"), "\"short\"");
    }

    #[test]
    fn attributes_and_events_are_bounded() {
        let mut span = LiveSpan::new("s", None);
        for i in 0..MAX_ATTRIBUTES + 5 {
            put_attribute(
                &mut span.span.attributes,
                &mut span.span.dropped_attributes,
                &format!("a{i}"),
                Value::Int(i as i64),
            );
        }
        // A field recorded again replaces its value, even when full.
        put_attribute(
            &mut span.span.attributes,
            &mut span.span.dropped_attributes,
            "a0",
            Value::Bool(true),
        );
        for i in 0..MAX_EVENTS + 3 {
            span.add_event(format!("e{i}"), vec![], 0, i == 1);
        }
        let done = span.finish();
        assert_eq!(done.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(done.attributes[0].1, Value::Bool(true));
        assert_eq!(done.dropped_attributes, 5);
        assert_eq!(done.events.len(), MAX_EVENTS);
        assert_eq!(done.dropped_events, 3);
        assert_eq!(done.error.as_deref(), Some("e1"));
        assert!(done.end_unix_nanos >= done.start_unix_nanos);
    }
}
