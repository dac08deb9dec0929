//! What `plugin check` tells an author beyond "it loads": mistakes that
//! load fine and fail later, or quietly do something else than meant.

use serde::Serialize;

use super::{Capability, Describe, LoadedPlugin, PluginKind};

/// One thing worth the author's attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// `warning`: likely a mistake; `note`: worth knowing.
    pub level: &'static str,
    pub message: String,
}

fn warning(message: String) -> Advice {
    Advice {
        level: "warning",
        message,
    }
}

fn note(message: String) -> Advice {
    Advice {
        level: "note",
        message,
    }
}

/// Advice on a loaded plugin; `had_manifest` says whether a manifest came
/// with it (without one, capabilities are derived from the imports).
pub fn advise(plugin: &LoadedPlugin, had_manifest: bool) -> Vec<Advice> {
    let mut out = Vec::new();
    let imported = &plugin.shape.imported_capabilities;
    let asked = &plugin.manifest.capabilities;
    // componentize-py and componentize-js import every interface of the
    // world whether the code uses it or not: for them an import says
    // nothing about use.
    let whole_world = plugin.kind() == PluginKind::Tool && imported.len() == Capability::ALL.len();
    // Every policy imports `llm`: the conversation types live there.
    let policy_types = plugin.kind() == PluginKind::Policy;
    if !had_manifest {
        out.push(note(
            "no manifest beside the component: its capabilities are taken from its imports; \
             ship a `<name>.toml` to say which it needs"
                .into(),
        ));
    } else if whole_world {
        out.push(note(format!(
            "the component imports every capability of the tool world, as componentize-py and \
             componentize-js do; only what the manifest asks for ({}) can be granted, the rest \
             is denied",
            list(asked.iter())
        )));
    } else {
        for cap in imported
            .difference(asked)
            .filter(|c| !(policy_types && **c == Capability::Llm))
        {
            out.push(warning(format!(
                "the component imports `{cap}` but the manifest does not ask for it: every call \
                 to it will be denied; add \"{cap}\" to `capabilities`"
            )));
        }
    }
    for cap in asked.difference(imported) {
        out.push(warning(format!(
            "the manifest asks for `{cap}` but the component never imports it; drop it from \
             `capabilities` (an operator would be asked to grant what is never used)"
        )));
    }
    if let Describe::Policy(info) = &plugin.describe {
        if info.name != plugin.manifest.name {
            out.push(note(format!(
                "the manifest names this policy `{}`, the component calls itself `{}`; sessions, \
                 the API and the page use the manifest's name",
                plugin.manifest.name, info.name
            )));
        }
    }
    out
}

fn list<'a>(caps: impl Iterator<Item = &'a Capability>) -> String {
    let names: Vec<String> = caps.map(|c| format!("`{c}`")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
