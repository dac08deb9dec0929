//! A plugin's manifest: who it is and which capabilities it asks for.
//!
//! The manifest is a small TOML file shipped beside the `.wasm`
//! (`plugin.toml`, or `<stem>.toml` next to `<stem>.wasm`). Asking for a
//! capability grants nothing: the operator grants, and a plugin only ever
//! gets the intersection of what it asked for and what it was granted.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::RegistryError;

/// A host interface that must be granted before a plugin can use it.
/// `log` is not one: logging into the session is always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Computer,
    Shell,
    Files,
    Llm,
}

impl Capability {
    pub const ALL: [Capability; 4] = [Self::Computer, Self::Shell, Self::Files, Self::Llm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Computer => "computer",
            Self::Shell => "shell",
            Self::Files => "files",
            Self::Llm => "llm",
        }
    }

    /// The capability a WIT interface of our package stands for, if any.
    pub fn for_interface(interface: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == interface)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| RegistryError::UnknownCapability {
                name: s.to_string(),
                known: Self::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Parses "shell,files" as given on the command line.
pub fn parse_capability_list(list: &str) -> Result<BTreeSet<Capability>, RegistryError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Tool,
    Policy,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tool => "tool",
            Self::Policy => "policy",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    kind: Option<PluginKind>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// What the manifest claims; checked against the component at load.
    pub kind: Option<PluginKind>,
    pub description: String,
    pub capabilities: BTreeSet<Capability>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| RegistryError::BadManifest(e.to_string()))?;
        validate_name(&raw.name)?;
        validate_version(&raw.version)?;
        // `log` needs no grant; a manifest that lists it anyway is fine.
        let capabilities = raw
            .capabilities
            .iter()
            .filter(|c| c.as_str() != "log")
            .map(|c| c.parse())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: raw.name,
            version: raw.version,
            kind: raw.kind,
            description: raw.description,
            capabilities,
        })
    }

    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RegistryError::BadManifest(format!("cannot read {}: {e}", path.display()))
        })?;
        Self::parse(&text).map_err(|e| match e {
            RegistryError::BadManifest(m) => {
                RegistryError::BadManifest(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// The manifest that belongs to `wasm`: `<stem>.toml` beside it, else a
    /// `plugin.toml` in the same folder.
    pub fn find_beside(wasm: &Path) -> Option<PathBuf> {
        let sibling = wasm.with_extension("toml");
        if sibling != wasm && sibling.is_file() {
            return Some(sibling);
        }
        let shared = wasm.parent()?.join("plugin.toml");
        shared.is_file().then_some(shared)
    }

    pub fn to_toml(&self) -> String {
        let raw = RawManifest {
            name: self.name.clone(),
            version: self.version.clone(),
            kind: self.kind,
            description: self.description.clone(),
            capabilities: self.capabilities.iter().map(|c| c.to_string()).collect(),
        };
        toml::to_string(&raw).unwrap_or_default()
    }
}

/// Versions are semver (`1.2.3`, `1.0.0-beta.1`); they become directory
/// names, so nothing else (no `..`, `/`, or other characters) passes.
pub fn validate_version(version: &str) -> Result<(), RegistryError> {
    match semver::Version::parse(version) {
        Ok(_) if version.len() <= 64 => Ok(()),
        _ => Err(RegistryError::BadManifest(format!(
            "version `{}` is not a semantic version such as 1.2.3 (https://semver.org)",
            version.escape_debug()
        ))),
    }
}

/// Plugin names become directory names and appear in URLs.
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadManifest(format!(
            "name `{name}` must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_manifest() {
        let m = Manifest::parse(
            "name = \"bash\"\nversion = \"1.2.0\"\nkind = \"tool\"\ncapabilities = [\"shell\", \"files\"]\n",
        )
        .unwrap();
        assert_eq!(m.name, "bash");
        assert_eq!(m.kind, Some(PluginKind::Tool));
        assert_eq!(
            m.capabilities,
            [Capability::Shell, Capability::Files].into_iter().collect()
        );
    }

    #[test]
    fn log_may_be_listed_and_needs_no_grant() {
        let m = Manifest::parse(
            "name = \"x\"\nversion = \"1.0.0\"\ncapabilities = [\"log\", \"shell\"]\n",
        )
        .unwrap();
        assert_eq!(m.capabilities, [Capability::Shell].into_iter().collect());
    }

    #[test]
    fn unknown_capability_is_named() {
        let err =
            Manifest::parse("name = \"x\"\nversion = \"1.0.0\"\ncapabilities = [\"network\"]\n")
                .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`network`") && msg.contains("computer, shell, files, llm"),
            "{msg}"
        );
    }

    #[test]
    fn bad_names_and_fields_are_rejected() {
        assert!(Manifest::parse("name = \"../etc\"\nversion = \"1\"\n").is_err());
        assert!(Manifest::parse("name = \"ok\"\nversion = \"1.0.0\"\nsurprise = 1\n").is_err());
        assert!(Manifest::parse("name = \"ok\"\nversion = \"\"\n").is_err());
    }

    #[test]
    fn versions_are_semver_and_never_paths() {
        for bad in [
            "..",
            "1",
            "1.0",
            "../1.0.0",
            "1.0.0/..",
            "/etc",
            "1.0.0\u{0}",
            "１.０.０",
            "1.0.0-\u{202e}",
            "1.0.0 ",
            "",
        ] {
            assert!(validate_version(bad).is_err(), "{bad:?} passed");
        }
        for good in ["0.1.0", "1.2.3-beta.1", "2.0.0+build.5"] {
            validate_version(good).unwrap();
        }
        for bad in ["..", "a/b", "/abs", "ok\u{0}", "é", "A"] {
            assert!(validate_name(bad).is_err(), "{bad:?} passed");
        }
    }
}
