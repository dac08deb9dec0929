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
mod retry;
mod sse;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

pub use anthropic::{Anthropic, AnthropicConfig};
pub use openai::{OpenAi, OpenAiConfig};

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
