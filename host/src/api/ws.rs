//! The session WebSocket: authenticate, send a snapshot, replay stored
//! events after the client's cursor, then stream live events, each exactly
//! once and in order. Commands from the client go to the session actor.
//!
//! A client that stops reading never slows the session: live events reach
//! it through a bounded ring, a send that stays blocked closes the socket,
//! and a client that fell behind the ring is told so (`resync`) and caught
//! up from the store by its cursor.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::auth::{self, User};
use super::error::{ApiError, Path, Query};
use super::sessions::view;
use super::AppState;
use crate::fleet::Following;
use crate::session::{Decision, SessionError, SessionHandle};
use crate::url_path;

const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(20);
const REPLAY_PAGE: i64 = 500;
/// How often an open socket checks that its token still exists (catches
/// revocations made through the CLI or another host; this host's API
/// revocations close sockets at once).
const TOKEN_RECHECK: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// The last sequence number the client has; 0 replays everything.
    #[serde(default)]
    after: i64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Auth {
        token: String,
    },
    UserMessage {
        text: String,
    },
    Pause,
    Resume,
    Cancel,
    SwitchPolicy {
        policy: String,
    },
    TakeOver,
    HandBack,
    Approve {
        tool_use_id: String,
        #[serde(default)]
        note: String,
    },
    Deny {
        tool_use_id: String,
        #[serde(default)]
        note: String,
    },
    Ping,
}

impl ClientMessage {
    /// The REST call a command is (forwarded to another host as that).
    fn as_rest(&self, id: &str) -> (Method, String, Option<Value>) {
        let at = |what: &str| format!("/api/v1/sessions/{id}/{what}");
        match self {
            ClientMessage::UserMessage { text } => {
                (Method::POST, at("messages"), Some(json!({"text": text})))
            }
            ClientMessage::Pause => (Method::POST, at("pause"), None),
            ClientMessage::Resume => (Method::POST, at("resume"), None),
            ClientMessage::Cancel => (Method::POST, at("cancel"), None),
            ClientMessage::SwitchPolicy { policy } => {
                (Method::PUT, at("policy"), Some(json!({"policy": policy})))
            }
            ClientMessage::TakeOver => (Method::POST, at("takeover"), None),
            ClientMessage::HandBack => (Method::POST, at("handback"), None),
            ClientMessage::Approve { tool_use_id, note } => (
                Method::POST,
                at(&format!("approvals/{}", url_path::segment(tool_use_id))),
                Some(json!({"approve": true, "note": note})),
            ),
            ClientMessage::Deny { tool_use_id, note } => (
                Method::POST,
                at(&format!("approvals/{}", url_path::segment(tool_use_id))),
                Some(json!({"approve": false, "note": note})),
            ),
            ClientMessage::Auth { .. } | ClientMessage::Ping => (Method::GET, at(""), None),
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;

pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // With a header the check happens before the upgrade (a plain 401/404);
    // browsers cannot set headers, so they authenticate in the first message.
    let user = match auth::bearer(&headers) {
        Some(token) => {
            let user = auth::verify(&state.store, token).await?;
            state.store.session(&user.id, &id).await?;
            Some((user, token.to_string()))
        }
        None => None,
    };
    Ok(ws
        .max_message_size(1 << 20)
        // Client messages are small; tungstenite's 128 KiB default read
        // buffer per socket would dominate the memory of many viewers.
        .read_buffer_size(8 << 10)
        .on_upgrade(move |socket| async move {
            let (mut sink, mut stream) = socket.split();
            let user = match user {
                Some(u) => u,
                None => match first_message_auth(&state, &mut sink, &mut stream).await {
                    Some(u) => u,
                    None => return,
                },
            };
            let (user, token) = user;
            let opened = state.sessions.open(&user.id, &id).await;
            let target = match opened {
                Ok((_, handle)) => Ok(Target::Local(handle)),
                // Run by another host: followed through the store.
                Err(SessionError::Elsewhere(_)) => match &state.sessions.shared().fleet {
                    Some(fleet) => fleet
                        .follow(&id)
                        .await
                        .map(|following| Target::Remote { following, token })
                        .map_err(SessionError::from),
                    None => Err(SessionError::Stopped),
                },
                Err(e) => Err(e),
            };
            match target {
                Ok(target) => {
                    let _ = run(state, &user, &id, target, query.after.max(0), sink, stream).await;
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    e.log_detail();
                    let _ = send_error(&mut sink, e.code, &e.message).await;
                }
            }
        })
        .into_response())
}

async fn first_message_auth(
    state: &AppState,
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
) -> Option<(User, String)> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, stream.next()).await;
    let token = match first {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
            Ok(ClientMessage::Auth { token }) => token,
            _ => {
                let _ = send_error(
                    sink,
                    "unauthorized",
                    "the first message must be {\"type\":\"auth\",\"token\":\"...\"}",
                )
                .await;
                return None;
            }
        },
        Err(_) => {
            let _ = send_error(sink, "unauthorized", "no auth message within 10 seconds").await;
            return None;
        }
        _ => return None,
    };
    match auth::verify(&state.store, &token).await {
        Ok(user) => Some((user, token)),
        Err(e) => {
            let _ = send_error(sink, e.code, &e.message).await;
            None
        }
    }
}

