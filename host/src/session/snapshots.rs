//! When a session's desktop files are saved, and where: after each run
//! (configurable), and when a fork asks for the session as it is now. A
//! snapshot is the sandbox's home as a tar archive (see
//! [`crate::sandbox::Sandbox::save_home`]) in the host's data directory,
//! recorded in the store after the event it follows, so a fork at event N
//! starts its desktop from the newest snapshot taken by then.
//!
//! In a fleet the archive must outlive the host that took it: with a
//! registry configured each snapshot is also pushed there as an OCI
//! artifact (one `tar` layer), and the store records its reference, so a
//! host adopting a lost host's session pulls it and resumes on it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::oci::{self, OciError, Reference, MANIFEST_MEDIA_TYPE};
use crate::sandbox::Sandbox;
use crate::store::{now_ms, Snapshot, Store};

const ARTIFACT_TYPE: &str = "application/vnd.agenthost.snapshot.v1";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The OCI "empty" config: artifacts that need none point at `{}`.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// `[snapshots]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Save the desktop's files each time a run ends.
    pub after_run: bool,
    /// Snapshots kept per session (the oldest go first).
    pub keep: usize,
    /// Push snapshots to this OCI repository (`HOST[:PORT]/REPO`), so any
    /// host of a fleet can resume a session on its last one.
    pub registry: Option<String>,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            after_run: true,
            keep: 10,
            registry: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the snapshot registry: {0}")]
    Registry(#[from] OciError),
    #[error("snapshot directory: {0}")]
    Dir(#[from] std::io::Error),
}

/// Takes, records, pushes and fetches snapshots.
#[derive(Clone)]
pub struct Snapshots {
    pub config: SnapshotConfig,
    dir: PathBuf,
    /// The largest archive accepted from a sandbox or a registry.
    max_bytes: u64,
    registry: Option<(Reference, oci::Client)>,
}

impl Snapshots {
    /// Snapshots kept under `dir`; `max_bytes` bounds each archive.
    pub fn new(
        config: SnapshotConfig,
        dir: PathBuf,
        max_bytes: u64,
    ) -> Result<Self, SnapshotError> {
        let registry = match &config.registry {
            Some(repo) => Some((Reference::repository(repo)?, oci::Client::new()?)),
            None => None,
        };
        Ok(Self {
            config,
            dir,
            max_bytes,
            registry,
        })
    }

    /// A session's directory. Session ids are made by the store from
    /// letters and digits, so the path stays inside.
    fn session_dir(&self, session_id: &str) -> PathBuf {
        self.dir.join(session_id)
    }

    fn file_of(&self, session_id: &str, seq: i64) -> PathBuf {
        self.session_dir(session_id).join(format!("{seq}.tar"))
    }

    /// Saves `sandbox`'s files as the session's snapshot after event `seq`
    /// (pushed to the registry if there is one) and forgets the oldest
    /// beyond `keep`.
    pub async fn take(
        &self,
        store: &Store,
        session_id: &str,
        seq: i64,
        sandbox: &Sandbox,
    ) -> Result<Snapshot, SnapshotError> {
        tokio::fs::create_dir_all(self.session_dir(session_id)).await?;
        let path = self.file_of(session_id, seq);
        let bytes = sandbox.save_home(&path).await?;
        let location = match &self.registry {
            Some((repo, client)) => push(repo, client, session_id, seq, &path).await?,
            None => path.display().to_string(),
        };
        let snapshot = Snapshot {
            session_id: session_id.to_string(),
            seq,
            location,
            bytes: bytes as i64,
            created_ms: now_ms(),
        };
        store.add_snapshot(&snapshot).await?;
        let pruned = store
            .prune_snapshots(session_id, self.config.keep.max(1))
            .await?;
        for old in &pruned {
            // Forks starting from it hold links of their own.
            let _ = tokio::fs::remove_file(self.file_of(session_id, old.seq)).await;
        }
        self.unpush(store, &pruned).await;
        Ok(snapshot)
    }

    async fn pull(&self, location: &str, to: &Path) -> Result<(), SnapshotError> {
        let reference = Reference::parse(location)?;
        let client = match &self.registry {
            Some((_, client)) => client.clone(),
            None => oci::Client::new()?,
        };
        let (manifest, _) = client.manifest(&reference).await?;
        let layer = manifest["layers"]
            .as_array()
            .and_then(|layers| layers.iter().find(|l| l["mediaType"] == LAYER_MEDIA_TYPE))
            .and_then(|l| l["digest"].as_str())
            .ok_or_else(|| OciError::Malformed(format!("{location} is not a snapshot")))?
            .to_string();
        client
            .blob_to_file(&reference, &layer, self.max_bytes, to)
            .await?;
        Ok(())
    }

    /// Makes `snapshot` the one session `target` (a fork) starts its next
    /// desktop from. One in a registry is named there, so whichever host
    /// opens the fork pulls it; a local one gets a link of the fork's own,
    /// which outlives the original's pruning.
    pub async fn start_from(
        &self,
        store: &Store,
        snapshot: &Snapshot,
        target: &str,
    ) -> Result<(), SnapshotError> {
        if snapshot.location.starts_with("oci://") {
            store
                .set_restore_from(target, Some(&snapshot.location))
                .await?;
            return Ok(());
        }
        tokio::fs::create_dir_all(self.session_dir(target)).await?;
        let path = self
            .session_dir(target)
            .join(format!("from-{}-{}.tar", snapshot.session_id, snapshot.seq));
        if !path.is_file() {
            let original = Path::new(&snapshot.location);
            if tokio::fs::hard_link(original, &path).await.is_err() {
                tokio::fs::copy(original, &path).await?;
            }
        }
        store
            .set_restore_from(target, Some(&path.display().to_string()))
            .await?;
        Ok(())
    }

    /// A file holding the archive at `location` for session `session_id`
    /// to restore: the path itself, or a copy pulled from the registry.
    pub async fn local_copy(
        &self,
        session_id: &str,
        location: &str,
    ) -> Result<PathBuf, SnapshotError> {
        if !location.starts_with("oci://") {
            return Ok(PathBuf::from(location));
        }
        tokio::fs::create_dir_all(self.session_dir(session_id)).await?;
        let path = self.session_dir(session_id).join("pulled.tar");
        self.pull(location, &path).await?;
        Ok(path)
    }

    /// Removes a deleted session's archives: its directory, and the
    /// manifests of `snapshots` (read before the session's rows went) that
    /// it pushed to the registry.
    pub async fn remove_session(&self, store: &Store, session_id: &str, snapshots: &[Snapshot]) {
        let _ = tokio::fs::remove_dir_all(self.session_dir(session_id)).await;
        self.unpush(store, snapshots).await;
    }

    /// Deletes pushed snapshots from the registry, except any a session's
    /// next desktop is still to start from (a fork's). Their blobs go with
    /// the registry's garbage collection. A registry with deletes turned
    /// off keeps them, and says so in the log once per call.
    async fn unpush(&self, store: &Store, snapshots: &[Snapshot]) {
        let client = match &self.registry {
            Some((_, client)) => client,
            None => return,
        };
        let mut refused_said = false;
        for s in snapshots
            .iter()
            .filter(|s| s.location.starts_with("oci://"))
        {
            match store.restore_pending(&s.location).await {
                Ok(false) => {}
                // Still wanted, or unknown: keep it.
                Ok(true) | Err(_) => continue,
            }
            let Ok(reference) = Reference::parse(&s.location) else {
                continue;
            };
            match client.delete_manifest(&reference).await {
                Ok(()) => {}
                // Already gone: what deleting wanted.
                Err(OciError::Refused { status: 404, .. }) => {}
                Err(e) if !refused_said => {
                    refused_said = true;
                    tracing::warn!(
                        session = %s.session_id,
                        error = %e,
                        "a deleted snapshot stays in the registry (does it allow deletes?)"
                    );
                }
                Err(_) => {}
            }
        }
    }
}

/// Pushes an archive as an OCI artifact tagged `SESSION-SEQ`; returns its
/// pinned reference.
async fn push(
    repo: &Reference,
    client: &oci::Client,
    session_id: &str,
    seq: i64,
    path: &Path,
) -> Result<String, OciError> {
    let (layer, size) = client.push_blob_file(repo, path).await?;
    let empty = b"{}".to_vec();
    let config = client.push_blob(repo, empty).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer, "size": size}],
        "annotations": {
            "dev.agenthost.session": session_id,
            "dev.agenthost.seq": seq.to_string(),
        },
    }))
    .map_err(|e| OciError::Malformed(e.to_string()))?;
    let digest = client
        .put_manifest(repo, &format!("{session_id}-{seq}"), manifest)
        .await?;
    Ok(repo.at_digest(&digest).to_uri())
}
