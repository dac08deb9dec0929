//! One session's event log: append to the store, then publish live.
//!
//! Appends are serialized per session so the live stream is in sequence
//! order, and each append runs to completion in its own task: cancelling
//! the agent mid-append (a hard stop) can never leave an event stored but
//! unannounced. An append takes its turn *before* its task is spawned, so
//! once a cancelled run has been awaited, [`EventLog::settle`] waits for
//! every append it began: nothing it wrote can land after the actor has
//! read the log to close open tool calls.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::hub::Hub;
use crate::event::{Event, EventBody, Source};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct EventLog {
    store: Store,
    session_id: Arc<str>,
    hub: Hub,
    order: Arc<Mutex<()>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl EventLog {
    pub fn new(
        store: Store,
        session_id: &str,
        hub: Hub,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            store,
            session_id: session_id.into(),
            hub,
            order: Arc::default(),
            metrics,
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub async fn append(&self, source: Source, body: EventBody) -> Result<Event, StoreError> {
        let this = self.clone();
        // Cancelled while waiting for the turn: nothing was appended.
        let turn = self.order.clone().lock_owned().await;
        let task = tokio::spawn(async move {
            let _turn = turn;
            let started = std::time::Instant::now();
            let event = this
                .store
                .append_event(&this.session_id, source, body)
                .await?;
            this.metrics.append(started.elapsed());
            this.hub.publish(&event);
            Ok(event)
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Corrupt(format!(
                "event append task failed: {e}"
            ))),
        }
    }

    /// Waits for every append already begun (cancel, shutdown).
    pub async fn settle(&self) {
        let _turn = self.order.lock().await;
    }

    /// Stored events after `seq`, all of them.
    pub async fn after(&self, seq: i64) -> Result<Vec<Event>, StoreError> {
        self.store.all_events_after(&self.session_id, seq).await
    }
}
