//! The `llm` capability as one session sees it: the host's providers, with
//! text streamed live to the session's clients, every call's usage stored
//! as an event, and the session's token budget enforced before each call.
//!
//! The model's reasoning (and blocks only its provider reads) is stored
//! here, as the reply arrives, rather than by the policy: the policy's
//! decision carries text and tool calls only, and the host is the one
//! party that sees every reply. The history then hands those parts back
//! with the assistant turn they came with, which is what lets Claude go on
//! using tools with extended thinking on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use super::log::EventLog;
use crate::capabilities::{ImageStore, LlmBackend};
use crate::event::{EventBody, ProviderPart, Source, Thinking, Usage};
use crate::llm::{DeltaSink, ImageSource, Prices, Providers};
use crate::plugins::bindings::current::llm::{MessagePart, Request, Response};
use crate::plugins::bindings::current::types::HostError;
use crate::store::{micros_to_usd, Store};

pub struct SessionLlm {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub providers: Providers,
    pub log: EventLog,
    pub store: Store,
    /// Input plus output tokens spent so far, shared with the agent loop.
    pub spent: Arc<AtomicU64>,
    pub budget: u64,
    pub user_id: String,
    /// The user's daily cap across sessions; 0: none.
    pub tokens_per_day: u64,
    /// For the session's cost estimate.
    pub prices: Arc<Prices>,
}

/// The images a request may name: the session's own, in memory or stored.
struct Images<'a> {
    memory: &'a ImageStore,
    store: &'a Store,
    session_id: &'a str,
}

#[async_trait]
impl ImageSource for Images<'_> {
    async fn image(&self, handle: &str) -> Option<(Arc<[u8]>, String)> {
        if let Some(img) = self.memory.get(handle) {
            return Some((img.bytes, img.media_type.to_string()));
        }
        let sha = handle.strip_prefix("img-")?;
        let img = self.store.image(self.session_id, sha).await.ok()?;
        Some((img.bytes.into(), img.media_type))
    }
}

struct Deltas<'a>(&'a EventLog);

impl DeltaSink for Deltas<'_> {
    fn text(&self, delta: &str) {
        self.0.hub().delta(self.0.session_id(), delta);
    }
}

#[async_trait]
impl LlmBackend for SessionLlm {
    async fn complete(&self, request: Request, images: &ImageStore) -> Result<Response, HostError> {
        let spent = self.spent.load(Ordering::Relaxed);
        if spent >= self.budget {
            return Err(HostError::Denied(format!(
                "the session's token budget is spent ({spent} of {} tokens)",
                self.budget
            )));
        }
        if self.tokens_per_day > 0 {
            let today = self
                .store
                .user_tokens_today(&self.user_id)
                .await
                .map_err(|e| HostError::Failed(e.to_string()))?;
            if today >= self.tokens_per_day {
                return Err(HostError::Denied(format!(
                    "the user's daily token limit is spent ({today} of {} tokens today)",
                    self.tokens_per_day
                )));
            }
        }
        let (provider, model) = self.providers.route(request.model.as_deref())?;
        let model_name = model.unwrap_or(provider.default_model()).to_string();
        let source = Images {
            memory: images,
            store: &self.store,
            session_id: self.log.session_id(),
        };
        let started = std::time::Instant::now();
        // OpenTelemetry's GenAI names, so trace viewers show model calls.
        let span = tracing::info_span!(
            "llm.complete",
            otel.name = %format_args!("chat {model_name}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = %provider.name(),
            gen_ai.request.model = %model_name,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let response = match provider
            .complete(&request, model, &source, &Deltas(&self.log))
            .instrument(span.clone())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.metrics.llm_error(provider.name());
                span.record("otel.status_code", "error");
                return Err(e.into());
            }
        };
        let u = &response.usage;
        span.record("gen_ai.usage.input_tokens", u.input_tokens);
        span.record("gen_ai.usage.output_tokens", u.output_tokens);
        self.metrics.llm_call(
            provider.name(),
            started.elapsed(),
            u64::from(u.input_tokens),
            u64::from(u.output_tokens),
        );
        let added = u64::from(u.input_tokens) + u64::from(u.output_tokens);
        self.spent.fetch_add(added, Ordering::Relaxed);
        self.store
            .add_user_tokens(&self.user_id, added as i64)
            .await
            .map_err(|e| HostError::Failed(e.to_string()))?;
        let cost = self
            .prices
            .cost_micros(&model_name, provider.input_counting(), u);
        let totals = self
            .store
            .add_usage(
                self.log.session_id(),
                i64::from(u.input_tokens),
                i64::from(u.output_tokens),
                cost.unwrap_or(0),
            )
            .await
            .map_err(|e| HostError::Failed(e.to_string()))?;
        for part in &response.parts {
            let body = match part {
                MessagePart::Thinking(t) => EventBody::Thinking(Thinking {
                    text: t.text.clone(),
                    signature: t.signature.clone(),
                }),
                MessagePart::Opaque(o) => EventBody::ProviderPart(ProviderPart {
                    provider: o.provider.clone(),
                    data: o.data.clone(),
                }),
                _ => continue,
            };
            self.log
                .append(Source::Agent, body)
                .await
                .map_err(|e| HostError::Failed(e.to_string()))?;
        }
        let usage = EventBody::Usage(Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            total_input_tokens: totals.input_tokens,
            total_output_tokens: totals.output_tokens,
            model: model_name,
            cost_usd: cost.map(micros_to_usd),
            total_cost_usd: micros_to_usd(totals.cost_micros),
        });
        self.log
            .append(Source::Host, usage)
            .await
            .map_err(|e| HostError::Failed(e.to_string()))?;
        Ok(response)
    }
}
