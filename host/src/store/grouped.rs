//! Group commit for event appends on PostgreSQL.
//!
//! With many sessions appending at once, one transaction per event spends
//! most of its time waiting for its own commit to reach the disk. Here the
//! appends that arrive while a commit is under way wait in a queue, and the
//! next transaction takes all of them (up to [`MAX_BATCH`]): one commit,
//! one flush, for the lot. Each append still bumps its session's
//! `last_seq` and inserts its row inside that transaction, so sequence
//! numbers stay gapless and per-session order is the order of arrival; and
//! no caller hears back (so nothing is announced) before the commit.
//!
//! If a batch fails (one session was deleted meanwhile, say), its appends
//! are retried one at a time, so one bad append fails alone.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::{Store, StoreError};
use crate::event::{Event, EventBody, Source};

/// Appends one transaction takes at most.
const MAX_BATCH: usize = 128;
/// Transactions under way at once: while one commits, the next fills.
const WORKERS: usize = 4;
/// Appends waiting for a transaction before callers wait to queue.
const QUEUE: usize = 4096;

pub(super) struct Pending {
    pub session_id: String,
    pub source: Source,
    pub body: EventBody,
    reply: oneshot::Sender<Result<Event, StoreError>>,
}

/// The queue appends go through when grouping is on.
pub(super) struct Grouper {
    tx: mpsc::Sender<Pending>,
}

impl Grouper {
    /// Starts the workers on `store` (a copy without grouping, which they
    /// write through).
    pub(super) fn start(store: Store) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            tokio::spawn(work(store.clone(), rx.clone()));
        }
        Arc::new(Self { tx })
    }

    pub(super) async fn append(
        &self,
        session_id: &str,
        source: Source,
        body: EventBody,
    ) -> Result<Event, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            session_id: session_id.to_string(),
            source,
            body,
            reply,
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| StoreError::Corrupt("the append queue stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Corrupt("an append was dropped unanswered".into()))?
    }
}

/// One worker: takes what is queued, writes it in one transaction, answers.
/// Ends when every sender is gone (the store was dropped).
async fn work(store: Store, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            // Rows locked in one order by every worker, so two batches
            // touching the same sessions cannot deadlock; the sort is
            // stable, so one session's appends keep their order.
            batch.sort_by(|a, b| a.session_id.cmp(&b.session_id));
            batch
        };
        match store.append_batch(&batch).await {
            Ok(events) => {
                for (pending, event) in batch.into_iter().zip(events) {
                    let _ = pending.reply.send(Ok(event));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(pending) = batch.into_iter().next() {
                    let _ = pending.reply.send(Err(e));
                }
            }
            Err(_) => {
                for p in batch {
                    let result = store.append_one(&p.session_id, p.source, p.body).await;
                    let _ = p.reply.send(result);
                }
            }
        }
    }
}
