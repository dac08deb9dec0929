//! `agenthost:plugin/llm`: checks, then the configured provider. Keys live
//! in the provider client on the host; the guest only ever sees responses.

use super::HostState;
use crate::plugins::bindings::current::llm::{Host, Request, Response};
use crate::plugins::bindings::current::types::HostError;
use crate::plugins::Capability;

/// What both providers accept (Anthropic takes more, OpenAI four).
const MAX_STOP_SEQUENCES: usize = 4;

impl Host for HostState {
    async fn complete(&mut self, request: Request) -> Result<Response, HostError> {
        self.authorize(Capability::Llm)?;
        if request.stop_sequences.len() > MAX_STOP_SEQUENCES
            || request
                .stop_sequences
                .iter()
                .any(|s| s.is_empty() || s.len() > 256)
        {
            return Err(HostError::Invalid(format!(
                "at most {MAX_STOP_SEQUENCES} stop sequences of 1 to 256 bytes each"
            )));
        }
        let Some(llm) = self.ctx.llm.clone() else {
            return Err(HostError::Failed(
                "no LLM provider is configured on this host (set ANTHROPIC_API_KEY or an OpenAI-compatible \
                 endpoint), or use the scripted policy"
                    .into(),
            ));
        };
        let images = self.ctx.images.clone();
        self.timed("llm completion", llm.complete(request, &images))
            .await
    }
}
