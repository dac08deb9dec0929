//! Claude through Google Vertex AI: the Messages body with Vertex's
//! `anthropic_version`, posted to the model's `streamRawPredict`, with an
//! OAuth access token, answered with the same server-sent events as the
//! Anthropic API.
//!
//! The token comes from a service-account key (a JWT signed with its RSA
//! key, exchanged at its `token_uri`) or, on Google Cloud, from the
//! metadata server. It is kept until a minute before it expires.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::env;
use crate::llm::{LlmError, Secret};

/// Bound on a token endpoint's answer.
const MAX_TOKEN_ANSWER: usize = 64 << 10;
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VertexConfig {
    /// Also `ANTHROPIC_VERTEX_PROJECT_ID`.
    pub project: Option<String>,
    /// Also `CLOUD_ML_REGION`; default `global`.
    pub region: Option<String>,
    /// Default `https://{region}-aiplatform.googleapis.com` (for `global`,
    /// `https://aiplatform.googleapis.com`).
    pub base_url: Option<String>,
    /// A service-account key file; also `GOOGLE_APPLICATION_CREDENTIALS`.
    /// Without one, tokens come from the metadata server.
    pub credentials_file: Option<PathBuf>,
    pub metadata_url: String,
}

impl Default for VertexConfig {
    fn default() -> Self {
        Self {
            project: None,
            region: None,
            base_url: None,
            credentials_file: None,
            metadata_url: "http://metadata.google.internal".into(),
        }
    }
}

/// The fields of a service-account key file we use.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: Secret,
    token_uri: String,
}

enum TokenSource {
    ServiceAccount {
        email: String,
        key: Box<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    Metadata {
        url: String,
    },
}

pub struct Vertex {
    prefix: String,
    source: TokenSource,
    cached: Mutex<Option<(Secret, Instant)>>,
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

impl Vertex {
    pub fn from_config(c: &VertexConfig) -> Result<Self, LlmError> {
        let missing = |what: &str| {
            LlmError::NotConfigured(format!(
                "vertex ({what}: set it under [llm.anthropic.vertex] or in the environment)"
            ))
        };
        let project = c
            .project
            .clone()
            .or_else(|| env("ANTHROPIC_VERTEX_PROJECT_ID"))
            .ok_or_else(|| missing("the project is missing"))?;
        let region = c
            .region
            .clone()
            .or_else(|| env("CLOUD_ML_REGION"))
            .unwrap_or_else(|| "global".into());
        let base = c.base_url.clone().unwrap_or_else(|| {
            if region == "global" {
                "https://aiplatform.googleapis.com".into()
            } else {
                format!("https://{region}-aiplatform.googleapis.com")
            }
        });
        let file = c
            .credentials_file
            .clone()
            .or_else(|| env("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from));
        let source = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| missing(&format!("cannot read {}: {e}", path.display())))?;
                let key: ServiceAccountKey = serde_json::from_str(&text).map_err(|e| {
                    missing(&format!(
                        "{} is not a service-account key: {e}",
                        path.display()
                    ))
                })?;
                let der = pem_der(key.private_key.expose())
                    .ok_or_else(|| missing("the service-account private key is not PEM"))?;
                let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| {
                    missing(&format!("the service-account private key is unusable: {e}"))
                })?;
                TokenSource::ServiceAccount {
                    email: key.client_email,
                    key: Box::new(pair),
                    token_uri: key.token_uri,
                }
            }
            None => TokenSource::Metadata {
                url: format!(
                    "{}/computeMetadata/v1/instance/service-accounts/default/token",
                    c.metadata_url.trim_end_matches('/')
                ),
            },
        };
        Ok(Self {
            prefix: format!(
                "{}/v1/projects/{project}/locations/{region}/publishers/anthropic/models",
                base.trim_end_matches('/')
            ),
            source,
            cached: Mutex::default(),
        })
    }

    pub fn url(&self, model: &str) -> String {
        format!("{}/{model}:streamRawPredict", self.prefix)
    }

    /// A valid access token, fetched if the one held is about to expire.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret, LlmError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = &*cached {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let response = match &self.source {
            TokenSource::ServiceAccount {
                email,
                key,
                token_uri,
            } => {
                let assertion = jwt(email, key, token_uri)?;
                http.post(token_uri)
                    .form(&[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                        ("assertion", assertion.as_str()),
                    ])
                    .send()
                    .await
            }
            TokenSource::Metadata { url } => {
                http.get(url)
                    .header("Metadata-Flavor", "Google")
                    .send()
                    .await
            }
        }
        .map_err(|e| LlmError::Transport(format!("getting a Vertex token: {}", e.without_url())))?;
        let status = response.status();
        let bytes = read_bounded(response).await?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(LlmError::Rejected {
                status: status.as_u16(),
                message: format!(
                    "the token endpoint refused: {}",
                    answer["error_description"]
                        .as_str()
                        .or(answer["error"].as_str())
                        .unwrap_or("no reason given")
                ),
            });
        }
        let token = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| LlmError::Transport("the token endpoint sent no access_token".into()))?;
        let lifetime = answer["expires_in"].as_u64().unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
        let token = Secret::from(token.to_string());
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}

async fn read_bounded(response: reqwest::Response) -> Result<Vec<u8>, LlmError> {
    use futures_util::StreamExt as _;
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| LlmError::Transport(e.without_url().to_string()))?;
        if out.len() + chunk.len() > MAX_TOKEN_ANSWER {
            return Err(LlmError::Transport(
                "the token endpoint's answer is too large".into(),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A signed JWT asking `audience` for a cloud-platform token (RS256).
fn jwt(email: &str, key: &ring::signature::RsaKeyPair, audience: &str) -> Result<String, LlmError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let header = b64.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let claims = b64.encode(
        json!({"iss": email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600})
            .to_string(),
    );
    let signing_input = format!("{header}.{claims}");
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| LlmError::Transport("cannot sign the token request".into()))?;
    Ok(format!("{signing_input}.{}", b64.encode(signature)))
}

/// The Messages body as Vertex takes it: the model is in the URL, the
/// version in the body.
pub fn body(mut body: Value) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.remove("model");
        o.insert("anthropic_version".into(), "vertex-2023-10-16".into());
    }
    body
}
