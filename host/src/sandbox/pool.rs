//! Sandboxes booted and connected ahead of time, so a session claims one
//! instantly. A background task keeps `warm` sandboxes ready, never running
//! more than `max_running` in all. A claimed sandbox belongs to its claimer,
//! who releases it when done (sandboxes are never reused); stopping a
//! claimed sandbox that sits idle is the session's decision, since only the
//! session knows whether it is idle.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Activity, Docker, Sandbox, SandboxError};

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Sandboxes kept booted and unclaimed.
    pub warm: usize,
    /// Cap on sandboxes alive at once, claimed or warm.
    pub max_running: usize,
    /// A claimed sandbox unused for this long is stopped; later calls on it
    /// fail saying so. `None` never stops one.
    pub idle_timeout: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            warm: 1,
            max_running: 8,
            idle_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    pub warm: usize,
    pub running: usize,
    pub booting: usize,
}

struct Shared {
    docker: Docker,
    config: PoolConfig,
    ready: Mutex<VecDeque<Sandbox>>,
    /// Every sandbox alive that the pool started, claimed ones included.
    running: AtomicUsize,
    /// Claimed sandboxes by container id, for the idle reaper.
    claimed: Mutex<HashMap<String, Arc<Activity>>>,
    booting: AtomicUsize,
    /// Wakes the refill task (a claim, a release, a failure).
    wake: Notify,
    /// Signalled when a sandbox becomes ready (claims may wait on it).
    filled: Notify,
    /// Set by `drain`: the refill loop stops at its next turn.
    closing: AtomicBool,
    /// When a claim last took a sandbox (see [`REFILL_GRACE`]).
    last_claim: Mutex<Option<Instant>>,
}

/// How long a claim at the cap waits for a desktop that is booting.
const BOOTING_WAIT: Duration = Duration::from_secs(60);

/// How long the refill waits after a claim before it starts a container.
/// Starting one costs Docker a burst of CPU; on a small host, started at
/// once it competes with the claiming session's own first steps (measured
/// on 2 cores: create to first event 9.2 ms p50 with an immediate refill,
/// 3.5 ms with this grace). A container takes about 400 ms to boot, so the
/// grace delays the next warm sandbox by well under half a boot.
const REFILL_GRACE: Duration = Duration::from_millis(150);

pub struct WarmPool {
    shared: Arc<Shared>,
    /// Taken by `drain`, which waits for it to stop.
    refill: Mutex<Option<JoinHandle<()>>>,
    reaper: Option<JoinHandle<()>>,
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        if let Some(refill) = self
            .refill
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            refill.abort();
        }
        if let Some(r) = &self.reaper {
            r.abort();
        }
    }
}

