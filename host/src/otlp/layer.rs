//! The `tracing` layer that turns spans into OTLP spans: it gives each span
//! ids when it opens, gathers its fields and its events while open, and
//! hands it to the exporter when it closes. Handing over never blocks: if
//! the exporter's queue is full the span is counted and dropped, so a slow
//! or dead collector cannot slow the host down.

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::export::Queue;
use super::span::{EventFields, LiveSpan, Recorder, TraceContext};

pub struct OtlpLayer {
    queue: Queue,
}

impl OtlpLayer {
    pub(super) fn new(queue: Queue) -> Self {
        Self { queue }
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The nearest enclosing span this layer sees (spans its filter
        // leaves out are skipped over).
        let parent = span
            .scope()
            .skip(1)
            .find_map(|p| p.extensions().get::<LiveSpan>().map(LiveSpan::context));
        let mut live = LiveSpan::new(attrs.metadata().name(), parent);
        attrs.record(&mut Recorder(&mut live));
        live.adopt_remote_parent();
        span.extensions_mut().insert(live);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(live) = span.extensions_mut().get_mut::<LiveSpan>() {
                values.record(&mut Recorder(live));
            }
        }
    }

    /// An event inside a span becomes one of its events; an ERROR event
    /// also marks the span failed.
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(live) = extensions.get_mut::<LiveSpan>() else {
            return;
        };
        let mut fields = EventFields::default();
        event.record(&mut Recorder(&mut fields));
        let level = *event.metadata().level();
        let name = if fields.message.is_empty() {
            event.metadata().name().to_string()
        } else {
            fields.message
        };
        let mut attributes = fields.attributes;
        attributes.push((
            "level".into(),
            super::span::Value::String(level.to_string()),
        ));
        live.add_event(name, attributes, fields.dropped, level == Level::ERROR);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(live) = span.extensions_mut().remove::<LiveSpan>() else {
            return;
        };
        self.queue.offer(live.finish());
    }
}

/// The trace context of the current span, for passing on to another host
/// as a `traceparent` header; `None` when traces are not exported.
pub fn current_context() -> Option<TraceContext> {
    tracing::dispatcher::get_default(|dispatch| {
        let id = dispatch.current_span().id()?.clone();
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(&id)?;
        let context = span
            .scope()
            .find_map(|s| s.extensions().get::<LiveSpan>().map(LiveSpan::context));
        context
    })
}
