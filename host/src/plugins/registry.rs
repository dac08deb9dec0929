//! What is installed, and the hot-swap primitive.
//!
//! On disk, under the data directory:
//!
//! ```text
//! plugins/<name>/<version>/component.wasm   the component as uploaded
//! plugins/<name>/<version>/plugin.toml      its manifest
//! plugins/<name>/state.json                 {"history": [...]}: last = active
//! grants.toml                               the operator's grants
//! cache/                                    compiled artifacts
//! ```
//!
//! In memory, each plugin's active version is an `Arc<LoadedPlugin>` in a
//! map behind a lock held only to clone or replace the `Arc`. A swap
//! therefore never waits for calls: calls that already hold the old `Arc`
//! finish on it, calls that start after the swap get the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::bindings::current::tool::ToolCall;
use super::bindings::current::types::ToolSpec;
use super::loaded::PluginSummary;
use super::manifest::validate_name;
use super::{
    Capability, EffectiveGrants, GrantTable, LoadedPlugin, Manifest, PluginError, PluginKind,
    Runtime, ToolResult,
};
use crate::capabilities::CallContext;

/// Versions kept per plugin for rollback, the active one included.
const KEPT_VERSIONS: usize = 5;

#[derive(Debug, Default, Serialize, Deserialize)]
struct SlotState {
    /// Installed versions, oldest first; the last is active.
    history: Vec<String>,
}

struct Slot {
    active: Arc<LoadedPlugin>,
    history: Vec<String>,
}

