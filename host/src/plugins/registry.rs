//! What is installed, and the hot-swap primitive.
//!
//! On disk, under the data directory:
//!
//! ```text
//! plugins/<name>/<version>/component.wasm   the component as uploaded
//! plugins/<name>/<version>/plugin.toml      its manifest
//! plugins/<name>/state.json                 {"versions": [...], "active": "..."}
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

use super::bindings::current::types::ToolSpec;
use super::bindings::current::types::ToolUse;
use super::fs;
use super::loaded::PluginSummary;
use super::manifest::{validate_name, validate_version};
use super::{
    Capability, EffectiveGrants, GrantTable, LoadedPlugin, Manifest, PluginError, PluginKind,
    RegistryError, Runtime, ToolResult,
};
use crate::capabilities::CallContext;

/// Versions kept per plugin for rollback, the active one included.
const KEPT_VERSIONS: usize = 5;

/// Installed versions (in the order they were installed) and which one
/// serves. Versions are semver, checked again when read back, so no
/// string from this file can form a path outside the plugin's folder.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct SlotState {
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    active: Option<String>,
    /// The layout before `active` existed: the last entry was active.
    #[serde(default, skip_serializing)]
    history: Vec<String>,
}

impl SlotState {
    fn normalized(mut self) -> Self {
        if self.versions.is_empty() && !self.history.is_empty() {
            self.versions = std::mem::take(&mut self.history);
        }
        self.versions.retain(|v| semver::Version::parse(v).is_ok());
        if self
            .active
            .as_ref()
            .is_none_or(|a| !self.versions.contains(a))
        {
            self.active = self.versions.last().cloned();
        }
        self
    }
}

