//! Tells what a `.wasm` file is before anything runs it: a component at
//! all, which world it implements, against which WIT version, and which of
//! the host's interfaces it imports.

use std::collections::BTreeSet;

use serde::Serialize;
use wasmtime::component::{types::ComponentItem, Component};
use wasmtime::Engine;

use super::bindings::versions::{self, WitVersion};
use super::error::LoadError;
use super::manifest::{Capability, PluginKind};

const PACKAGE: &str = "agenthost:plugin";

/// Header check before handing bytes to the compiler, so the common
/// mistakes get a precise message rather than a parser error.
pub fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 {
        return Err(LoadError::NotWasm(format!(
            "{} bytes is too short to be WebAssembly",
            bytes.len()
        )));
    }
    if &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm(
            "it does not start with the \\0asm magic number".into(),
        ));
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err(LoadError::CoreModule),
        [_, _, 1, 0] => Ok(()),
        _ => Err(LoadError::NotWasm(
            "unknown WebAssembly binary version".into(),
        )),
    }
}

/// What the component's type says about it.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub kind: PluginKind,
    /// The version string the component carries, such as "0.1.0".
    pub wit_version: String,
    /// The bindings that serve it.
    #[serde(skip)]
    pub wit: WitVersion,
    /// Host capabilities the component imports (whether or not granted).
    pub imported_capabilities: BTreeSet<Capability>,
    /// Every import, for diagnostics.
    pub imports: Vec<String>,
}

/// Splits "agenthost:plugin/tool@0.1.0" into ("tool", "0.1.0").
fn our_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

pub fn shape(
    engine: &Engine,
    component: &Component,
    allow_unreleased: bool,
) -> Result<Shape, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    // Every one of our interfaces the component names, with its version:
    // they must all be served by the same bindings.
    let mut versions: BTreeSet<&str> = BTreeSet::new();
    let mut found = None;
    for name in &exports {
        if let Some((iface, version)) = our_interface(name) {
            let kind = match iface {
                "tool" => PluginKind::Tool,
                "policy" => PluginKind::Policy,
                _ => continue,
            };
            versions.insert(version);
            found = Some((kind, version.to_string()));
        }
    }
    let (kind, wit_version) = found.ok_or_else(|| LoadError::UnknownWorld {
        found: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
        supported: versions::supported(),
    })?;

    let mut imported_capabilities = BTreeSet::new();
    let mut imports = Vec::new();
    for (name, import) in ty.imports(engine) {
        // Only our interfaces and WASI (linked with nothing granted) exist
        // for a plugin; anything else is refused before instantiation.
        let known = name.starts_with("wasi:") || name.starts_with(PACKAGE);
        if !known || !matches!(import.ty, ComponentItem::ComponentInstance(_)) {
            return Err(LoadError::UnsatisfiedImport(name.to_string()));
        }
        if let Some((iface, version)) = our_interface(name) {
            versions.insert(version);
            if let Some(cap) = Capability::for_interface(iface) {
                imported_capabilities.insert(cap);
            }
        }
        imports.push(name.to_string());
    }
    let mut served = BTreeSet::new();
    for version in &versions {
        served.insert(versions::resolve(version, allow_unreleased)?);
    }
    if served.len() > 1 {
        return Err(LoadError::MixedVersions(
            versions.into_iter().collect::<Vec<_>>().join(", "),
        ));
    }
    // Non-empty: the tool or policy export carries a version.
    let Some(wit) = served.into_iter().next() else {
        return Err(LoadError::UnsupportedVersion {
            found: wit_version,
            supported: versions::supported(),
        });
    };
    Ok(Shape {
        kind,
        wit_version,
        wit,
        imported_capabilities,
        imports,
    })
}