/// One installed plugin as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct InstalledPlugin {
    #[serde(flatten)]
    pub summary: PluginSummary,
    pub versions: Vec<String>,
    pub granted: BTreeSet<Capability>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    root: PathBuf,
    slots: RwLock<BTreeMap<String, Slot>>,
    grants: RwLock<GrantTable>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Opens (or creates) the registry under `root` and loads every
    /// installed plugin's active version. A plugin that no longer loads is
    /// logged and skipped: one bad plugin never stops the host.
    pub async fn open(
        runtime: Arc<Runtime>,
        root: impl Into<PathBuf>,
    ) -> Result<Self, PluginError> {
        let root = root.into();
        std::fs::create_dir_all(root.join("plugins"))?;
        let grants = GrantTable::load(&root.join("grants.toml"))?;
        let registry = Self {
            runtime,
            root,
            slots: RwLock::default(),
            grants: RwLock::new(grants),
        };
        let mut names: Vec<String> = std::fs::read_dir(registry.root.join("plugins"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let state = registry.read_state(&name);
            let Some(version) = state.history.last().cloned() else {
                continue;
            };
            match registry.load_version(&name, &version).await {
                Ok(plugin) => {
                    write(&registry.slots).insert(
                        name,
                        Slot {
                            active: Arc::new(plugin),
                            history: state.history,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(plugin = %name, %version, error = %e, "installed plugin failed to load; skipped")
                }
            }
        }
        Ok(registry)
    }

    fn plugin_dir(&self, name: &str) -> PathBuf {
        self.root.join("plugins").join(name)
    }

    fn read_state(&self, name: &str) -> SlotState {
        std::fs::read(self.plugin_dir(name).join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write_state(&self, name: &str, history: &[String]) -> Result<(), PluginError> {
        let path = self.plugin_dir(name).join("state.json");
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(&SlotState {
            history: history.to_vec(),
        })
        .map_err(|e| PluginError::Io(e.to_string()))?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    async fn load_version(&self, name: &str, version: &str) -> Result<LoadedPlugin, PluginError> {
        let dir = self.plugin_dir(name).join(version);
        let manifest = Manifest::load(&dir.join("plugin.toml"))?;
        let bytes = std::fs::read(dir.join("component.wasm"))?;
        self.runtime.load(bytes, Some(manifest), name).await
    }

    /// Validates and installs a component, makes it the active version,
    /// and adds `grant` to the operator's grants. If validation fails,
    /// nothing changes: the previous version keeps serving.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
        manifest: Option<Manifest>,
        default_name: &str,
        grant: &BTreeSet<Capability>,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        validate_name(default_name)?;
        let plugin = self
            .runtime
            .load(bytes.clone(), manifest, default_name)
            .await?;
        let name = plugin.manifest.name.clone();
        let version = plugin.manifest.version.clone();
        self.check_tool_names(&plugin)?;

        let dir = self.plugin_dir(&name).join(&version);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("component.wasm"), &bytes)?;
        std::fs::write(dir.join("plugin.toml"), plugin.manifest.to_toml())?;

        let mut history = self.read_state(&name).history;
        history.retain(|v| v != &version);
        history.push(version);
        while history.len() > KEPT_VERSIONS {
            let old = history.remove(0);
            let _ = std::fs::remove_dir_all(self.plugin_dir(&name).join(old));
        }
        self.write_state(&name, &history)?;
        if !grant.is_empty() {
            self.grant(&name, grant)?;
        }

        let plugin = Arc::new(plugin);
        write(&self.slots).insert(
            name,
            Slot {
                active: plugin.clone(),
                history,
            },
        );
        Ok(plugin)
    }

    /// Tool names are global within a host: the model addresses tools by name.
    fn check_tool_names(&self, plugin: &LoadedPlugin) -> Result<(), PluginError> {
        let slots = read(&self.slots);
        for (owner, slot) in slots.iter().filter(|(n, _)| **n != plugin.manifest.name) {
            for tool in plugin.tools() {
                if slot.active.tools().iter().any(|t| t.name == tool.name) {
                    return Err(PluginError::DuplicateTool {
                        tool: tool.name.clone(),
                        owner: owner.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes the version installed before the active one active again and
    /// forgets the active one.
    pub async fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut history = read(&self.slots)
            .get(name)
            .map(|s| s.history.clone())
            .ok_or_else(|| PluginError::NotInstalled(name.to_string()))?;
        if history.len() < 2 {
            return Err(PluginError::NoPreviousVersion(name.to_string()));
        }
        let dropped = history.pop().unwrap_or_default();
        let previous = history.last().cloned().unwrap_or_default();
        let plugin = Arc::new(self.load_version(name, &previous).await?);
        self.write_state(name, &history)?;
        if dropped != previous {
            let _ = std::fs::remove_dir_all(self.plugin_dir(name).join(&dropped));
        }
        write(&self.slots).insert(
            name.to_string(),
            Slot {
                active: plugin.clone(),
                history,
            },
        );
        Ok(plugin)
    }

    pub fn remove(&self, name: &str) -> Result<(), PluginError> {
        if write(&self.slots).remove(name).is_none() {
            return Err(PluginError::NotInstalled(name.to_string()));
        }
        std::fs::remove_dir_all(self.plugin_dir(name))?;
        Ok(())
    }

    /// The active version of `name`.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        read(&self.slots)
            .get(name)
            .map(|s| s.active.clone())
            .ok_or_else(|| PluginError::NotInstalled(name.to_string()))
    }

    pub fn list(&self) -> Vec<InstalledPlugin> {
        let grants = read(&self.grants);
        read(&self.slots)
            .values()
            .map(|slot| InstalledPlugin {
                summary: slot.active.summary(),
                versions: slot.history.clone(),
                granted: grants.effective(&slot.active.manifest).granted,
            })
            .collect()
    }

    pub fn grant(&self, name: &str, caps: &BTreeSet<Capability>) -> Result<(), PluginError> {
        validate_name(name)?;
        let mut grants = write(&self.grants);
        grants
            .grants
            .entry(name.to_string())
            .or_default()
            .extend(caps.iter().copied());
        grants.save(&self.root.join("grants.toml"))
    }

    pub fn revoke(&self, name: &str, caps: &BTreeSet<Capability>) -> Result<(), PluginError> {
        let mut grants = write(&self.grants);
        if let Some(set) = grants.grants.get_mut(name) {
            set.retain(|c| !caps.contains(c));
        }
        grants.save(&self.root.join("grants.toml"))
    }

    pub fn effective_grants(&self, plugin: &LoadedPlugin) -> EffectiveGrants {
        read(&self.grants).effective(&plugin.manifest)
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Every tool the installed tool plugins offer (what a policy may call).
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        read(&self.slots)
            .values()
            .flat_map(|s| s.active.tools().iter().cloned())
            .collect()
    }

    /// The active plugin offering `tool`.
    pub fn tool_owner(&self, tool: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        read(&self.slots)
            .values()
            .find(|s| s.active.tools().iter().any(|t| t.name == tool))
            .map(|s| s.active.clone())
            .ok_or_else(|| PluginError::UnknownTool(tool.to_string()))
    }

    /// The active version of a policy plugin.
    pub fn policy(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugin = self.get(name)?;
        if plugin.kind() != PluginKind::Policy {
            return Err(PluginError::WrongKind {
                plugin: name.to_string(),
                expected: "policy".into(),
                actual: plugin.kind().to_string(),
            });
        }
        Ok(plugin)
    }

    /// Runs a tool call on whichever plugin currently offers the tool.
    pub async fn invoke_tool(
        &self,
        call: ToolCall,
        ctx: CallContext,
    ) -> Result<ToolResult, PluginError> {
        let plugin = self.tool_owner(&call.name)?;
        let grants = self.effective_grants(&plugin);
        self.runtime.invoke_tool(&plugin, grants, ctx, call).await
    }
}
