//! Plugins across the fleet: a change made through any host's API (an
//! install, an activation or rollback, a removal, a grant) is written to
//! the database's change log, with the component stored once by content,
//! and every other host applies it to its own registry in log order:
//! within a second through a notification, or at start for everything it
//! missed. Each host keeps its own files and compiled cache, so a swap
//! across the fleet is each host's ordinary hot swap.
//!
//! Plugins installed into one host's data directory with the CLI stay that
//! host's own; the log carries what goes through the API.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::sync::Arc;

use super::Fleet;
use crate::plugins::{GrantTable, LoadedPlugin, PluginError, Registry, RegistryError};
use crate::store::{Store, StoreError, PLUGINS_CHANNEL};

/// Log entries read per round trip.
const PAGE: i64 = 100;

/// One change to the installed plugins, as the log stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PluginChange {
    /// A version installed and made active; its component is stored by hash.
    Install {
        name: String,
        version: String,
        sha256: String,
    },
    Activate {
        name: String,
        version: String,
    },
    Remove {
        name: String,
    },
    /// The whole grant table after a change.
    Grants {
        table: GrantTable,
    },
}

impl Fleet {
    /// Shares a plugin this host just installed (and the grants as they
    /// now stand).
    pub async fn share_install(&self, plugin: &LoadedPlugin, bytes: &[u8], grants: GrantTable) {
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        let manifest = plugin.manifest.to_toml();
        if let Err(e) = self
            .store
            .put_fleet_component(&sha256, &manifest, bytes)
            .await
        {
            tracing::error!(plugin = %plugin.manifest.name, error = %e, "cannot share the component with the fleet");
            return;
        }
        self.share(PluginChange::Install {
            name: plugin.manifest.name.clone(),
            version: plugin.manifest.version.clone(),
            sha256,
        })
        .await;
        self.share(PluginChange::Grants { table: grants }).await;
    }

    /// Writes a change to the fleet's log. A failure is logged: the change
    /// stands on this host, and the operator sees the error there.
    pub async fn share(&self, change: PluginChange) {
        let json = match serde_json::to_string(&change) {
            Ok(j) => j,
            Err(e) => return tracing::error!(error = %e, "cannot encode a plugin change"),
        };
        if let Err(e) = self.store.append_plugin_change(&self.host_id, &json).await {
            tracing::error!(error = %e, ?change, "cannot share a plugin change with the fleet");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Applies one change to this host's registry. Idempotent: installing the
/// same bytes again, activating the active version or removing what is
/// gone change nothing.
async fn apply(store: &Store, registry: &Registry, change: PluginChange) -> Result<(), ApplyError> {
    match change {
        PluginChange::Install { name, sha256, .. } => {
            let (manifest, bytes) = store.fleet_component(&sha256).await?;
            let manifest = crate::plugins::Manifest::parse(&manifest)?;
            registry
                .install(bytes, Some(manifest), &name, &Default::default())
                .await?;
        }
        PluginChange::Activate { name, version } => {
            registry.activate(&name, &version).await?;
        }
        PluginChange::Remove { name } => match registry.remove(&name) {
            Ok(()) | Err(RegistryError::NotInstalled(_)) => {}
            Err(e) => return Err(e.into()),
        },
        PluginChange::Grants { table } => registry.replace_grants(table)?,
    }
    Ok(())
}

/// Applies every log entry after `cursor`, moving it along. `skip_own`:
/// leave this host's own changes (already applied when they were made).
async fn catch_up(fleet: &Fleet, registry: &Registry, cursor: &mut i64, skip_own: bool) {
    loop {
        let page = match fleet.store.plugin_changes_after(*cursor, PAGE).await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(error = %e, "cannot read the fleet's plugin changes"),
        };
        for row in &page {
            *cursor = row.id;
            if skip_own && row.origin == fleet.host_id {
                continue;
            }
            let change: PluginChange = match serde_json::from_str(&row.change) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(id = row.id, error = %e, "skipping a plugin change this host cannot read");
                    continue;
                }
            };
            tracing::info!(id = row.id, origin = %row.origin, ?change, "applying a fleet plugin change");
            if let Err(e) = apply(&fleet.store, registry, change).await {
                tracing::warn!(id = row.id, error = %e, "a fleet plugin change did not apply here");
            }
        }
        if (page.len() as i64) < PAGE {
            return;
        }
    }
}

/// Applies the whole log once (this host's own entries too: a restarted
/// host may have missed its own last ones), then follows it.
pub(super) async fn follow_changes(fleet: Arc<Fleet>, registry: Arc<Registry>) {
    let mut cursor = 0;
    catch_up(&fleet, &registry, &mut cursor, false).await;
    loop {
        let mut listener = super::listen_on(&fleet.database_url, PLUGINS_CHANNEL).await;
        catch_up(&fleet, &registry, &mut cursor, true).await;
        while let Ok(Some(_)) = listener.try_recv().await {
            catch_up(&fleet, &registry, &mut cursor, true).await;
        }
    }
}
