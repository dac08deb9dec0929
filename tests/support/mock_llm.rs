//! A local LLM provider for tests: speaks Anthropic's Messages API and
//! OpenAI's chat completions, both streamed as server-sent events, and
//! answers from a script. Every request is recorded with its headers.
//! This is the one stand-in the tests use; everything else is real.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Text, streamed in the given pieces.
    Text(Vec<&'static str>),
    /// Optional text, then a tool call whose JSON input is streamed in pieces.
    Tool {
        text: Option<&'static str>,
        id: &'static str,
        name: &'static str,
        input: Vec<&'static str>,
    },
    /// Extended thinking (streamed, then signed) and optionally a redacted
    /// thinking block, before another reply. Anthropic only.
    Thinking {
        text: Vec<&'static str>,
        signature: &'static str,
        redacted: Option<&'static str>,
        then: Box<Reply>,
    },
    /// Another reply, held until the test lets it go: `entered` is
    /// notified when the request has arrived, one permit of `release`
    /// sends the answer.
    Held {
        entered: Arc<tokio::sync::Notify>,
        release: Arc<tokio::sync::Semaphore>,
        then: Box<Reply>,
    },
    /// An HTTP error with an optional `retry-after` header.
    Status {
        status: u16,
        retry_after: Option<&'static str>,
        body: Value,
    },
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
pub(super) struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
    /// Bedrock: the secret key requests must be signed with.
    pub(super) aws_secret: Option<String>,
    /// Vertex: the service account's public key (PKCS#1 DER) a token
    /// request's JWT must verify with, and the tokens handed out.
    pub(super) google_key: Option<Vec<u8>>,
    pub(super) issued: Vec<String>,
}

#[derive(Clone, Default)]
pub struct MockLlm {
    pub(super) inner: Arc<Mutex<Inner>>,
}

impl MockLlm {
    pub async fn start(script: Vec<Reply>) -> (Self, SocketAddr) {
        let mock = Self::default();
        mock.inner.lock().unwrap().script = script.into();
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(openai))
            .merge(super::mock_cloud::routes())
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (mock, addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Bedrock requests must be signed with this secret key.
    pub fn expect_aws_secret(&self, secret: &str) {
        self.inner.lock().unwrap().aws_secret = Some(secret.into());
    }

    /// Vertex token requests must be signed by this key (PKCS#1 DER).
    pub fn expect_google_key(&self, public_key: Vec<u8>) {
        self.inner.lock().unwrap().google_key = Some(public_key);
    }

    pub(super) fn next(&self, path: &str, headers: HeaderMap, body: Value) -> Reply {
        let mut inner = self.inner.lock().unwrap();
        inner.requests.push(Recorded {
            path: path.into(),
            headers,
            body,
        });
        inner
            .script
            .pop_front()
            .unwrap_or(Reply::Text(vec!["(script exhausted)"]))
    }
}

pub(super) fn sse(events: Vec<(Option<&str>, Value)>, done: bool) -> Response {
    let mut body = String::new();
    for (name, data) in events {
        if let Some(name) = name {
            body.push_str(&format!("event: {name}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    ([("content-type", "text/event-stream")], Body::from(body)).into_response()
}

fn error(status: u16, retry_after: Option<&str>, body: Value) -> Response {
    let mut res = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    if let Some(r) = retry_after {
        res.headers_mut().insert("retry-after", r.parse().unwrap());
    }
    res
}

async fn anthropic(
    State(mock): State<MockLlm>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    match anthropic_events(&mock, "/v1/messages", headers, body).await {
        Ok(events) => sse(events, false),
        Err(refusal) => refusal,
    }
}

/// The Messages API events of the next scripted reply (or the error
/// response it scripts), whichever platform carries them.
pub(super) async fn anthropic_events(
    mock: &MockLlm,
    path: &str,
    headers: HeaderMap,
    body: Value,
) -> Result<Vec<(Option<&'static str>, Value)>, Response> {
    let mut reply = mock.next(path, headers, body);
    if let Reply::Held {
        entered,
        release,
        then,
    } = reply
    {
        entered.notify_one();
        let _permit = release.acquire().await.expect("the gate stays open");
        reply = *then;
    }
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test",
        "usage": {"input_tokens": 120, "output_tokens": 1, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}}});
    let mut events = vec![
        (Some("message_start"), start),
        (Some("ping"), json!({"type": "ping"})),
    ];
    let mut index = 0;
    let reply = match reply {
        Reply::Thinking {
            text,
            signature,
            redacted,
            then,
        } => {
            events.push((Some("content_block_start"), json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
            for p in text {
                events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": p}})));
            }
            events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": signature}})));
            events.push((
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": index}),
            ));
            index += 1;
            if let Some(data) = redacted {
                events.push((Some("content_block_start"), json!({"type": "content_block_start", "index": index, "content_block": {"type": "redacted_thinking", "data": data}})));
                events.push((
                    Some("content_block_stop"),
                    json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            *then
        }
        other => other,
    };
    let mut text_block = |events: &mut Vec<(Option<&str>, Value)>, pieces: &[&str]| {
        events.push((Some("content_block_start"), json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        for p in pieces {
            events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}})));
        }
        events.push((
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    };
    let stop = match reply {
        Reply::Thinking { .. } | Reply::Held { .. } => {
            unreachable!("Held wraps Thinking, which wraps the rest")
        }
        Reply::Status {
            status,
            retry_after,
            body,
        } => return Err(error(status, retry_after, body)),
        Reply::Text(pieces) => {
            text_block(&mut events, &pieces);
            "end_turn"
        }
        Reply::Tool {
            text,
            id,
            name,
            input,
        } => {
            if let Some(t) = text {
                text_block(&mut events, &[t]);
            }
            events.push((Some("content_block_start"), json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for p in input {
                events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}})));
            }
            events.push((
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": index}),
            ));
            "tool_use"
        }
    };
    events.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 42}})));
    events.push((Some("message_stop"), json!({"type": "message_stop"})));
    Ok(events)
}

async fn openai(
    State(mock): State<MockLlm>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let reply = mock.next("/v1/chat/completions", headers, body);
    let chunk = |delta: Value, finish: Option<&str>| {
        (
            None,
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let finish = match reply {
        Reply::Thinking { .. } | Reply::Held { .. } => {
            unimplemented!("the mock streams thinking and holds replies as Anthropic only")
        }
        Reply::Status {
            status,
            retry_after,
            body,
        } => return error(status, retry_after, body),
        Reply::Text(pieces) => {
            for p in pieces {
                events.push(chunk(json!({"content": p}), None));
            }
            "stop"
        }
        Reply::Tool {
            text,
            id,
            name,
            input,
        } => {
            if let Some(t) = text {
                events.push(chunk(json!({"content": t}), None));
            }
            events.push(chunk(json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}), None));
            for p in input {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    None,
                ));
            }
            "tool_calls"
        }
    };
    events.push(chunk(json!({}), Some(finish)));
    events.push((None, json!({"id": "c1", "object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": 300, "completion_tokens": 25, "prompt_tokens_details": {"cached_tokens": 200}}})));
    sse(events, true)
}
