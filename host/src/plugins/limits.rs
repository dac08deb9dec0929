//! Per-call resource limits, and the store-side bookkeeping that enforces
//! them: a memory cap (a `ResourceLimiter` that remembers it said no, so a
//! guest's out-of-memory abort is reported as the limit it is), a CPU budget
//! that excludes time spent waiting on host calls, and a wall-clock timeout.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::ResourceLimiter;

/// Limits applied to each tool call or policy step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a plugin instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Time the guest may spend running its own code per call. Time spent
    /// in host calls (a shell command, an LLM completion) does not count.
    #[serde(with = "millis")]
    pub cpu: Duration,
    /// Total time per call, host calls included.
    #[serde(with = "millis")]
    pub wall_clock: Duration,
    /// Largest output a tool may return, in bytes of text.
    pub output_bytes: usize,
    /// Plugin instances alive at once in the whole host (a policy keeps
    /// one per active session, a tool call one while it runs): the size
    /// of the engine's instance pool.
    pub instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            cpu: Duration::from_secs(5),
            wall_clock: Duration::from_secs(300),
            output_bytes: 1 << 20,
            instances: 256,
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Enforces the memory cap and remembers whether it refused a growth.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    pub refused: bool,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            refused: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.limit;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Measures guest CPU time as wall time minus time inside host calls.
#[derive(Debug)]
pub struct CpuClock {
    started: Instant,
    in_host: Duration,
    budget: Duration,
    pub exceeded: bool,
}

impl CpuClock {
    pub fn new(budget: Duration) -> Self {
        Self {
            started: Instant::now(),
            in_host: Duration::ZERO,
            budget,
            exceeded: false,
        }
    }

    /// Restart the clock for a new call on a reused store.
    pub fn restart(&mut self) {
        self.started = Instant::now();
        self.in_host = Duration::ZERO;
        self.exceeded = false;
    }

    pub fn add_host_time(&mut self, d: Duration) {
        self.in_host += d;
    }

    /// Called on every epoch tick while the guest runs.
    pub fn over_budget(&mut self) -> bool {
        let guest = self.started.elapsed().saturating_sub(self.in_host);
        self.exceeded = guest > self.budget;
        self.exceeded
    }
}