struct Slot {
    active: Arc<LoadedPlugin>,
    state: SlotState,
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
        let plugins = root.join("plugins");
        let unreadable = |e| RegistryError::io(format!("read {}", plugins.display()), e);
        std::fs::create_dir_all(&plugins).map_err(unreadable)?;
        let grants = GrantTable::load(&root.join("grants.toml"))?;
        let registry = Self {
            runtime,
            root,
            slots: RwLock::default(),
            grants: RwLock::new(grants),
        };
        let mut names: Vec<String> = std::fs::read_dir(&plugins)
            .map_err(unreadable)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let state = registry.read_state(&name);
            let Some(version) = state.active.clone() else {
                continue;
            };
            match registry.load_version(&name, &version).await {
                Ok(plugin) => {
                    write(&registry.slots).insert(
                        name,
                        Slot {
                            active: Arc::new(plugin),
                            state,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(plugin = %name, %version, error = %e.report(), "installed plugin failed to load; skipped")
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
            .and_then(|b| serde_json::from_slice::<SlotState>(&b).ok())
            .unwrap_or_default()
            .normalized()
    }

    /// `plugins/<name>/<version>`: both parts are checked (a name of
    /// a-z, 0-9, '-', '_'; a semver version), never taken as given.
    fn version_dir(&self, name: &str, version: &str) -> Result<PathBuf, RegistryError> {
        validate_name(name)?;
        validate_version(version)?;
        Ok(self.plugin_dir(name).join(version))
    }

    fn write_state(&self, name: &str, state: &SlotState) -> Result<(), RegistryError> {
        let path = self.plugin_dir(name).join("state.json");
        let doing = || format!("write {}", path.display());
        let json = serde_json::to_vec_pretty(state).map_err(|e| RegistryError::io(doing(), e))?;
        fs::replace(&path, &json).map_err(|e| RegistryError::io(doing(), e))
    }

    async fn load_version(&self, name: &str, version: &str) -> Result<LoadedPlugin, PluginError> {
        let dir = self.version_dir(name, version)?;
        let manifest = Manifest::load(&dir.join("plugin.toml"))?;
        let path = dir.join("component.wasm");
        let bytes = std::fs::read(&path)
            .map_err(|e| RegistryError::io(format!("read {}", path.display()), e))?;
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

        let dir = self.version_dir(&name, &version)?;
        match std::fs::read(dir.join("component.wasm")) {
            // The same bytes again: installing is idempotent.
            Ok(existing) if existing == bytes => {}
            Ok(_) => return Err(RegistryError::VersionExists { name, version }.into()),
            Err(_) => {
                let path = dir.join("component.wasm");
                std::fs::create_dir_all(&dir)
                    .and_then(|()| fs::replace(&path, &bytes))
                    .map_err(|e| RegistryError::io(format!("write {}", path.display()), e))?;
            }
        }
        let path = dir.join("plugin.toml");
        fs::replace(&path, plugin.manifest.to_toml().as_bytes())
            .map_err(|e| RegistryError::io(format!("write {}", path.display()), e))?;

        let mut state = self.read_state(&name);
        state.versions.retain(|v| v != &version);
        state.versions.push(version.clone());
        state.active = Some(version);
        self.prune(&name, &mut state);
        self.write_state(&name, &state)?;
        if !grant.is_empty() {
            self.grant(&name, grant)?;
        }

        let plugin = Arc::new(plugin);
        write(&self.slots).insert(
            name,
            Slot {
                active: plugin.clone(),
                state,
            },
        );
        Ok(plugin)
    }

    /// Forgets the oldest versions past [`KEPT_VERSIONS`], never the active one.
    fn prune(&self, name: &str, state: &mut SlotState) {
        while state.versions.len() > KEPT_VERSIONS {
            let Some(i) = state
                .versions
                .iter()
                .position(|v| Some(v) != state.active.as_ref())
            else {
                break;
            };
            let old = state.versions.remove(i);
            if let Ok(dir) = self.version_dir(name, &old) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    /// Tool names are global within a host: the model addresses tools by name.
    fn check_tool_names(&self, plugin: &LoadedPlugin) -> Result<(), RegistryError> {
        let slots = read(&self.slots);
        for (owner, slot) in slots.iter().filter(|(n, _)| **n != plugin.manifest.name) {
            for tool in plugin.tools() {
                if slot.active.tools().iter().any(|t| t.name == tool.name) {
                    return Err(RegistryError::DuplicateTool {
                        tool: tool.name.clone(),
                        owner: owner.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes the version installed before the active one active again;
    /// the newer version stays installed (activate it to go forward).
    pub async fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let state = self.slot_state(name)?;
        let at = state
            .active
            .as_ref()
            .and_then(|a| state.versions.iter().position(|v| v == a))
            .unwrap_or(0);
        if at == 0 {
            return Err(RegistryError::NoPreviousVersion(name.to_string()).into());
        }
        let previous = state.versions[at - 1].clone();
        self.activate(name, &previous).await
    }

    /// Makes an installed version the active one.
    pub async fn activate(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut state = self.slot_state(name)?;
        if !state.versions.iter().any(|v| v == version) {
            return Err(RegistryError::VersionNotInstalled {
                name: name.to_string(),
                version: version.to_string(),
                installed: state.versions.join(", "),
            }
            .into());
        }
        let plugin = Arc::new(self.load_version(name, version).await?);
        self.check_tool_names(&plugin)?;
        state.active = Some(version.to_string());
        self.write_state(name, &state)?;
        write(&self.slots).insert(
            name.to_string(),
            Slot {
                active: plugin.clone(),
                state,
            },
        );
        Ok(plugin)
    }

    fn slot_state(&self, name: &str) -> Result<SlotState, RegistryError> {
        read(&self.slots)
            .get(name)
            .map(|s| s.state.clone())
            .ok_or_else(|| RegistryError::NotInstalled(name.to_string()))
    }

    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        validate_name(name)?;
        if write(&self.slots).remove(name).is_none() {
            return Err(RegistryError::NotInstalled(name.to_string()));
        }
        let dir = self.plugin_dir(name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| RegistryError::io(format!("remove {}", dir.display()), e))
    }

    /// The active version of `name`.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, RegistryError> {
        read(&self.slots)
            .get(name)
            .map(|s| s.active.clone())
            .ok_or_else(|| RegistryError::NotInstalled(name.to_string()))
    }

    pub fn list(&self) -> Vec<InstalledPlugin> {
        let grants = read(&self.grants);
        read(&self.slots)
            .values()
            .map(|slot| InstalledPlugin {
                summary: slot.active.summary(),
                versions: slot.state.versions.clone(),
                granted: grants.effective(&slot.active.manifest).granted,
            })
            .collect()
    }

    pub fn grant(&self, name: &str, caps: &BTreeSet<Capability>) -> Result<(), RegistryError> {
        validate_name(name)?;
        let mut grants = write(&self.grants);
        grants
            .grants
            .entry(name.to_string())
            .or_default()
            .extend(caps.iter().copied());
        grants.save(&self.root.join("grants.toml"))
    }

    pub fn revoke(&self, name: &str, caps: &BTreeSet<Capability>) -> Result<(), RegistryError> {
        let mut grants = write(&self.grants);
        if let Some(set) = grants.grants.get_mut(name) {
            set.retain(|c| !caps.contains(c));
        }
        grants.save(&self.root.join("grants.toml"))
    }

    /// The operator's grants as they stand.
    pub fn grant_table(&self) -> GrantTable {
        read(&self.grants).clone()
    }

    /// Replaces the operator's grants (a fleet host taking the fleet's).
    pub fn replace_grants(&self, table: GrantTable) -> Result<(), RegistryError> {
        let mut grants = write(&self.grants);
        table.save(&self.root.join("grants.toml"))?;
        *grants = table;
        Ok(())
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
    pub fn tool_owner(&self, tool: &str) -> Result<Arc<LoadedPlugin>, RegistryError> {
        read(&self.slots)
            .values()
            .find(|s| s.active.tools().iter().any(|t| t.name == tool))
            .map(|s| s.active.clone())
            .ok_or_else(|| RegistryError::UnknownTool(tool.to_string()))
    }

    /// The active version of a policy plugin.
    pub fn policy(&self, name: &str) -> Result<Arc<LoadedPlugin>, RegistryError> {
        let plugin = self.get(name)?;
        if plugin.kind() != PluginKind::Policy {
            return Err(RegistryError::WrongKind {
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
        call: ToolUse,
        ctx: CallContext,
    ) -> Result<ToolResult, PluginError> {
        let plugin = self.tool_owner(&call.name)?;
        let grants = self.effective_grants(&plugin);
        self.runtime.invoke_tool(&plugin, grants, ctx, call).await
    }
}
