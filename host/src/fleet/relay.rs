//! The live desktop view across a fleet. A live-view ticket lives on the
//! host that runs the session (it issued it); a viewer's WebSocket that a
//! load balancer sends to another host is relayed there, message for
//! message, so the page works whichever host it reaches.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Upstream;

use super::forward::FORWARDED_BY;
use super::Fleet;
use crate::store::FleetHost;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot reach the host running the session ({host}): {detail}")]
    Unreachable { host: String, detail: String },
}

impl Fleet {
    /// Connects to `owner`'s live view for `ticket` (of `session`), then
    /// carries the viewer's `socket` to it both ways until either side
    /// closes. Messages are bounded on the way in as the owner bounds them.
    pub async fn relay_live(
        &self,
        owner: &FleetHost,
        session: &str,
        ticket: &str,
        socket: WebSocket,
        max_message: usize,
    ) -> Result<(), RelayError> {
        let unreachable = |detail: String| RelayError::Unreachable {
            host: owner.id.clone(),
            detail,
        };
        let base = owner
            .url
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
            .or_else(|| {
                owner
                    .url
                    .strip_prefix("https://")
                    .map(|rest| format!("wss://{rest}"))
            })
            .ok_or_else(|| unreachable(format!("`{}` is not an http(s) address", owner.url)))?;
        let url = format!(
            "{base}/api/v1/live?ticket={}&session={}",
            crate::url_path::segment(ticket),
            crate::url_path::segment(session)
        );
        let mut request = url
            .into_client_request()
            .map_err(|e| unreachable(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static("binary"),
        );
        if let Ok(me) = http::HeaderValue::from_str(self.host_id()) {
            headers.insert(FORWARDED_BY, me);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .read_buffer_size(8 << 10);
        let connected = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio_tungstenite::connect_async_with_config(request, Some(config), true),
        )
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?;
        let (upstream, _) = connected.map_err(|e| unreachable(e.to_string()))?;
        let (mut up_tx, mut up_rx) = upstream.split();
        let (mut down_tx, mut down_rx) = socket.split();
        let to_owner = async {
            while let Some(Ok(message)) = down_rx.next().await {
                let bytes = match message {
                    Message::Binary(bytes) => bytes,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if up_tx.send(Upstream::Binary(bytes)).await.is_err() {
                    break;
                }
            }
            let _ = up_tx.close().await;
        };
        let to_viewer = async {
            while let Some(Ok(message)) = up_rx.next().await {
                let bytes = match message {
                    Upstream::Binary(bytes) => bytes,
                    // The owner's reason (a rule broken, no desktop) reaches
                    // the viewer unchanged.
                    Upstream::Close(frame) => {
                        let frame = frame.map(|f| CloseFrame {
                            code: f.code.into(),
                            reason: f.reason.as_str().into(),
                        });
                        let _ = down_tx.send(Message::Close(frame)).await;
                        return;
                    }
                    _ => continue,
                };
                if down_tx.send(Message::Binary(bytes)).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            () = to_owner => {}
            () = to_viewer => {}
        }
        Ok(())
    }
}
