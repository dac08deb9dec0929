//! Live fan-out of one session's events to its WebSocket clients.
//!
//! Each event is serialized once and shared by every client. The channel
//! is a bounded ring: sending never waits for a client, so a slow or stuck
//! client cannot stall the session; a client that falls behind the ring
//! learns it lagged and catches up from the store by its cursor.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::event::{self, Event};

/// Frames a client may be behind before it must resync from the store.
const RING: usize = 1024;

#[derive(Debug)]
pub struct Frame {
    /// The stored event's sequence number; `None` for live-only frames.
    pub seq: Option<i64>,
    pub json: Arc<str>,
}

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Frame>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(RING).0,
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }

    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn publish(&self, event: &Event) {
        let json = serde_json::to_string(event).unwrap_or_default();
        // No receivers is fine: nobody is watching right now.
        let _ = self.tx.send(Arc::new(Frame {
            seq: Some(event.seq),
            json: json.into(),
        }));
    }

    pub fn delta(&self, session_id: &str, text: &str) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(Arc::new(Frame {
            seq: None,
            json: event::delta_frame(session_id, text).into(),
        }));
    }
}
