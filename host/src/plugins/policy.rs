//! One policy instance per session: a store kept across steps (policies
//! may cache in memory), calls serialized by `&mut self`, and the store
//! thrown away after any trap or timeout so the next step starts clean.
//! State that must survive lives in the history and the state blob the
//! host stores, never only in the instance.

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::current::policy::{Context, PolicyError, StepOutput};
use super::dispatch::PolicyGuest;
use super::loaded::Pre;
use super::{EffectiveGrants, LoadedPlugin, PluginError, RegistryError, Runtime};
use crate::capabilities::{CallContext, HostState};

pub struct PolicyInstance {
    runtime: Arc<Runtime>,
    plugin: Arc<LoadedPlugin>,
    grants: EffectiveGrants,
    ctx: CallContext,
    live: Option<(Store<HostState>, PolicyGuest)>,
}

impl PolicyInstance {
    pub fn new(
        runtime: Arc<Runtime>,
        plugin: Arc<LoadedPlugin>,
        grants: EffectiveGrants,
        ctx: CallContext,
    ) -> Result<Self, PluginError> {
        if !matches!(plugin.pre, Pre::Policy(_)) {
            return Err(RegistryError::WrongKind {
                plugin: plugin.manifest.name.clone(),
                expected: "policy".into(),
                actual: plugin.kind().to_string(),
            }
            .into());
        }
        Ok(Self {
            runtime,
            plugin,
            grants,
            ctx,
            live: None,
        })
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Switch to another policy (or version). Takes effect at the next
    /// step; the old store is dropped here, between steps.
    pub fn swap(
        &mut self,
        plugin: Arc<LoadedPlugin>,
        grants: EffectiveGrants,
    ) -> Result<(), PluginError> {
        let next = Self::new(self.runtime.clone(), plugin, grants, self.ctx.clone())?;
        *self = next;
        Ok(())
    }

    /// Decide the next step. The outer error is the host's (crash, limits);
    /// the inner one is the policy's own refusal.
    pub async fn step(
        &mut self,
        context: Context,
    ) -> Result<Result<StepOutput, PolicyError>, PluginError> {
        let Pre::Policy(pre) = &self.plugin.pre else {
            unreachable!("checked in PolicyInstance::new");
        };
        let limit = self.runtime.limits().wall_clock;
        let mut live = match self.live.take() {
            Some(live) => live,
            None => {
                let mut store = self
                    .runtime
                    .new_store(self.grants.clone(), self.ctx.clone());
                match tokio::time::timeout(limit, pre.instantiate(&mut store)).await {
                    Err(_) => return Err(self.runtime.timeout_error(store.data())),
                    Ok(Err(e)) => return Err(self.runtime.classify(e, store.data())),
                    Ok(Ok(instance)) => (store, instance),
                }
            }
        };
        let (store, instance) = &mut live;
        store.data_mut().cpu.restart();
        let outcome = tokio::time::timeout(limit, instance.step(store, &context)).await;
        match outcome {
            // The store is dropped with `live`: never reuse a store after a
            // trap or a cancelled call.
            Err(_) => Err(self.runtime.timeout_error(store.data())),
            Ok(Err(e)) => Err(self.runtime.classify(e, store.data())),
            Ok(Ok(result)) => {
                self.live = Some(live);
                Ok(result)
            }
        }
    }
}
