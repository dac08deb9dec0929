//! Plugins as OCI artifacts: `plugin publish FILE oci://HOST/NAME:TAG`
//! pushes a component, `plugin install oci://HOST/NAME:TAG` (or
//! `@sha256:...`) pulls one. The layout is the Wasm OCI artifact one that
//! wasm-pkg-tools and others use: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` (architecture `wasm`, os
//! `wasip2`, the layer digests) and whose one layer is the component as
//! `application/wasm`. The plugin's manifest (plugin.toml) rides along as
//! an annotation, so capabilities and kind arrive with the bytes.
//!
//! The registry is spoken to through [`agenthost::oci`] (bounded reads,
//! digests checked, pins enforced).

use agenthost::oci::{Client, Reference, MANIFEST_MEDIA_TYPE};
use anyhow::Context as _;
use serde_json::json;

const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The annotation carrying plugin.toml.
const PLUGIN_MANIFEST_ANNOTATION: &str = "dev.agenthost.plugin.manifest";
/// Larger than any component the host would load (Python components are
/// tens of MiB).
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Push a component; returns the manifest's digest (`sha256:...`).
pub async fn publish(
    reference: &Reference,
    component: Vec<u8>,
    plugin_manifest: &agenthost::plugins::Manifest,
) -> anyhow::Result<String> {
    let tag = reference
        .tag
        .clone()
        .ok_or_else(|| anyhow::anyhow!("publish to a tag: oci://HOST/NAME:TAG"))?;
    let registry = Client::new()?;
    let component_size = component.len();
    let layer = registry.push_blob(reference, component).await?;
    let created = chrono_like_now();
    let config = serde_json::to_vec(&json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer],
    }))?;
    let config_size = config.len();
    let config_digest = registry.push_blob(reference, config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": CONFIG_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer, "size": component_size}],
        "annotations": {
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.title": plugin_manifest.name,
            "org.opencontainers.image.version": plugin_manifest.version,
            "org.opencontainers.image.description": plugin_manifest.description,
            PLUGIN_MANIFEST_ANNOTATION: plugin_manifest.to_toml(),
        },
    }))?;
    Ok(registry.put_manifest(reference, &tag, manifest).await?)
}

/// RFC 3339 UTC, without a date crate.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What `pull` brings back.
pub struct Pulled {
    pub component: Vec<u8>,
    /// plugin.toml as published, if it was.
    pub plugin_manifest: Option<String>,
    pub digest: String,
}

pub async fn pull(reference: &Reference) -> anyhow::Result<Pulled> {
    let registry = Client::new()?;
    let (manifest, digest) = registry.manifest(reference).await?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let layer = layers
        .iter()
        .find(|l| l["mediaType"] == LAYER_MEDIA_TYPE)
        .ok_or_else(|| {
            anyhow::anyhow!("the artifact has no `{LAYER_MEDIA_TYPE}` layer: not a Wasm component")
        })?;
    let layer_digest = layer["digest"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the layer has no digest"))?
        .to_string();
    anyhow::ensure!(
        layer["size"]
            .as_u64()
            .is_some_and(|s| s <= MAX_COMPONENT_BYTES),
        "the component is larger than {MAX_COMPONENT_BYTES} bytes (or says no size)"
    );
    let component = registry
        .blob(reference, &layer_digest, MAX_COMPONENT_BYTES)
        .await
        .context("the component")?;
    Ok(Pulled {
        component,
        plugin_manifest: manifest["annotations"][PLUGIN_MANIFEST_ANNOTATION]
            .as_str()
            .map(str::to_string),
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = chrono_like_now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
