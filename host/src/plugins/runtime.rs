//! Loading components and running them under limits.

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Store, UpdateDeadline};

use super::bindings::current::{
    tool::{ToolError, ToolOutput},
    types::{ContentPart, ToolSpec, ToolUse},
};
use super::bindings::{v0_1_0, v0_2_0};
use super::cache::{content_hash, CompiledCache};
use super::dispatch::{PolicyPre, ToolPre};
use super::engine::PluginEngine;
use super::inspect::{check_header, shape};
use super::loaded::{Describe, Pre};
use super::{
    EffectiveGrants, InputSchema, InvokeError, Limits, LoadError, LoadedPlugin, Manifest,
    PluginError, PluginKind, RegistryError, Shape,
};
use crate::capabilities::{CallContext, HostState};

/// A tool's own answer: its output, or the error it chose to return.
pub type ToolResult = Result<ToolOutput, ToolError>;

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub limits: Limits,
    /// Where compiled artifacts are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Accept components built against a WIT version still in development.
    pub allow_unreleased_wit: bool,
}

pub struct Runtime {
    engine: PluginEngine,
    linker: Linker<HostState>,
    cache: Arc<CompiledCache>,
    limits: Limits,
    allow_unreleased_wit: bool,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self, PluginError> {
        let engine = PluginEngine::new(&config.limits)?;
        let mut linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::engine("linking WASI", e))?;
        // Every version's interfaces, each under its own versioned name.
        // The policy world's imports are a subset of the tool world's, so
        // one linker serves both kinds.
        type Data = wasmtime::component::HasSelf<HostState>;
        v0_2_0::ToolPlugin::add_to_linker::<_, Data>(&mut linker, |s| s)
            .and_then(|()| v0_1_0::add_to_linker(&mut linker))
            .map_err(|e| PluginError::engine("linking the host interfaces", e))?;
        let cache = Arc::new(CompiledCache::new(
            config.cache_dir,
            engine.compatibility_hash(),
        )?);
        Ok(Self {
            engine,
            linker,
            cache,
            limits: config.limits,
            allow_unreleased_wit: config.allow_unreleased_wit,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates, compiles (or loads from cache) and describes a component.
    /// Without a manifest, the name is `default_name` and the requested
    /// capabilities are the host interfaces the component imports.
    pub async fn load(
        &self,
        bytes: Vec<u8>,
        manifest: Option<Manifest>,
        default_name: &str,
    ) -> Result<LoadedPlugin, PluginError> {
        check_header(&bytes)?;
        let sha256 = content_hash(&bytes);
        let (component, cache) = {
            let (engine, cache, hash) = (
                self.engine.engine().clone(),
                self.cache.clone(),
                sha256.clone(),
            );
            // Compiling is seconds of CPU for large components: keep it off
            // the async workers.
            tokio::task::spawn_blocking(move || cache.load(&engine, &bytes, &hash))
                .await
                .map_err(|e| PluginError::engine("compiling a component", e))??
        };
        let shape = shape(self.engine.engine(), &component, self.allow_unreleased_wit)?;
        let manifest = match manifest {
            Some(m) => {
                if let Some(kind) = m.kind.filter(|k| *k != shape.kind) {
                    return Err(LoadError::KindMismatch {
                        manifest: kind.to_string(),
                        component: shape.kind.to_string(),
                    }
                    .into());
                }
                m
            }
            None => Manifest {
                name: default_name.to_string(),
                version: "0.0.0".into(),
                kind: Some(shape.kind),
                description: String::new(),
                capabilities: shape.imported_capabilities.clone(),
            },
        };
        let pre = self.instantiate_pre(&component, &shape)?;
        let describe = self
            .describe(&manifest.name, &pre, &shape.wit_version)
            .await?;
        let schemas = match &describe {
            Describe::Tool(specs) => validate_specs(&manifest.name, specs)?,
            Describe::Policy(_) => Default::default(),
        };
        Ok(LoadedPlugin {
            manifest,
            sha256,
            shape,
            describe,
            cache,
            pre,
            schemas,
        })
    }

    fn instantiate_pre(&self, component: &Component, shape: &Shape) -> Result<Pre, PluginError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(e.into()))?;
        Ok(match shape.kind {
            PluginKind::Tool => {
                Pre::Tool(ToolPre::new(pre, shape.wit).map_err(LoadError::invalid)?)
            }
            PluginKind::Policy => {
                Pre::Policy(PolicyPre::new(pre, shape.wit).map_err(LoadError::invalid)?)
            }
        })
    }

