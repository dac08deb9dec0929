//! The `llm` capability outside a session, for `agenthost plugin step`:
//! the configured providers, streamed text handed to a callback, no
//! store, budget or usage events (there is no session to charge).

use std::sync::Arc;

use async_trait::async_trait;

use super::{DeltaSink, ImageSource, Providers};
use crate::capabilities::{ImageStore, LlmBackend};
use crate::plugins::bindings::current::llm::{Request, Response};
use crate::plugins::bindings::current::types::HostError;

pub struct StandaloneLlm {
    providers: Providers,
    on_text: Arc<dyn Fn(&str) + Send + Sync>,
}

impl StandaloneLlm {
    pub fn new(providers: Providers, on_text: Arc<dyn Fn(&str) + Send + Sync>) -> Self {
        Self { providers, on_text }
    }
}

struct Memory<'a>(&'a ImageStore);

#[async_trait]
impl ImageSource for Memory<'_> {
    async fn image(&self, handle: &str) -> Option<(Arc<[u8]>, String)> {
        let img = self.0.get(handle)?;
        Some((img.bytes, img.media_type.to_string()))
    }
}

struct Callback<'a>(&'a (dyn Fn(&str) + Send + Sync));

impl DeltaSink for Callback<'_> {
    fn text(&self, delta: &str) {
        (self.0)(delta)
    }
}

#[async_trait]
impl LlmBackend for StandaloneLlm {
    async fn complete(&self, request: Request, images: &ImageStore) -> Result<Response, HostError> {
        let (provider, model) = self.providers.route(request.model.as_deref())?;
        Ok(provider
            .complete(
                &request,
                model,
                &Memory(images),
                &Callback(self.on_text.as_ref()),
            )
            .await?)
    }
}
