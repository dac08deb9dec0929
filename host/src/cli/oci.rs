//! Plugins as OCI artifacts: `plugin publish FILE oci://HOST/NAME:TAG`
//! pushes a component, `plugin install oci://HOST/NAME:TAG` (or
//! `@sha256:...`) pulls one. The layout is the Wasm OCI artifact one that
//! wasm-pkg-tools and others use: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` (architecture `wasm`, os
//! `wasip2`, the layer digests) and whose one layer is the component as
//! `application/wasm`. The plugin's manifest (plugin.toml) rides along as
//! an annotation, so capabilities and kind arrive with the bytes.
//!
//! Spoken over the OCI distribution API with plain HTTP requests:
//! `http://` for loopback registries, `https://` otherwise; no
//! credentials (a registry that wants them answers 401, which is shown).
//! Everything read is bounded before it is buffered, and every blob is
//! checked against its digest; a pinned manifest digest that does not
//! match is refused.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The annotation carrying plugin.toml.
const PLUGIN_MANIFEST_ANNOTATION: &str = "dev.agenthost.plugin.manifest";
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Larger than any component the host would load (Python components are
/// tens of MiB).
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// `oci://HOST[:PORT]/REPO[/...](:TAG|@sha256:HEX)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let usage = || {
            anyhow::anyhow!("`{text}` is not an OCI reference: oci://HOST/NAME:TAG or oci://HOST/NAME@sha256:DIGEST")
        };
        let rest = text.strip_prefix("oci://").ok_or_else(usage)?;
        let (registry, path) = rest.split_once('/').ok_or_else(usage)?;
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => (p, Some(d.to_string())),
            None => (path, None),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (path, None),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        let tag_ok = tag.as_deref().is_none_or(|t| {
            !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
        let digest_ok = digest.as_deref().is_none_or(|d| {
            d.strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        });
        if registry.is_empty() || !repo_ok || !tag_ok || !digest_ok {
            return Err(usage());
        }
        if tag.is_none() && digest.is_none() {
            anyhow::bail!("`{text}` names no version: add :TAG or @sha256:DIGEST");
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    fn base(&self) -> String {
        let host = self.registry.split(':').next().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let scheme = if loopback { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }

    /// What a manifest is fetched by: the pinned digest wins over the tag.
    fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()?)
}

async fn ok(response: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = bounded(response, 64 << 10).await.unwrap_or_default();
    anyhow::bail!(
        "the registry refused {what} ({status}): {}",
        String::from_utf8_lossy(&body).trim()
    )
}

/// The body, refused if it says or turns out to be larger than `max`.
pub(super) async fn bounded(mut response: reqwest::Response, max: u64) -> anyhow::Result<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > max) {
        anyhow::bail!("the registry sent more than {max} bytes");
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if out.len() as u64 + chunk.len() as u64 > max {
            anyhow::bail!("the registry sent more than {max} bytes");
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn push_blob(
    http: &reqwest::Client,
    reference: &Reference,
    bytes: Vec<u8>,
) -> anyhow::Result<String> {
    let digest = sha256(&bytes);
    let base = reference.base();
    let head = http.head(format!("{base}/blobs/{digest}")).send().await?;
    if head.status().is_success() {
        return Ok(digest);
    }
    let started = http
        .post(format!("{base}/blobs/uploads/"))
        .send()
        .await
        .with_context(|| format!("cannot reach {}", reference.registry))?;
    let started = ok(started, "an upload").await?;
    let location = started
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("the registry gave no upload location"))?;
    // The location may be relative to the registry.
    let mut url = if location.starts_with('/') {
        let origin = base.split("/v2/").next().unwrap_or_default();
        reqwest::Url::parse(&format!("{origin}{location}"))?
    } else {
        reqwest::Url::parse(location)?
    };
    url.query_pairs_mut().append_pair("digest", &digest);
    let put = http
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes)
        .send()
        .await?;
    ok(put, "a blob").await?;
    Ok(digest)
}

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
    let http = client()?;
    let component_size = component.len();
    let layer = push_blob(&http, reference, component).await?;
    let created = chrono_like_now();
    let config = serde_json::to_vec(&json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer],
    }))?;
    let config_size = config.len();
    let config_digest = push_blob(&http, reference, config).await?;
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
    let digest = sha256(&manifest);
    let put = http
        .put(format!("{}/manifests/{tag}", reference.base()))
        .header(reqwest::header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
        .body(manifest)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", reference.registry))?;
    ok(put, "the manifest").await?;
    Ok(digest)
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
    let http = client()?;
    let base = reference.base();
    let response = http
        .get(format!("{base}/manifests/{}", reference.manifest_ref()))
        .header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPE)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", reference.registry))?;
    let bytes = bounded(ok(response, "the manifest").await?, MAX_MANIFEST_BYTES).await?;
    let digest = sha256(&bytes);
    if let Some(pinned) = &reference.digest {
        anyhow::ensure!(
            &digest == pinned,
            "the registry's manifest is {digest}, not the pinned {pinned}: refused"
        );
    }
    let manifest: Value =
        serde_json::from_slice(&bytes).context("the registry's manifest is not JSON")?;
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
    let response = http
        .get(format!("{base}/blobs/{layer_digest}"))
        .send()
        .await?;
    let component = bounded(ok(response, "the component").await?, MAX_COMPONENT_BYTES).await?;
    anyhow::ensure!(
        sha256(&component) == layer_digest,
        "the component's bytes do not match its digest {layer_digest}: refused"
    );
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
    fn references_parse_strictly() {
        let r = Reference::parse("oci://127.0.0.1:5000/plugins/echo:0.1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "plugins/echo");
        assert_eq!(r.tag.as_deref(), Some("0.1.0"));
        assert_eq!(r.base(), "http://127.0.0.1:5000/v2/plugins/echo");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("oci://registry.example/echo@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(r.base().starts_with("https://"));
        for bad in [
            "echo:1",
            "oci://host",
            "oci://host/echo",
            "oci://host/Echo:1",
            "oci://host/echo@sha256:xyz",
            "oci://host//echo:1",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = chrono_like_now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
