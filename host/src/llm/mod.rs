//! LLM providers behind the host's `llm` interface.
//!
//! Keys live here and only here: plugins send a request without
//! credentials, the host adds them on the wire. A key is a [`Secret`], whose
//! `Debug` and `Display` print a placeholder, so it cannot leak through a
//! log line or an error message.
//!
//! Which provider serves a request is decided by its `model` field:
//! `anthropic` / `anthropic/<model>` and `openai` / `openai/<model>` name one
//! explicitly; a bare `claude-*` goes to Anthropic, any other bare model to
//! the OpenAI-compatible endpoint; no model means the first configured.

mod anthropic;
mod openai;
mod price;
mod recorded;
mod retry;
mod sse;
mod standalone;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

pub use anthropic::{Anthropic, AnthropicConfig, BedrockConfig, Platform, VertexConfig};
pub use openai::{OpenAi, OpenAiConfig};
pub use price::{InputCounting, Price, Prices};
pub use recorded::{RecordedLlm, RecordingError};
pub use standalone::StandaloneLlm;

use crate::plugins::bindings::current::llm::{Request, Response};
use crate::plugins::bindings::current::types::HostError;

/// A credential. Never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    pub anthropic: AnthropicConfig,
    pub openai: OpenAiConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(
        "no LLM provider is configured for model `{0}`: set ANTHROPIC_API_KEY or OPENAI_BASE_URL"
    )]
    NotConfigured(String),
    #[error("the provider rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the provider is unavailable after {attempts} attempts ({status}): {message}")]
    Unavailable {
        attempts: u32,
        status: u16,
        message: String,
    },
    #[error("cannot reach the provider: {0}")]
    Transport(String),
    #[error("the provider's stream broke off or was malformed: {0}")]
    Stream(String),
    #[error("an image in the request is no longer available: {0}")]
    MissingImage(String),
}

impl From<LlmError> for HostError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::Rejected { .. } | LlmError::MissingImage(_) => {
                HostError::Invalid(e.to_string())
            }
            _ => HostError::Failed(e.to_string()),
        }
    }
}

/// Where streamed text goes while a completion is running.
pub trait DeltaSink: Send + Sync {
    fn text(&self, delta: &str);
}

/// Resolves image handles in a request to their bytes.
#[async_trait]
pub trait ImageSource: Send + Sync {
    async fn image(&self, handle: &str) -> Option<(Arc<[u8]>, String)>;
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name in metrics (`anthropic`, `bedrock`, ...).
    fn name(&self) -> &'static str;

    /// The model a request without one gets.
    fn default_model(&self) -> &str;

    /// How this provider's usage counts cached input (for prices).
    fn input_counting(&self) -> InputCounting;

    /// `model` is the provider's own model name (routing prefix removed).
    async fn complete(
        &self,
        request: &Request,
        model: Option<&str>,
        images: &dyn ImageSource,
        deltas: &dyn DeltaSink,
    ) -> Result<Response, LlmError>;
}

/// The configured providers and the routing between them.
#[derive(Clone, Default)]
pub struct Providers {
    anthropic: Option<Arc<dyn Provider>>,
    openai: Option<Arc<dyn Provider>>,
}

impl Providers {
    pub fn from_config(config: &ProvidersConfig) -> Result<Self, LlmError> {
        Ok(Self {
            anthropic: Anthropic::from_config(&config.anthropic)?
                .map(|p| Arc::new(p) as Arc<dyn Provider>),
            openai: OpenAi::from_config(&config.openai)?.map(|p| Arc::new(p) as Arc<dyn Provider>),
        })
    }

    pub fn has_anthropic(&self) -> bool {
        self.anthropic.is_some()
    }

    pub fn has_openai(&self) -> bool {
        self.openai.is_some()
    }