impl WarmPool {
    /// Removes this owner's leftover containers, then starts filling.
    pub async fn start(docker: Docker, config: PoolConfig) -> Result<Self, SandboxError> {
        docker.reap().await?;
        docker.prepare_network().await?;
        let shared = Arc::new(Shared {
            docker,
            config,
            ready: Mutex::default(),
            running: AtomicUsize::new(0),
            claimed: Mutex::default(),
            booting: AtomicUsize::new(0),
            wake: Notify::new(),
            filled: Notify::new(),
            closing: AtomicBool::new(false),
            last_claim: Mutex::default(),
        });
        let refill = tokio::spawn(refill_loop(shared.clone()));
        let reaper = shared
            .config
            .idle_timeout
            .map(|timeout| tokio::spawn(reap_idle(shared.clone(), timeout)));
        Ok(Self {
            shared,
            refill: Mutex::new(Some(refill)),
            reaper,
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.shared.docker
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            warm: self
                .shared
                .ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
            running: self.shared.running.load(Ordering::SeqCst),
            booting: self.shared.booting.load(Ordering::SeqCst),
        }
    }

    /// Waits until `n` sandboxes are warm (start-up, tests, `/readyz`).
    pub async fn wait_warm(&self, n: usize, timeout: Duration) -> Result<(), SandboxError> {
        let wait = async {
            loop {
                let notified = self.shared.filled.notified();
                if self.stats().warm >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| SandboxError::StartTimeout {
                timeout,
                detail: format!("fewer than {n} sandboxes warm"),
            })
    }

    /// A ready sandbox: a warm one at once if there is one, else one booted
    /// now (within the cap). Dead warm sandboxes are discarded on the way.
    pub async fn claim(&self) -> Result<Sandbox, SandboxError> {
        let sandbox = self.take_or_boot().await?;
        sandbox.activity.touch();
        self.shared
            .lock_claimed()
            .insert(sandbox.id.clone(), sandbox.activity.clone());
        Ok(sandbox)
    }

    async fn take_or_boot(&self) -> Result<Sandbox, SandboxError> {
        let shared = &self.shared;
        loop {
            // Registered before looking, so a sandbox made ready between
            // the look and the wait still wakes this claim.
            let filled = shared.filled.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            if let Some(sandbox) = self.take_warm().await {
                return Ok(sandbox);
            }
            if shared.running.fetch_add(1, Ordering::SeqCst) < shared.config.max_running {
                break;
            }
            shared.running.fetch_sub(1, Ordering::SeqCst);
            // At the cap, but a desktop is booting to be warm (one given
            // back a moment ago was replaced): take that one when it is up.
            if shared.booting.load(Ordering::SeqCst) == 0
                || tokio::time::timeout(BOOTING_WAIT, filled).await.is_err()
            {
                return Err(SandboxError::PoolExhausted(shared.config.max_running));
            }
        }
        let started = shared.docker.start().await;
        if started.is_err() {
            shared.running.fetch_sub(1, Ordering::SeqCst);
        }
        shared.wake.notify_one();
        started
    }

    /// A live warm sandbox, if there is one; dead ones are discarded.
    async fn take_warm(&self) -> Option<Sandbox> {
        loop {
            let sandbox = self
                .shared
                .ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()?;
            *self
                .shared
                .last_claim
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            self.shared.wake.notify_one();
            if sandbox.is_alive() {
                return Some(sandbox);
            }
            tracing::warn!(sandbox = %sandbox.name, "warm sandbox died; replacing it");
            self.shared.discard(&sandbox.id).await;
        }
    }

    /// Destroys a claimed sandbox and frees its place under the cap (unless
    /// the idle reaper already did).
    pub async fn release(&self, sandbox: Sandbox) {
        if self.shared.lock_claimed().remove(&sandbox.id).is_some() {
            self.shared.discard(&sandbox.id).await;
        }
    }

    /// Stops refilling, then destroys the warm sandboxes (shutdown). A
    /// sandbox being booted is waited for and destroyed too, so a stop
    /// leaves no container running.
    pub async fn drain(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let refill = self.refill.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(refill) = refill {
            let _ = refill.await;
        }
        let warm: Vec<Sandbox> = self
            .shared
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for sandbox in warm {
            self.shared.discard(&sandbox.id).await;
        }
        // Whatever is left under this owner (a claim that raced the stop)
        // goes too: a stopped host leaves no container behind.
        if let Err(e) = self.shared.docker.reap().await {
            tracing::warn!(error = %e, "could not remove leftover sandboxes");
        }
        self.shared.docker.teardown_network().await;
    }
}

impl Shared {
    fn lock_claimed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Activity>>> {
        self.claimed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes a container the pool counted and frees its place.
    async fn discard(&self, id: &str) {
        if let Err(e) = self.docker.remove(id).await {
            tracing::warn!(error = %e, "could not remove a sandbox");
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Stops claimed sandboxes nobody has used for `timeout`.
async fn reap_idle(shared: Arc<Shared>, timeout: Duration) {
    let mut tick = tokio::time::interval(
        (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(60)),
    );
    loop {
        tick.tick().await;
        let idle: Vec<(String, Arc<Activity>)> = shared
            .lock_claimed()
            .iter()
            .filter(|(_, a)| a.idle_for() >= timeout)
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect();
        for (id, activity) in idle {
            if shared.lock_claimed().remove(&id).is_none() {
                continue; // released meanwhile
            }
            activity.mark_stopped_idle();
            tracing::info!(sandbox = %id, ?timeout, "stopping an idle sandbox");
            shared.discard(&id).await;
        }
    }
}

async fn refill_loop(shared: Arc<Shared>) {
    let mut failures = 0u32;
    loop {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let wake = shared.wake.notified();
        let warm = shared.ready.lock().unwrap_or_else(|p| p.into_inner()).len();
        let booting = shared.booting.load(Ordering::SeqCst);
        let under_cap = shared.running.load(Ordering::SeqCst) < shared.config.max_running;
        if warm + booting < shared.config.warm && under_cap {
            shared.running.fetch_add(1, Ordering::SeqCst);
            shared.booting.fetch_add(1, Ordering::SeqCst);
            let since_claim = *shared.last_claim.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(wait) = since_claim.and_then(|t| REFILL_GRACE.checked_sub(t.elapsed())) {
                tokio::time::sleep(wait).await;
            }
            let result = shared.docker.start().await;
            shared.booting.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(sandbox) => {
                    failures = 0;
                    tracing::debug!(sandbox = %sandbox.name, boot = ?sandbox.boot_time, "sandbox warm");
                    shared
                        .ready
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_back(sandbox);
                    shared.filled.notify_waiters();
                }
                Err(e) => {
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                    failures += 1;
                    tracing::error!(error = %e, "could not start a warm sandbox");
                    // Back off after repeated failures (no engine, no image)
                    // rather than spinning; a claim still reports the error.
                    let pause = Duration::from_millis(250 * 2u64.pow(failures.min(6)));
                    tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = wake => {} }
                }
            }
            continue;
        }
        wake.await;
    }
}
