//! The one wasmtime `Engine` every plugin runs on.
//!
//! Pooling allocation makes the fresh instance each tool call gets cost
//! microseconds; epoch interruption (a 10 ms tick from a background thread)
//! lets the host stop a guest that spins and lets long guest code yield to
//! the async runtime between ticks.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::{Limits, PluginError};

pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine plus the thread that ticks its epoch; dropping it stops the
/// thread.
pub struct PluginEngine {
    engine: Engine,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl PluginEngine {
    pub fn new(limits: &Limits) -> Result<Self, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        // Sized for a few hundred concurrent instances on one host. Python
        // and JavaScript components carry many core instances and large
        // function tables, hence the generous per-component maxima.
        let instances = limits.instances.max(1);
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_core_instances_per_component(64)
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(8 << 20)
            .table_elements(100_000)
            .max_memory_size(limits.memory_bytes.max(1 << 20));
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine =
            Engine::new(&config).map_err(|e| PluginError::engine("configuring wasmtime", e))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::engine("starting the epoch ticker", e))?
        };
        Ok(Self {
            engine,
            stop,
            ticker: Some(ticker),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Hex digest that changes whenever compiled artifacts of this engine
    /// would be incompatible (wasmtime version, settings, target).
    pub fn compatibility_hash(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