    /// The provider for a request's `model`, and the model name to send.
    pub fn route<'a>(
        &self,
        model: Option<&'a str>,
    ) -> Result<(Arc<dyn Provider>, Option<&'a str>), LlmError> {
        let missing = || LlmError::NotConfigured(model.unwrap_or("(default)").to_string());
        let pick = |p: &Option<Arc<dyn Provider>>| p.clone().ok_or_else(missing);
        let split = |m: &'a str, prefix: &str| -> Option<Option<&'a str>> {
            if m == prefix {
                Some(None)
            } else {
                m.strip_prefix(prefix)
                    .and_then(|r| r.strip_prefix('/'))
                    .map(Some)
            }
        };
        match model {
            None => self
                .anthropic
                .clone()
                .or_else(|| self.openai.clone())
                .map(|p| (p, None))
                .ok_or_else(missing),
            Some(m) => {
                if let Some(rest) = split(m, "anthropic") {
                    Ok((pick(&self.anthropic)?, rest))
                } else if let Some(rest) = split(m, "openai") {
                    Ok((pick(&self.openai)?, rest))
                } else if m.starts_with("claude") {
                    Ok((pick(&self.anthropic)?, Some(m)))
                } else {
                    Ok((pick(&self.openai)?, Some(m)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider that is only ever routed to, never called.
    struct Named;

    #[async_trait]
    impl Provider for Named {
        fn name(&self) -> &'static str {
            "named"
        }

        fn default_model(&self) -> &str {
            "named"
        }

        fn input_counting(&self) -> InputCounting {
            InputCounting::Separate
        }

        async fn complete(
            &self,
            _: &Request,
            _: Option<&str>,
            _: &dyn ImageSource,
            _: &dyn DeltaSink,
        ) -> Result<Response, LlmError> {
            Err(LlmError::NotConfigured("test double".into()))
        }
    }

    fn providers(
        anthropic: bool,
        openai: bool,
    ) -> (Providers, Arc<dyn Provider>, Arc<dyn Provider>) {
        let (a, o): (Arc<dyn Provider>, Arc<dyn Provider>) = (Arc::new(Named), Arc::new(Named));
        let p = Providers {
            anthropic: anthropic.then(|| a.clone()),
            openai: openai.then(|| o.clone()),
        };
        (p, a, o)
    }

    #[test]
    fn models_route_by_prefix_then_by_family() {
        let (p, a, o) = providers(true, true);
        type Case<'a> = (Option<&'a str>, &'a Arc<dyn Provider>, Option<&'a str>);
        let cases: [Case; 7] = [
            (None, &a, None),
            (Some("anthropic"), &a, None),
            (Some("anthropic/claude-opus-4"), &a, Some("claude-opus-4")),
            (Some("claude-sonnet-4-5"), &a, Some("claude-sonnet-4-5")),
            (Some("openai"), &o, None),
            (Some("openai/gpt-5"), &o, Some("gpt-5")),
            (Some("llama3"), &o, Some("llama3")),
        ];
        for (model, want, name) in cases {
            let (got, sent) = p.route(model).unwrap();
            assert!(Arc::ptr_eq(&got, want), "{model:?}");
            assert_eq!(sent, name, "{model:?}");
        }
        // A prefix is a whole word: `anthropics/x` is a bare model name.
        let (got, sent) = p.route(Some("anthropics/x")).unwrap();
        assert!(Arc::ptr_eq(&got, &o));
        assert_eq!(sent, Some("anthropics/x"));
    }

    #[test]
    fn a_missing_provider_is_named_in_the_error() {
        let (only_openai, _, o) = providers(false, true);
        assert!(Arc::ptr_eq(&only_openai.route(None).unwrap().0, &o));
        let err = only_openai.route(Some("claude-x")).err().unwrap();
        assert!(matches!(err, LlmError::NotConfigured(m) if m == "claude-x"));
        let (none, _, _) = providers(false, false);
        assert!(matches!(none.route(None), Err(LlmError::NotConfigured(_))));
    }
}
