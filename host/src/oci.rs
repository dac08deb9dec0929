//! A client of the OCI distribution API, for artifacts the host and its
//! CLI keep in a registry the operator names: plugin components
//! (`plugin publish` / `install oci://...`) and, in a fleet, session
//! snapshots (so a host adopting a lost host's session finds its files).
//!
//! Plain HTTP requests: `http://` for loopback registries, `https://`
//! otherwise; no credentials (a registry that wants them answers 401,
//! which is shown). Everything read is bounded before it is buffered or
//! written, every blob is checked against its digest, and a pinned
//! manifest digest that does not match is refused.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("`{0}` is not an OCI reference: oci://HOST/NAME:TAG or oci://HOST/NAME@sha256:DIGEST")]
    BadReference(String),
    #[error("`{0}` names no version: add :TAG or @sha256:DIGEST")]
    NoVersion(String),
    #[error("cannot reach {registry}: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error("the registry refused {what} ({status}): {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("the registry sent more than {0} bytes")]
    TooLarge(u64),
    #[error("{0}: refused")]
    DigestMismatch(String),
    #[error("the registry's answer is malformed: {0}")]
    Malformed(String),
    #[error("a local file: {0}")]
    File(#[from] std::io::Error),
}

/// `oci://HOST[:PORT]/REPO[/...](:TAG|@sha256:HEX)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let usage = || OciError::BadReference(text.to_string());
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
        let reference = Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        };
        if !reference.is_valid() {
            return Err(usage());
        }
        if reference.tag.is_none() && reference.digest.is_none() {
            return Err(OciError::NoVersion(text.to_string()));
        }
        Ok(reference)
    }

    /// A repository reference with no version yet (`HOST[:PORT]/REPO`), to
    /// push tags to.
    pub fn repository(text: &str) -> Result<Self, OciError> {
        let (registry, repository) = text
            .split_once('/')
            .ok_or_else(|| OciError::BadReference(text.to_string()))?;
        let reference = Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: None,
            digest: None,
        };
        if !reference.is_valid() {
            return Err(OciError::BadReference(text.to_string()));
        }
        Ok(reference)
    }

    fn is_valid(&self) -> bool {
        let repo_ok = !self.repository.is_empty()
            && self.repository.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        let tag_ok = self.tag.as_deref().is_none_or(valid_tag);
        let digest_ok = self.digest.as_deref().is_none_or(|d| {
            d.strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        });
        !self.registry.is_empty() && !self.registry.contains('/') && repo_ok && tag_ok && digest_ok
    }

    /// The same repository at `digest`.
    pub fn at_digest(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_string()),
            tag: None,
            ..self.clone()
        }
    }

    /// `oci://HOST/REPO@DIGEST` (or `:TAG`).
    pub fn to_uri(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("oci://{}/{}@{d}", self.registry, self.repository),
            (None, Some(t)) => format!("oci://{}/{}:{t}", self.registry, self.repository),
            (None, None) => format!("oci://{}/{}", self.registry, self.repository),
        }
    }

    pub fn base(&self) -> String {
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

/// A tag the distribution spec accepts.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The body, refused if it says or turns out to be larger than `max`.
pub async fn bounded(mut response: reqwest::Response, max: u64) -> Result<Vec<u8>, OciError> {
    if response.content_length().is_some_and(|n| n > max) {
        return Err(OciError::TooLarge(max));
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(malformed)? {
        if out.len() as u64 + chunk.len() as u64 > max {
            return Err(OciError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn malformed(e: impl std::fmt::Display) -> OciError {
    OciError::Malformed(e.to_string())
}

/// A registry client (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new() -> Result<Self, OciError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(malformed)?;
        Ok(Self { http })
    }

    async fn send(
        &self,
        reference: &Reference,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OciError> {
        request.send().await.map_err(|e| OciError::Unreachable {
            registry: reference.registry.clone(),
            detail: e.to_string(),
        })
    }

    async fn ok(response: reqwest::Response, what: &str) -> Result<reqwest::Response, OciError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = bounded(response, 64 << 10).await.unwrap_or_default();
        Err(OciError::Refused {
            what: what.to_string(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).trim().to_string(),
        })
    }

    /// Uploads a blob (unless the registry has it); returns its digest.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
    ) -> Result<String, OciError> {
        let digest = sha256(&bytes);
        self.upload(reference, &digest, reqwest::Body::from(bytes))
            .await?;
        Ok(digest)
    }

    /// Uploads a file as a blob, streamed (unless the registry has it);
    /// returns its digest and size.
    pub async fn push_blob_file(
        &self,
        reference: &Reference,
        path: &Path,
    ) -> Result<(String, u64), OciError> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let file = tokio::fs::File::open(path).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        self.upload(reference, &digest, body).await?;
        Ok((digest, size))
    }

    async fn upload(
        &self,
        reference: &Reference,
        digest: &str,
        body: reqwest::Body,
    ) -> Result<(), OciError> {
        let base = reference.base();
        let head = self
            .send(reference, self.http.head(format!("{base}/blobs/{digest}")))
            .await?;
        if head.status().is_success() {
            return Ok(());
        }
        let started = self
            .send(reference, self.http.post(format!("{base}/blobs/uploads/")))
            .await?;
        let started = Self::ok(started, "an upload").await?;
        let location = started
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| malformed("the registry gave no upload location"))?;
        // The location may be relative to the registry.
        let mut url = if location.starts_with('/') {
            let origin = base.split("/v2/").next().unwrap_or_default();
            reqwest::Url::parse(&format!("{origin}{location}")).map_err(malformed)?
        } else {
            reqwest::Url::parse(location).map_err(malformed)?
        };
        url.query_pairs_mut().append_pair("digest", digest);
        let put = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        Self::ok(self.send(reference, put).await?, "a blob").await?;
        Ok(())
    }

    /// Puts an image manifest under `tag`; returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        tag: &str,
        manifest: Vec<u8>,
    ) -> Result<String, OciError> {
        let digest = sha256(&manifest);
        let put = self
            .http
            .put(format!("{}/manifests/{tag}", reference.base()))
            .header(reqwest::header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
            .body(manifest);
        Self::ok(self.send(reference, put).await?, "the manifest").await?;
        Ok(digest)
    }

    /// Deletes the manifest `reference` pins by digest (the distribution
    /// spec deletes by digest only). A registry with deletes turned off
    /// answers 405, reported as [`OciError::Refused`].
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<(), OciError> {
        let digest = reference
            .digest
            .as_deref()
            .ok_or_else(|| malformed("a manifest is deleted by its digest"))?;
        let delete = self
            .http
            .delete(format!("{}/manifests/{digest}", reference.base()));
        Self::ok(self.send(reference, delete).await?, "deleting the manifest").await?;
        Ok(())
    }

    /// The manifest `reference` names, as JSON, and its digest; a pinned
    /// digest that does not match is refused.
    pub async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<(serde_json::Value, String), OciError> {
        let get = self
            .http
            .get(format!(
                "{}/manifests/{}",
                reference.base(),
                reference.manifest_ref()
            ))
            .header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPE);
        let response = Self::ok(self.send(reference, get).await?, "the manifest").await?;
        let bytes = bounded(response, MAX_MANIFEST_BYTES).await?;
        let digest = sha256(&bytes);
        if let Some(pinned) = &reference.digest {
            if &digest != pinned {
                return Err(OciError::DigestMismatch(format!(
                    "the registry's manifest is {digest}, not the pinned {pinned}"
                )));
            }
        }
        let manifest = serde_json::from_slice(&bytes)
            .map_err(|_| malformed("the registry's manifest is not JSON"))?;
        Ok((manifest, digest))
    }

    /// A blob, at most `max` bytes, checked against its digest.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &str,
        max: u64,
    ) -> Result<Vec<u8>, OciError> {
        let get = self
            .http
            .get(format!("{}/blobs/{digest}", reference.base()));
        let response = Self::ok(self.send(reference, get).await?, "a blob").await?;
        let bytes = bounded(response, max).await?;
        if sha256(&bytes) != digest {
            return Err(OciError::DigestMismatch(format!(
                "the blob's bytes do not match its digest {digest}"
            )));
        }
        Ok(bytes)
    }

    /// A blob written to `to`, at most `max` bytes, checked against its
    /// digest before it is given its name.
    pub async fn blob_to_file(
        &self,
        reference: &Reference,
        digest: &str,
        max: u64,
        to: &Path,
    ) -> Result<(), OciError> {
        let get = self
            .http
            .get(format!("{}/blobs/{digest}", reference.base()));
        let mut response = Self::ok(self.send(reference, get).await?, "a blob").await?;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(OciError::TooLarge(max));
        }
        let partial = to.with_extension("partial");
        let written = async {
            let mut file = tokio::fs::File::create(&partial).await?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = response.chunk().await.map_err(malformed)? {
                size += chunk.len() as u64;
                if size > max {
                    return Err(OciError::TooLarge(max));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            if format!("sha256:{}", hex::encode(hasher.finalize())) != digest {
                return Err(OciError::DigestMismatch(format!(
                    "the blob's bytes do not match its digest {digest}"
                )));
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => Ok(tokio::fs::rename(&partial, to).await?),
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }
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
        assert_eq!(r.to_uri(), format!("oci://registry.example/echo@{d}"));
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
        let repo = Reference::repository("127.0.0.1:5000/agenthost/snapshots").unwrap();
        assert_eq!(repo.repository, "agenthost/snapshots");
        for bad in ["nohost", "host/", "host/Upper", "host//x"] {
            assert!(Reference::repository(bad).is_err(), "{bad}");
        }
    }
}
