//! Grants: what the operator allows each plugin to use.
//!
//! The [`GrantTable`] is the operator's word (a TOML file in the data
//! directory, edited by `agenthost plugin grant` or by hand). A plugin's
//! [`EffectiveGrants`] are the intersection of what its manifest asked for
//! and what the table grants; everything else is denied, with a message
//! that says which grant is missing and how to give it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Capability, Manifest, RegistryError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantTable {
    #[serde(default)]
    pub grants: BTreeMap<String, BTreeSet<Capability>>,
}

impl GrantTable {
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                RegistryError::BadManifest(format!("grants file {}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(RegistryError::io(format!("read {}", path.display()), e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        let doing = || format!("write {}", path.display());
        let text = toml::to_string(self).map_err(|e| RegistryError::io(doing(), e))?;
        super::fs::replace(path, text.as_bytes()).map_err(|e| RegistryError::io(doing(), e))?;
        Ok(())
    }

    pub fn effective(&self, manifest: &Manifest) -> EffectiveGrants {
        let granted = self.grants.get(&manifest.name).cloned().unwrap_or_default();
        EffectiveGrants::new(&manifest.name, manifest.capabilities.clone(), granted)
    }
}

/// What one plugin may use, checked on every capability call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveGrants {
    pub plugin: String,
    pub requested: BTreeSet<Capability>,
    pub granted: BTreeSet<Capability>,
}

impl EffectiveGrants {
    pub fn new(
        plugin: &str,
        requested: BTreeSet<Capability>,
        operator: BTreeSet<Capability>,
    ) -> Self {
        let granted = requested.intersection(&operator).copied().collect();
        Self {
            plugin: plugin.to_string(),
            requested,
            granted,
        }
    }

    /// Nothing granted: what `plugin check` uses to call `describe`.
    pub fn none(plugin: &str) -> Self {
        Self::new(plugin, BTreeSet::new(), BTreeSet::new())
    }

    /// Ok, or a message naming the missing grant and how to give it.
    pub fn authorize(&self, capability: Capability) -> Result<(), String> {
        if self.granted.contains(&capability) {
            return Ok(());
        }
        let plugin = &self.plugin;
        Err(if self.requested.contains(&capability) {
            format!(
                "plugin `{plugin}` has not been granted the `{capability}` capability; an operator can grant it \
                 with `agenthost plugin grant {plugin} {capability}` (`--grant {capability}` for `plugin invoke`)"
            )
        } else {
            format!(
                "plugin `{plugin}` does not list `{capability}` in its manifest's capabilities, so it cannot use it; \
                 its author must add it and an operator must grant it"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[Capability]) -> BTreeSet<Capability> {
        list.iter().copied().collect()
    }

    #[test]
    fn effective_is_the_intersection() {
        let g = EffectiveGrants::new(
            "p",
            caps(&[Capability::Shell]),
            caps(&[Capability::Shell, Capability::Llm]),
        );
        assert!(g.authorize(Capability::Shell).is_ok());
        let denied = g.authorize(Capability::Llm).unwrap_err();
        assert!(denied.contains("does not list `llm`"), "{denied}");
    }

    #[test]
    fn denial_names_the_grant_to_give() {
        let g = EffectiveGrants::new("bash", caps(&[Capability::Shell]), BTreeSet::new());
        let denied = g.authorize(Capability::Shell).unwrap_err();
        assert!(
            denied.contains("agenthost plugin grant bash shell"),
            "{denied}"
        );
    }
}