#[derive(Debug)]
struct Gone;

async fn send(sink: &mut Sink, text: impl Into<Utf8Bytes>) -> Result<(), Gone> {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Gone),
    }
}

async fn send_error(sink: &mut Sink, code: &str, message: &str) -> Result<(), Gone> {
    let frame = json!({"kind": "error", "payload": {"code": code, "message": message}});
    send(sink, frame.to_string()).await
}

/// The session a socket streams: run here, or by another fleet host and
/// followed through the store, its commands forwarded with the client's
/// token.
enum Target {
    Local(SessionHandle),
    Remote { following: Following, token: String },
}

impl Target {
    fn hub(&self) -> &crate::session::Hub {
        match self {
            Target::Local(h) => h.log.hub(),
            Target::Remote { following, .. } => following.hub(),
        }
    }
}

/// Sends stored events after `cursor`, moving the cursor along.
async fn replay(
    state: &AppState,
    session_id: &str,
    sink: &mut Sink,
    cursor: &mut i64,
) -> Result<(), Gone> {
    loop {
        let page = match state
            .store
            .events_after(session_id, *cursor, REPLAY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "replay failed");
                let _ = send_error(sink, "internal", "cannot read the session's events").await;
                return Err(Gone);
            }
        };
        for event in &page {
            send(sink, serde_json::to_string(event).unwrap_or_default()).await?;
            *cursor = event.seq;
        }
        if (page.len() as i64) < REPLAY_PAGE {
            return Ok(());
        }
    }
}

