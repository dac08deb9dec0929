//! When a sandbox was last used, and whether the pool stopped it for being
//! idle, shared by its capability backends and the pool's reaper.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` of the last capability call.
    last_ms: AtomicU64,
    stopped_idle: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            stopped_idle: AtomicBool::new(false),
        }
    }
}

impl Activity {
    pub fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn idle_for(&self) -> Duration {
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    pub fn mark_stopped_idle(&self) {
        self.stopped_idle.store(true, Ordering::Relaxed);
    }

    /// The error every later call gets, if the pool stopped the sandbox.
    pub fn stopped_error(&self) -> Option<String> {
        self.stopped_idle
            .load(Ordering::Relaxed)
            .then(|| "the sandbox was stopped after being idle; start a new one".to_string())
    }
}
