//! Claude's cloud platforms, as the local stand-in speaks them:
//!
//! * Amazon Bedrock: `POST /model/{id}/invoke-with-response-stream`, the
//!   SigV4 signature checked by an independent implementation of the
//!   algorithm (so a signer bug cannot check itself), answered with
//!   event-stream frames encoded here whose `chunk` payloads carry the
//!   Messages API events base64-encoded;
//! * Google Vertex AI: a token endpoint that verifies the service
//!   account's RS256 JWT, the metadata server's token endpoint, and
//!   `POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:streamRawPredict`
//!   taking only a token it issued, answered with server-sent events.
//!
//! Both take the scripted replies of [`MockLlm`].

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::mock_llm::{anthropic_events, sse, MockLlm};

pub(super) fn routes() -> Router<MockLlm> {
    Router::new()
        .route("/model/{model}/invoke-with-response-stream", post(bedrock))
        .route("/google/token", post(google_token))
        .route(
            "/computeMetadata/v1/instance/service-accounts/default/token",
            get(metadata_token),
        )
        .route("/v1/projects/{*rest}", post(vertex))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Checks a request's SigV4 signature from the spec: canonical request,
/// string to sign, derived key. `Err` says what is wrong.
fn verify_sigv4(path: &str, headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .map(str::to_string)
            .ok_or(format!("no {name}"))
    };
    let credential = field("Credential=")?;
    let signed_headers = field("SignedHeaders=")?;
    let signature = field("Signature=")?;
    let scope: Vec<&str> = credential.splitn(2, '/').collect();
    let scope = scope.get(1).ok_or("no credential scope")?.to_string();
    let parts: Vec<&str> = scope.split('/').collect();
    if parts.len() != 4 || parts[2] != "bedrock" || parts[3] != "aws4_request" {
        return Err(format!("bad scope {scope}"));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no x-amz-date")?;
    // Not S3: each path segment is encoded again (so `%3A` signs as `%253A`).
    let canonical_uri: String = path
        .split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("signed header {name} missing"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical_request = format!(
        "POST\n{canonical_uri}\n\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in &parts[..4] {
        key = hmac(&key, part.as_bytes());
    }
    let want = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if want == signature {
        Ok(())
    } else {
        Err("signature mismatch".into())
    }
}

/// One event-stream frame with string headers.
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
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&(total as u32).to_be_bytes());
    f.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let crc = crc32(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    let crc = crc32(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

/// CRC-32 (IEEE), bit by bit: slow and obviously right.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn bedrock(
    State(mock): State<MockLlm>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = mock.inner.lock().unwrap().aws_secret.clone();
    let Some(secret) = secret else {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "no AWS account set up"})),
        )
            .into_response();
    };
    if let Err(why) = verify_sigv4(uri.path(), &headers, &body, &secret) {
        return (StatusCode::FORBIDDEN, Json(json!({"message": why}))).into_response();
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "not JSON"})),
        )
            .into_response();
    };
    let events = match anthropic_events(&mock, uri.path(), headers, parsed).await {
        Ok(events) => events,
        Err(refusal) => return refusal,
    };
    // Frames split at arbitrary points, as a network would.
    let mut bytes = Vec::new();
    for (_, event) in events {
        let payload = json!({
            "bytes": base64::engine::general_purpose::STANDARD.encode(event.to_string()),
            "p": "abcdefghij",
        });
        bytes.extend(frame(
            &[
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        ));
    }
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(37)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    (
        [("content-type", "application/vnd.amazon.eventstream")],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

/// Issues a token and remembers it.
fn issue(mock: &MockLlm) -> Json<Value> {
    let mut inner = mock.inner.lock().unwrap();
    let token = format!("ya29.test-{}", inner.issued.len() + 1);
    inner.issued.push(token.clone());
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}

async fn google_token(State(mock): State<MockLlm>, body: String) -> Response {
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%3a", ":")))
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let assertion = get("assertion").unwrap_or_default();
    let pieces: Vec<&str> = assertion.split('.').collect();
    let key = mock.inner.lock().unwrap().google_key.clone();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verified = pieces.len() == 3
        && key.is_some_and(|key| {
            let signature = b64.decode(pieces[2]).unwrap_or_default();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                key,
            )
            .verify(
                format!("{}.{}", pieces[0], pieces[1]).as_bytes(),
                &signature,
            )
            .is_ok()
        });
    if !verified {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
        )
            .into_response();
    }
    let claims: Value =
        serde_json::from_slice(&b64.decode(pieces[1]).unwrap_or_default()).unwrap_or(Value::Null);
    if claims["scope"] != "https://www.googleapis.com/auth/cloud-platform" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_scope"})),
        )
            .into_response();
    }
    issue(&mock).into_response()
}

async fn metadata_token(State(mock): State<MockLlm>, headers: HeaderMap) -> Response {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return StatusCode::FORBIDDEN.into_response();
    }
    issue(&mock).into_response()
}

async fn vertex(
    State(mock): State<MockLlm>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let known = token.is_some_and(|t| mock.inner.lock().unwrap().issued.contains(&t));
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials."}})),
        )
            .into_response();
    }
    if !uri.path().ends_with(":streamRawPredict") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match anthropic_events(&mock, uri.path(), headers, body).await {
        Ok(events) => sse(events, false),
        Err(refusal) => refusal,
    }
}