    /// A store for one plugin with the limits wired in.
    pub(crate) fn new_store(&self, grants: EffectiveGrants, ctx: CallContext) -> Store<HostState> {
        let mut store = Store::new(
            self.engine.engine(),
            HostState::new(grants, ctx, &self.limits),
        );
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        // Every tick: stop a guest over its CPU budget, otherwise yield so a
        // busy guest never starves the other tasks on this worker.
        store.epoch_deadline_callback(|mut cx| {
            Ok(if cx.data_mut().cpu.over_budget() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store
    }

    /// Turns a failed guest call into the error a person can act on.
    pub(crate) fn classify(&self, error: wasmtime::Error, state: &HostState) -> PluginError {
        let plugin = state.plugin().to_string();
        if state.cpu.exceeded {
            return InvokeError::CpuLimit {
                plugin,
                limit: self.limits.cpu,
            }
            .into();
        }
        if state.memory.refused {
            return InvokeError::MemoryLimit {
                plugin,
                limit_bytes: self.limits.memory_bytes,
            }
            .into();
        }
        // A trap's error carries the wasm backtrace as context; the trap
        // itself is what a person can act on.
        let source = match error.downcast::<wasmtime::Trap>() {
            Ok(trap) => trap.into(),
            Err(other) => other.into(),
        };
        InvokeError::Trap {
            plugin,
            stderr: state.stderr_tail(),
            source,
        }
        .into()
    }

    pub(crate) fn timeout_error(&self, state: &HostState) -> PluginError {
        InvokeError::WallClockTimeout {
            plugin: state.plugin().to_string(),
            limit: self.limits.wall_clock,
        }
        .into()
    }

    /// Instantiates the component and asks what it offers. Instantiation
    /// type-checks the exports against the host's bindings, before any
    /// guest code runs, so a type mismatch there is drift in the contract
    /// (named as such), not a crash.
    async fn describe(&self, name: &str, pre: &Pre, wit: &str) -> Result<Describe, PluginError> {
        let mut store = self.new_store(EffectiveGrants::none(name), CallContext::default());
        let limit = self.limits.wall_clock;
        let outcome = match pre {
            Pre::Tool(pre) => {
                tokio::time::timeout(limit, async {
                    pre.describe(&mut store).await.map(Describe::Tool)
                })
                .await
            }
            Pre::Policy(pre) => {
                tokio::time::timeout(limit, async {
                    let instance = pre.instantiate(&mut store).await?;
                    instance.describe(&mut store).await.map(Describe::Policy)
                })
                .await
            }
        };
        match outcome {
            Err(_) => Err(self.timeout_error(store.data())),
            Ok(Err(e)) if e.downcast_ref::<wasmtime::Trap>().is_none() && is_type_mismatch(&e) => {
                Err(LoadError::WitDrift {
                    version: wit.to_string(),
                    detail: format!("{e:#}"),
                }
                .into())
            }
            Ok(Err(e)) => Err(self.classify(e, store.data())),
            Ok(Ok(d)) => Ok(d),
        }
    }

    /// Runs one tool call in a fresh store. The outer error is the host's
    /// (limits, crash, bad input); the inner result is the tool's own answer.
    pub async fn invoke_tool(
        &self,
        plugin: &LoadedPlugin,
        grants: EffectiveGrants,
        ctx: CallContext,
        call: ToolUse,
    ) -> Result<ToolResult, PluginError> {
        let Pre::Tool(pre) = &plugin.pre else {
            return Err(RegistryError::WrongKind {
                plugin: plugin.manifest.name.clone(),
                expected: "tool".into(),
                actual: plugin.kind().to_string(),
            }
            .into());
        };
        if !plugin.tools().iter().any(|t| t.name == call.name) {
            return Err(RegistryError::UnknownTool(call.name).into());
        }
        match serde_json::from_str::<serde_json::Value>(&call.input) {
            Ok(input @ serde_json::Value::Object(_)) => {
                // The tool's own schema, checked before it runs: a call it
                // rules out is the model's to fix, not the plugin's to see.
                if let Some(schema) = plugin.schemas.get(&call.name) {
                    if let Err(message) = schema.check(&input) {
                        return Ok(Err(ToolError::InvalidInput(message)));
                    }
                }
            }
            Ok(other) => {
                return Err(InvokeError::InvalidInput(format!(
                    "the input must be a JSON object, not {}",
                    json_kind(&other)
                ))
                .into())
            }
            Err(e) => {
                return Err(
                    InvokeError::InvalidInput(format!("the input is not valid JSON: {e}")).into(),
                )
            }
        }
        let mut store = self.new_store(grants, ctx);
        let outcome =
            tokio::time::timeout(self.limits.wall_clock, pre.invoke(&mut store, &call)).await;
        let result = match outcome {
            Err(_) => return Err(self.timeout_error(store.data())),
            Ok(Err(e)) => return Err(self.classify(e, store.data())),
            Ok(Ok(r)) => r,
        };
        let state = store.data();
        if let Some(text) = state.output() {
            state.ctx.log.output(state.plugin(), &text);
        }
        let size = output_bytes(&result);
        if size > self.limits.output_bytes {
            return Err(InvokeError::OutputTooLarge {
                plugin: plugin.manifest.name.clone(),
                actual_bytes: size,
                limit_bytes: self.limits.output_bytes,
            }
            .into());
        }
        Ok(result)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn output_bytes(result: &ToolResult) -> usize {
    match result {
        Ok(out) => out
            .content
            .iter()
            .map(|p| match p {
                ContentPart::Text(t) => t.len(),
                ContentPart::Image(i) => i.handle.len(),
            })
            .sum(),
        Err(ToolError::InvalidInput(m) | ToolError::Failed(m)) => m.len(),
    }
}

/// Checks the tools a plugin describes and compiles their input schemas.
fn validate_specs(
    plugin: &str,
    specs: &[ToolSpec],
) -> Result<std::collections::BTreeMap<String, InputSchema>, LoadError> {
    let bad = |reason: String| LoadError::BadDescription {
        plugin: plugin.to_string(),
        reason,
    };
    if specs.is_empty() {
        return Err(bad("it offers no tools".into()));
    }
    let mut schemas = std::collections::BTreeMap::new();
    for spec in specs {
        let name_ok = (1..=64).contains(&spec.name.len())
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(bad(format!(
                "tool name `{}` must match [a-zA-Z0-9_-]{{1,64}}",
                spec.name
            )));
        }
        if schemas.contains_key(&spec.name) {
            return Err(bad(format!("tool `{}` is described twice", spec.name)));
        }
        let schema = match serde_json::from_str::<serde_json::Value>(&spec.input_schema) {
            Ok(schema @ serde_json::Value::Object(_)) => schema,
            _ => {
                return Err(bad(format!(
                    "the input schema of `{}` is not a JSON object",
                    spec.name
                )))
            }
        };
        let compiled = InputSchema::compile(&schema).map_err(|e| {
            bad(format!(
                "the input schema of `{}` is not valid JSON Schema: {e}",
                spec.name
            ))
        })?;
        schemas.insert(spec.name.clone(), compiled);
    }
    Ok(schemas)
}

/// wasmtime's type-check failure when a typed export does not have the
/// type the bindings expect ("type mismatch with results: ...").
fn is_type_mismatch(e: &wasmtime::Error) -> bool {
    e.chain().any(|c| c.to_string().contains("type mismatch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, schema: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "d".into(),
            input_schema: schema.into(),
        }
    }

    fn reason(specs: &[ToolSpec]) -> String {
        match validate_specs("p", specs) {
            Err(LoadError::BadDescription { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tool_specs_need_names_providers_accept_and_object_schemas() {
        assert!(validate_specs("p", &[spec("bash", "{}"), spec("str_replace-2", "{}")]).is_ok());
        assert!(reason(&[]).contains("no tools"));
        for bad in ["", "has space", "dot.ted", &"x".repeat(65)] {
            assert!(reason(&[spec(bad, "{}")]).contains("must match"), "{bad:?}");
        }
        assert!(reason(&[spec("a", "{}"), spec("a", "{}")]).contains("twice"));
        for schema in ["", "[]", "\"object\"", "{nope"] {
            assert!(
                reason(&[spec("a", schema)]).contains("not a JSON object"),
                "{schema:?}"
            );
        }
        let why = reason(&[spec("a", r#"{"type":"objekt","properties":5}"#)]);
        assert!(why.contains("not valid JSON Schema"), "{why}");
    }
}
