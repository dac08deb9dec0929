//! The live view: a short-lived ticket for the desktop WebSocket (browsers
//! cannot set headers on a WebSocket, and a token in a URL ends up in logs),
//! the WebSocket-to-VNC bridge behind it, and taking over the desktop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};

use super::auth::User;
use super::error::{ApiError, Json, Path, Query};
use super::sessions::{on_session, view, SessionView};
use super::AppState;
use crate::rfb::{bridge, connect_authenticated};
use crate::session::SessionHandle;

const TICKET_TTL: Duration = Duration::from_secs(30);

struct Ticket {
    session: SessionHandle,
    expires: Instant,
}

/// One-time tickets for the desktop WebSocket.
#[derive(Clone, Default)]
pub struct Tickets(Arc<Mutex<HashMap<String, Ticket>>>);

impl Tickets {
    fn issue(&self, session: SessionHandle) -> String {
        use rand::distr::{Alphanumeric, SampleString};
        let ticket = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, t| t.expires > now);
        map.insert(
            ticket.clone(),
            Ticket {
                session,
                expires: now + TICKET_TTL,
            },
        );
        ticket
    }

    fn redeem(&self, ticket: &str) -> Option<SessionHandle> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(ticket)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.session)
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/{id}/live", post(ticket))
        .route("/sessions/{id}/takeover", post(take_over))
        .route("/sessions/{id}/handback", post(hand_back))
        .route("/live", get(desktop))
}

#[derive(Serialize)]
struct TicketView {
    /// Connect a WebSocket to this path (relative to the API's origin).
    path: String,
    expires_in_secs: u64,
    view_only: bool,
}

async fn ticket(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let (_, handle, ()) = on_session(&state, &user.id, &id, |h| async move {
        h.attach_sandbox().await
    })
    .await?;
    let view_only = !handle.live().user_control;
    let ticket = state.tickets.issue(handle);
    Ok((
        StatusCode::CREATED,
        Json(TicketView {
            // The session names the host to relay to when a fleet's load
            // balancer sends the WebSocket to another host.
            path: format!("/api/v1/live?ticket={ticket}&session={id}"),
            expires_in_secs: TICKET_TTL.as_secs(),
            view_only,
        }),
    ))
}

async fn take_over(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let (session, handle, ()) =
        on_session(
            &state,
            &user.id,
            &id,
            |h| async move { h.take_over().await },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view(session, Some(&handle)))))
}

async fn hand_back(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let (session, handle, ()) =
        on_session(
            &state,
            &user.id,
            &id,
            |h| async move { h.hand_back().await },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view(session, Some(&handle)))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketQuery {
    ticket: String,
    /// The session the ticket is for (where to relay it in a fleet).
    #[serde(default)]
    session: Option<String>,
}

/// RFB client messages are small; the largest allowed is a 1 MiB
/// clipboard, which the bridge checks from its header.
const MAX_VIEWER_MESSAGE: usize = bridge::MAX_CLIPBOARD + (64 << 10);

async fn desktop(
    State(state): State<AppState>,
    Query(query): Query<TicketQuery>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::unauthorized("the live-view ticket is unknown, used or expired");
    let Some(handle) = state.tickets.redeem(&query.ticket) else {
        // Issued by the host running the session, if another runs it.
        let fleet = state.sessions.shared().fleet.clone();
        let (Some(fleet), Some(session)) = (fleet, query.session) else {
            return Err(unknown());
        };
        if crate::fleet::forward::was_forwarded(&headers) {
            return Err(unknown());
        }
        let owner = fleet.owner_elsewhere(&session).await?.ok_or_else(unknown)?;
        let ticket = query.ticket;
        return Ok(ws
            .protocols(["binary"])
            .max_message_size(MAX_VIEWER_MESSAGE)
            .read_buffer_size(8 << 10)
            .on_upgrade(move |socket| async move {
                if let Err(e) = fleet
                    .relay_live(&owner, &session, &ticket, socket, MAX_VIEWER_MESSAGE)
                    .await
                {
                    tracing::warn!(error = %e, "live view not relayed");
                }
            })
            .into_response());
    };
    let target = handle.live().vnc.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_sandbox",
            "the session has no desktop",
        )
    })?;
    Ok(ws
        .protocols(["binary"])
        .max_message_size(MAX_VIEWER_MESSAGE)
        .read_buffer_size(8 << 10)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(socket, handle, target).await {
                tracing::debug!(error = %e, "live view ended");
            }
        })
        .into_response())
}

async fn serve(
    socket: WebSocket,
    handle: SessionHandle,
    target: crate::sandbox::VncTarget,
) -> Result<(), bridge::BridgeError> {
    let (desktop, init) = match connect_authenticated(target.addr, Some(&target.password)).await {
        Ok(connected) => connected,
        Err(e) => {
            let mut socket = socket;
            let _ = socket
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1011,
                    reason: "the desktop is not reachable".into(),
                })))
                .await;
            return Err(bridge::BridgeError::Io(std::io::Error::other(
                e.to_string(),
            )));
        }
    };
    let (sink, stream) = socket.split();
    let incoming = stream
        .take_while(|m| std::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        });
    let mut outgoing = sink.with(|bytes: Vec<u8>| {
        std::future::ready(Ok::<_, axum::Error>(Message::Binary(bytes.into())))
    });
    let state = handle.state.clone();
    let activity = target.activity.clone();
    let result = bridge::run(
        Box::pin(incoming),
        &mut outgoing,
        desktop,
        &init,
        move || state.borrow().user_control,
        move || activity.touch(),
    )
    .await;
    // A viewer that broke the rules is told why before it is closed.
    if let Err(
        e @ (bridge::BridgeError::ClipboardTooLarge(_)
        | bridge::BridgeError::Unsupported(_)
        | bridge::BridgeError::Handshake(_)),
    ) = &result
    {
        // A close reason has at most 123 bytes.
        let mut reason = e.to_string();
        while reason.len() > 123 {
            reason.pop();
        }
        let close = Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1008,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(bridge::SEND_TIMEOUT, outgoing.get_mut().send(close)).await;
    }
    result
}
