//! One enum per export, dispatching by WIT version: the runtime calls a
//! guest through these and sees only the newest types, whatever version the
//! component was built against.

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::bindings::current::{
    policy::{Context, Info, PolicyError, StepOutput},
    tool::{ToolError, ToolOutput},
    types::{ToolSpec, ToolUse},
};
use super::bindings::versions::WitVersion;
use super::bindings::{v0_1_0, v0_2_0};
use crate::capabilities::HostState;

/// A tool component ready to instantiate.
#[derive(Clone)]
pub(crate) enum ToolPre {
    V0_1(v0_1_0::ToolPluginPre<HostState>),
    V0_2(v0_2_0::ToolPluginPre<HostState>),
}

impl ToolPre {
    pub fn new(pre: InstancePre<HostState>, wit: WitVersion) -> wasmtime::Result<Self> {
        Ok(match wit {
            WitVersion::V0_1 => Self::V0_1(v0_1_0::ToolPluginPre::new(pre)?),
            WitVersion::V0_2 => Self::V0_2(v0_2_0::ToolPluginPre::new(pre)?),
        })
    }

    /// A fresh instance's tool list.
    pub async fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Vec<ToolSpec>> {
        match self {
            Self::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.agenthost_plugin_tool().call_describe(store).await
            }
            Self::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.agenthost_plugin_tool().call_describe(store).await
            }
        }
    }

    /// One call on a fresh instance.
    pub async fn invoke(
        &self,
        store: &mut Store<HostState>,
        call: &ToolUse,
    ) -> wasmtime::Result<Result<ToolOutput, ToolError>> {
        match self {
            Self::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let call = v0_1_0::tool::ToolCall::from(call.clone());
                let result = instance
                    .agenthost_plugin_tool()
                    .call_invoke(store, &call)
                    .await?;
                Ok(result.map(Into::into).map_err(Into::into))
            }
            Self::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .agenthost_plugin_tool()
                    .call_invoke(store, call)
                    .await
            }
        }
    }
}

/// A policy component ready to instantiate.
#[derive(Clone)]
pub(crate) enum PolicyPre {
    V0_1(v0_1_0::PolicyPluginPre<HostState>),
    V0_2(v0_2_0::PolicyPluginPre<HostState>),
}

impl PolicyPre {
    pub fn new(pre: InstancePre<HostState>, wit: WitVersion) -> wasmtime::Result<Self> {
        Ok(match wit {
            WitVersion::V0_1 => Self::V0_1(v0_1_0::PolicyPluginPre::new(pre)?),
            WitVersion::V0_2 => Self::V0_2(v0_2_0::PolicyPluginPre::new(pre)?),
        })
    }

    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<PolicyGuest> {
        Ok(match self {
            Self::V0_1(pre) => PolicyGuest::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => PolicyGuest::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// A live policy instance.
pub(crate) enum PolicyGuest {
    V0_1(v0_1_0::PolicyPlugin),
    V0_2(v0_2_0::PolicyPlugin),
}

impl PolicyGuest {
    pub async fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Info> {
        match self {
            Self::V0_1(p) => Ok(p
                .agenthost_plugin_policy()
                .call_describe(store)
                .await?
                .into()),
            Self::V0_2(p) => p.agenthost_plugin_policy().call_describe(store).await,
        }
    }

    pub async fn step(
        &self,
        store: &mut Store<HostState>,
        context: &Context,
    ) -> wasmtime::Result<Result<StepOutput, PolicyError>> {
        match self {
            Self::V0_1(p) => {
                let context = v0_1_0::policy::Context::from(context.clone());
                let result = p
                    .agenthost_plugin_policy()
                    .call_step(store, &context)
                    .await?;
                Ok(result.map(Into::into).map_err(PolicyError::Failed))
            }
            Self::V0_2(p) => p.agenthost_plugin_policy().call_step(store, context).await,
        }
    }
}
