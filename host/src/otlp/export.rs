//! The exporter: a thread of its own with a small runtime, so exporting
//! never competes with sessions for the host's workers and still runs
//! while the host shuts down. It sends a batch when it is full or when the
//! oldest span in it has waited the schedule delay, and everything left
//! when asked to flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::config::OtlpConfig;
use super::proto;
use super::span::FinishedSpan;

enum Message {
    Span(Box<FinishedSpan>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// The layer's side of the exporter's queue.
pub struct Queue {
    tx: mpsc::Sender<Message>,
    /// Spans the full queue turned away, reported by the exporter.
    dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Queues a span, or counts it dropped if the queue is full.
    pub fn offer(&self, span: FinishedSpan) {
        if self.tx.try_send(Message::Span(Box::new(span))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The host's handle on the exporter.
pub struct Exporter {
    tx: mpsc::Sender<Message>,
}

impl Exporter {
    /// Starts the exporter thread; returns the handle and the layer's queue.
    pub fn start(config: OtlpConfig) -> std::io::Result<(Self, Queue)> {
        let (tx, rx) = mpsc::channel(config.max_queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || runtime.block_on(run(config, rx, counter)))?;
        Ok((Self { tx: tx.clone() }, Queue { tx, dropped }))
    }

    /// Sends every queued span, waiting at most `timeout`. Called as the
    /// process ends, so the last requests' spans are not lost.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (done, wait) = std::sync::mpsc::channel();
        let mut message = Message::Flush(done);
        // A full queue makes room as the exporter works; wait for it.
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let _ = wait.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

async fn run(config: OtlpConfig, mut rx: mpsc::Receiver<Message>, dropped: Arc<AtomicU64>) {
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .default_headers(config.headers.clone())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "OTLP export is off: cannot make an HTTP client");
            return;
        }
    };
    let mut sender = Sender {
        client,
        config: &config,
        dropped: &dropped,
        failures: 0,
    };
    let mut batch: Vec<FinishedSpan> = Vec::new();
    let mut oldest: Option<tokio::time::Instant> = None;
    loop {
        let deadline = oldest.map(|t| t + config.schedule_delay);
        let message = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    sender.send(std::mem::take(&mut batch)).await;
                    oldest = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match message {
            Some(Message::Span(span)) => {
                batch.push(*span);
                oldest.get_or_insert_with(tokio::time::Instant::now);
                if batch.len() >= config.max_batch {
                    sender.send(std::mem::take(&mut batch)).await;
                    oldest = None;
                }
            }
            Some(Message::Flush(done)) => {
                // Everything queued before the flush is in the channel
                // ahead of it, so it is in `batch` by now.
                while !batch.is_empty() {
                    let n = batch.len().min(config.max_batch);
                    let rest = batch.split_off(n);
                    sender.send(std::mem::replace(&mut batch, rest)).await;
                }
                oldest = None;
                let _ = done.send(());
            }
            None => return,
        }
    }
}

/// Says how many spans were dropped for a full queue since it last said.
fn report_dropped(dropped: &AtomicU64) {
    let lost = dropped.swap(0, Ordering::Relaxed);
    if lost > 0 {
        tracing::warn!(
            spans = lost,
            "OTLP export dropped spans: its queue was full (OTEL_BSP_MAX_QUEUE_SIZE)"
        );
    }
}

struct Sender<'a> {
    client: reqwest::Client,
    config: &'a OtlpConfig,
    dropped: &'a AtomicU64,
    /// Failed exports in a row: the first is logged, then every 100th.
    failures: u64,
}

impl Sender<'_> {
    async fn send(&mut self, spans: Vec<FinishedSpan>) {
        if spans.is_empty() {
            return;
        }
        let body = proto::export_request(&self.config.resource, &spans);
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let result = self
                .client
                .post(&self.config.endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => break Ok(()),
                // The spec's retryable answers: one more try after a pause.
                Ok(r) if attempt < 2 && matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(r) => break Err(format!("the collector answered {}", r.status())),
                Err(e) if attempt < 2 && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // The error's text names the URL but never the headers.
                Err(e) => break Err(causes(&e.without_url())),
            }
        };
        report_dropped(self.dropped);
        match outcome {
            Ok(()) => self.failures = 0,
            Err(why) => {
                if self.failures.is_multiple_of(100) {
                    tracing::warn!(
                        endpoint = %self.config.endpoint,
                        spans = spans.len(),
                        error = %why,
                        "OTLP export failed; the spans are dropped"
                    );
                }
                self.failures += 1;
            }
        }
    }
}

/// An error and its causes, one after another: reqwest's own text alone
/// ("error sending request") does not say what went wrong.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
