//! Retrying a provider call that was refused for load: 429 (rate limit),
//! 529 (Anthropic overloaded) and 5xx gateway errors, with exponential
//! backoff that honours the provider's `retry-after` when it sends one.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};

use super::LlmError;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504 | 529)
}

/// `retry-after-ms` or `retry-after` (seconds), if the response has one.
fn retry_after(response: &Response) -> Option<Duration> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    header("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| header("retry-after").map(Duration::from_secs_f64))
}

/// The error text of a failed response, in the provider's own words.
pub async fn error_message(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            // Anthropic and Vertex: {"error": {"message"}}; Bedrock: {"message"}.
            v.pointer("/error/message")
                .or_else(|| v.pointer("/message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(500).collect())
}

/// The HTTP client the providers share the settings of.
pub fn http_client(timeout_secs: u64) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .build()
        .map_err(|e| LlmError::Transport(e.to_string()))
}

impl RetryPolicy {
    /// Half a second doubling up to a minute, `max_attempts` tries (at least one).
    pub fn with_attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }

    /// Sends the request built by `build` until it succeeds, fails for good,
    /// or the attempts run out. Returns the successful response.
    pub async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, LlmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = build()
                .send()
                .await
                .map_err(|e| LlmError::Transport(e.without_url().to_string()))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if !retryable(status) {
                return Err(LlmError::Rejected {
                    status: status.as_u16(),
                    message: error_message(response).await,
                });
            }
            if attempt >= self.max_attempts {
                return Err(LlmError::Unavailable {
                    attempts: attempt,
                    status: status.as_u16(),
                    message: error_message(response).await,
                });
            }
            let backoff = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
            let delay = retry_after(&response)
                .unwrap_or(backoff)
                .min(self.max_delay);
            tracing::warn!(
                status = status.as_u16(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                "provider refused for load; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}
