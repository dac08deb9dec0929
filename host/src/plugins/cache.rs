//! Compiled components cached on disk.
//!
//! Compiling a Python or JavaScript component takes seconds; loading its
//! precompiled artifact takes milliseconds. Artifacts are keyed by the
//! SHA-256 of the `.wasm` and the engine's compatibility hash, so a host
//! upgrade or a settings change never loads an incompatible artifact.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::error::{LoadError, Source};
use super::PluginError;

/// Where a host or a CLI command on `data_dir` caches compiled components:
/// `AGENTHOST_CACHE_DIR` if set, else `DATA_DIR/cache`. Hosts and commands
/// on one machine can share one directory, since artifacts are keyed by
/// content and engine and written atomically; so a component compiles once
/// for all of them.
pub fn compiled_cache_dir(data_dir: &Path) -> PathBuf {
    std::env::var_os("AGENTHOST_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("cache"))
}

pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether a load compiled the component or found it in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

pub struct CompiledCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

impl CompiledCache {
    /// `dir = None` compiles every time (one-off CLI commands).
    pub fn new(dir: Option<PathBuf>, engine_hash: String) -> Result<Self, PluginError> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)
                .map_err(|e| PluginError::engine("creating the compiled-component cache", e))?;
        }
        Ok(Self { dir, engine_hash })
    }

    fn artifact_path(&self, hash: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(format!("{hash}-{}.cwasm", self.engine_hash)),
        )
    }

    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        if let Some(path) = self.artifact_path(hash).filter(|p| p.is_file()) {
            // SAFETY: the file is one a cache wrote with `serialize` for an
            // engine of the same compatibility hash, in a directory only
            // hosts of this operator write to. A corrupt or foreign file is rejected by
            // wasmtime's header checks and then recompiled below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled artifact")
                }
            }
        }
        let component = Component::from_binary(engine, bytes).map_err(LoadError::invalid)?;
        if let Some(path) = self.artifact_path(hash) {
            if let Err(e) = write_atomically(&path, &component) {
                tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
            }
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

fn write_atomically(path: &Path, component: &Component) -> Result<(), Source> {
    let bytes = component.serialize()?;
    super::fs::replace(path, &bytes)?;
    Ok(())
}
