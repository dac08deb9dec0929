//! Claude through Amazon Bedrock: the Messages body with Bedrock's
//! `anthropic_version`, posted to `invoke-with-response-stream`, signed
//! with SigV4 (AWS's own `aws-sigv4` crate), answered as Amazon's binary
//! event stream whose `chunk` events carry the same JSON events the
//! Anthropic API streams.

use std::time::SystemTime;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::env;
use crate::llm::{LlmError, Secret};

/// The largest event-stream frame read; anything bigger is refused before
/// it is buffered (a Messages event is a few KiB).
const MAX_FRAME_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BedrockConfig {
    /// Also `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// Also `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Default `https://bedrock-runtime.{region}.amazonaws.com`.
    pub base_url: Option<String>,
}

pub struct Bedrock {
    region: String,
    base: String,
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl Bedrock {
    pub fn from_config(c: &BedrockConfig) -> Result<Self, LlmError> {
        let missing = |what: &str| {
            LlmError::NotConfigured(format!(
                "bedrock ({what} is missing: set it under [llm.anthropic.bedrock] or in the environment)"
            ))
        };
        let region = c
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| missing("the region"))?;
        let access_key_id = c
            .access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .ok_or_else(|| missing("the access key id"))?;
        let secret_access_key = c
            .secret_access_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY").map(Secret::from))
            .ok_or_else(|| missing("the secret access key"))?;
        let session_token = c
            .session_token
            .clone()
            .or_else(|| env("AWS_SESSION_TOKEN").map(Secret::from));
        let base = c
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        Ok(Self {
            region,
            base: base.trim_end_matches('/').to_string(),
            access_key_id,
            secret_access_key,
            session_token,
        })
    }

    /// The streaming endpoint of `model` (a Bedrock model or inference
    /// profile id; its `:` is escaped as the AWS SDKs do).
    pub fn url(&self, model: &str) -> String {
        let escaped = crate::url_path::segment(model);
        format!("{}/model/{escaped}/invoke-with-response-stream", self.base)
    }

    /// The headers that sign a POST of `body` to `url` now.
    pub fn sign(&self, url: &str, body: &[u8]) -> Result<Vec<(String, String)>, LlmError> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let fail = |e: &dyn std::fmt::Display| LlmError::Transport(format!("cannot sign: {e}"));
        let identity = aws_credential_types::Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "agenthost-config",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| fail(&e))?
            .into();
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/vnd.amazon.eventstream"),
        ];
        let request =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| fail(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| fail(&e))?.into_parts();
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.extend(
            instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Ok(out)
    }
}

/// The Messages body as Bedrock takes it: the model is in the URL, the
/// version and betas in the body.
pub fn body(mut body: Value, beta: Option<&str>) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.remove("model");
        o.remove("stream");
        o.insert("anthropic_version".into(), "bedrock-2023-05-31".into());
        if let Some(beta) = beta {
            o.insert("anthropic_beta".into(), serde_json::json!([beta]));
        }
    }
    body
}

/// Reads Amazon's event-stream framing: each message is a prelude (total
/// and header lengths, CRC), headers, a payload and a CRC of it all.
#[derive(Default)]
pub struct EventStream {
    buf: Vec<u8>,
}

/// What one frame of a Bedrock stream says.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A Messages API event, as JSON text.
    Event(String),
    /// The service stopped the stream (`:exception-type`, message).
    Exception(String, String),
    /// Anything else (future event types): skipped.
    Other,
}