async fn run(
    state: AppState,
    user: &User,
    id: &str,
    target: Target,
    mut cursor: i64,
    mut sink: Sink,
    mut stream: SplitStream<WebSocket>,
) -> Result<(), Gone> {
    let _counted = state.sessions.shared().metrics.websocket();
    // Subscribe before reading the store: an event is either stored before
    // this point (replayed) or published after it (received live).
    let mut live = target.hub().subscribe();
    // A local actor's end closes the socket; a remote one's host may be
    // lost and the session adopted, so a follower stays.
    let mut state_rx = match &target {
        Target::Local(h) => Some(h.state.clone()),
        Target::Remote { .. } => None,
    };
    let session = match state.store.session(&user.id, id).await {
        Ok(s) => s,
        Err(_) => return send_error(&mut sink, "not_found", "session not found").await,
    };
    let handle = match &target {
        Target::Local(h) => Some(h),
        Target::Remote { .. } => None,
    };
    let snapshot = json!({
        "kind": "snapshot",
        "session": view(session.clone(), handle),
        "last_seq": session.last_seq,
    });
    send(&mut sink, snapshot.to_string()).await?;
    replay(&state, id, &mut sink, &mut cursor).await?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut recheck = tokio::time::interval(TOKEN_RECHECK);
    recheck.tick().await;
    let mut revoked = state.revocations.subscribe();
    let expiry = user.expires_at.map(|at| {
        let left = (at - crate::store::now_ms()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_millis(left)
    });
    loop {
        tokio::select! {
            _ = async { tokio::time::sleep_until(expiry.expect("guarded")).await }, if expiry.is_some() => {
                send_error(&mut sink, "token_expired", "the token expired; sign in again").await?;
                break;
            }
            id = revoked.recv() => {
                let gone = match id {
                    Ok(id) => id == user.token_id,
                    Err(_) => !state.store.token_valid(&user.token_id).await.unwrap_or(true),
                };
                if gone {
                    send_error(&mut sink, "token_revoked", "the token was revoked").await?;
                    break;
                }
            }
            _ = recheck.tick() => {
                if !state.store.token_valid(&user.token_id).await.unwrap_or(true) {
                    send_error(&mut sink, "token_revoked", "the token was revoked or expired").await?;
                    break;
                }
            }
            frame = live.recv() => match frame {
                Ok(frame) => {
                    if let Some(seq) = frame.seq {
                        if seq <= cursor {
                            continue;
                        }
                        if seq > cursor + 1 {
                            replay(&state, id, &mut sink, &mut cursor).await?;
                            if seq <= cursor {
                                continue;
                            }
                        }
                        cursor = seq;
                    }
                    send(&mut sink, frame.json.to_string()).await?;
                }
                Err(RecvError::Lagged(_)) => {
                    let notice = json!({"kind": "resync", "payload": {"after": cursor}});
                    send(&mut sink, notice.to_string()).await?;
                    replay(&state, id, &mut sink, &mut cursor).await?;
                }
                Err(RecvError::Closed) => break,
            },
            changed = async { state_rx.as_mut().expect("guarded").changed().await }, if state_rx.is_some() => {
                if changed.is_err() {
                    // The actor is gone: the session was deleted (or the host stops).
                    send_error(&mut sink, "session_closed", "the session was deleted or the host is stopping").await?;
                    break;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => client_message(&state, user, id, &target, &mut sink, &text).await?,
                Some(Ok(Message::Binary(_))) => {
                    send_error(&mut sink, "invalid_message", "messages are JSON text").await?;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            _ = heartbeat.tick() => {
                tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Default::default())))
                    .await
                    .map_err(|_| Gone)?
                    .map_err(|_| Gone)?;
            }
        }
    }
    let _ = sink.close().await;
    Ok(())
}

async fn client_message(
    state: &AppState,
    user: &User,
    id: &str,
    target: &Target,
    sink: &mut Sink,
    text: &str,
) -> Result<(), Gone> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let kind = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
            let detail = match kind {
                None => format!("not a JSON message with a `type`: {e}"),
                Some(t) => format!("invalid `{t}` message: {e}"),
            };
            return send_error(sink, "invalid_message", &detail).await;
        }
    };
    match message {
        ClientMessage::Auth { .. } => {
            return send_error(sink, "invalid_message", "already authenticated").await
        }
        ClientMessage::Ping => return send(sink, r#"{"kind":"pong"}"#).await,
        _ => {}
    }
    let handle = match target {
        Target::Local(h) => h.clone(),
        Target::Remote { token, .. } => {
            // Whoever runs it now: the owner when this socket opened, the
            // host that adopted it since, or this one.
            match state.sessions.open(&user.id, id).await {
                Ok((_, h)) => h,
                Err(SessionError::Elsewhere(owner)) => {
                    let Some(fleet) = &state.sessions.shared().fleet else {
                        return send_error(sink, "session_moved", "the session runs elsewhere")
                            .await;
                    };
                    let (method, path, body) = message.as_rest(id);
                    return match fleet.command(&owner, token, method, &path, body).await {
                        Ok(()) => Ok(()),
                        Err((code, message)) => send_error(sink, &code, &message).await,
                    };
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    return send_error(sink, e.code, &e.message).await;
                }
            }
        }
    };
    let result: Result<(), SessionError> = match message {
        ClientMessage::Auth { .. } | ClientMessage::Ping => Ok(()),
        ClientMessage::UserMessage { text } => handle.user_message(text).await.map(|_| ()),
        ClientMessage::Pause => handle.pause().await,
        ClientMessage::Resume => handle.resume().await,
        ClientMessage::Cancel => handle.cancel().await,
        ClientMessage::SwitchPolicy { policy } => handle.switch_policy(policy).await,
        ClientMessage::TakeOver => handle.take_over().await,
        ClientMessage::HandBack => handle.hand_back().await,
        ClientMessage::Approve { tool_use_id, note } => {
            handle
                .decide(Decision {
                    tool_use_id,
                    approve: true,
                    note,
                })
                .await
        }
        ClientMessage::Deny { tool_use_id, note } => {
            handle
                .decide(Decision {
                    tool_use_id,
                    approve: false,
                    note,
                })
                .await
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = ApiError::from(e);
            e.log_detail();
            send_error(sink, e.code, &e.message).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_commands_keep_a_clients_id_inside_one_path_segment() {
        let deny = ClientMessage::Deny {
            tool_use_id: "../../plugins/x?y".into(),
            note: String::new(),
        };
        let (method, path, _) = deny.as_rest("ses_1");
        assert_eq!(method, Method::POST);
        assert_eq!(
            path,
            "/api/v1/sessions/ses_1/approvals/..%2F..%2Fplugins%2Fx%3Fy"
        );
    }
}