impl EventStream {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, LlmError> {
        let bad = |why: &str| LlmError::Stream(format!("malformed event stream: {why}"));
        if self.buf.len() < 12 {
            return Ok(None);
        }
        let word = |at: usize| {
            u32::from_be_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ])
        };
        let (total, headers_len, prelude_crc) = (word(0) as usize, word(4) as usize, word(8));
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(bad("prelude checksum"));
        }
        if total > MAX_FRAME_BYTES {
            return Err(bad(&format!("a frame of {total} bytes")));
        }
        if total < 16 || headers_len > total - 16 {
            return Err(bad("lengths"));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame: Vec<u8> = self.buf.drain(..total).collect();
        let crc = u32::from_be_bytes([
            frame[total - 4],
            frame[total - 3],
            frame[total - 2],
            frame[total - 1],
        ]);
        if crc32fast::hash(&frame[..total - 4]) != crc {
            return Err(bad("message checksum"));
        }
        let headers = parse_headers(&frame[12..12 + headers_len]).ok_or_else(|| bad("headers"))?;
        let payload = &frame[12 + headers_len..total - 4];
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match (header(":message-type"), header(":event-type")) {
            (Some("event"), Some("chunk")) => {
                let chunk: Value =
                    serde_json::from_slice(payload).map_err(|_| bad("a chunk that is not JSON"))?;
                let bytes = chunk["bytes"]
                    .as_str()
                    .ok_or_else(|| bad("a chunk without bytes"))?;
                let event = base64::engine::general_purpose::STANDARD
                    .decode(bytes)
                    .map_err(|_| bad("a chunk's bytes are not base64"))?;
                Ok(Some(Frame::Event(
                    String::from_utf8(event).map_err(|_| bad("a chunk that is not UTF-8"))?,
                )))
            }
            (Some("exception" | "error"), _) => {
                let kind = header(":exception-type")
                    .or(header(":error-code"))
                    .unwrap_or("exception")
                    .to_string();
                let message = serde_json::from_slice::<Value>(payload)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| {
                        String::from_utf8_lossy(payload).chars().take(500).collect()
                    });
                Ok(Some(Frame::Exception(kind, message)))
            }
            _ => Ok(Some(Frame::Other)),
        }
    }
}

/// The string-valued headers of a frame (others are skipped by size).
fn parse_headers(mut b: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = *b.first()? as usize;
        let name = std::str::from_utf8(b.get(1..1 + name_len)?)
            .ok()?
            .to_string();
        b = b.get(1 + name_len..)?;
        let kind = *b.first()?;
        b = b.get(1..)?;
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return None,
        };
        match fixed {
            Some(n) => b = b.get(n..)?,
            None => {
                let len = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
                let value = b.get(2..2 + len)?;
                if kind == 7 {
                    out.push((name, std::str::from_utf8(value).ok()?.to_string()));
                }
                b = b.get(2 + len..)?;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (k, v) in headers {
            h.push(k.len() as u8);
            h.extend_from_slice(k.as_bytes());
            h.push(7);
            h.extend_from_slice(&(v.len() as u16).to_be_bytes());
            h.extend_from_slice(v.as_bytes());
        }
        let total = 16 + h.len() + payload.len();
        let mut f = Vec::new();
        f.extend_from_slice(&(total as u32).to_be_bytes());
        f.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let crc = crc32fast::hash(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(payload);
        let crc = crc32fast::hash(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        f
    }

    #[test]
    fn frames_split_anywhere_are_read_whole_and_checked() {
        let event = r#"{"type":"message_stop"}"#;
        let payload = serde_json::json!({
            "bytes": base64::engine::general_purpose::STANDARD.encode(event)
        })
        .to_string();
        let f = frame(
            &[(":message-type", "event"), (":event-type", "chunk")],
            payload.as_bytes(),
        );
        let mut s = EventStream::default();
        s.push(&f[..5]);
        assert_eq!(s.next_frame().unwrap(), None);
        s.push(&f[5..]);
        assert_eq!(s.next_frame().unwrap(), Some(Frame::Event(event.into())));
        assert_eq!(s.next_frame().unwrap(), None);

        let mut corrupt = f.clone();
        let last = corrupt.len() - 6;
        corrupt[last] ^= 1;
        let mut s = EventStream::default();
        s.push(&corrupt);
        assert!(s.next_frame().is_err());
    }

    #[test]
    fn an_exception_frame_names_itself_and_a_huge_frame_is_refused_unread() {
        let f = frame(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let mut s = EventStream::default();
        s.push(&f);
        assert_eq!(
            s.next_frame().unwrap(),
            Some(Frame::Exception(
                "throttlingException".into(),
                "slow down".into()
            ))
        );
        let mut huge = Vec::new();
        huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&huge);
        huge.extend_from_slice(&crc.to_be_bytes());
        let mut s = EventStream::default();
        s.push(&huge);
        assert!(s.next_frame().is_err());
    }

    #[test]
    fn the_model_id_is_escaped_in_the_path() {
        let b = Bedrock::from_config(&BedrockConfig {
            region: Some("us-east-1".into()),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("secret".to_string().into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            b.url("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/\
             us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
        );
    }
}
