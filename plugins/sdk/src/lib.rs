//! The Agent Host plugin SDK for Rust.
//!
//! A plugin crate generates the bindings of its world with one macro,
//! [`tool_plugin!`] or [`policy_plugin!`], which reuses the host interfaces
//! generated here (so the helpers below speak the plugin's own types), and
//! then implements the exported `Guest` trait:
//!
//! ```ignore
//! agenthost_sdk::tool_plugin!();
//!
//! use agenthost_sdk::types::{ToolSpec, ToolUse};
//! use agenthost_sdk::{input, spec, text};
//! use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Echo { text: String }
//!
//! struct Plugin;
//! impl Guest for Plugin {
//!     fn describe() -> Vec<ToolSpec> { vec![spec::<Echo>("echo", "Echoes `text`.")] }
//!     fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
//!         let args: Echo = input(&call)?;          // InputError -> ToolError::InvalidInput
//!         Ok(ToolOutput { content: vec![text(args.text)] })
//!     }
//! }
//! export!(Plugin);
//! ```
//!
//! Host calls return `Result<_, HostError>`; `?` turns a `HostError` into
//! `ToolError::Failed` (tools) or `PolicyError::Host` (policies).

pub mod history;

mod bindings {
    // Every host interface, imported, so plugin crates can reuse these
    // types through `with` (see the macros). A component only imports what
    // it calls: unused imports are dropped when the component is made.
    wit_bindgen::generate!({
        inline: "
            package agenthost:sdk;
            world host {
                import agenthost:plugin/types@0.2.0;
                import agenthost:plugin/computer@0.2.0;
                import agenthost:plugin/shell@0.2.0;
                import agenthost:plugin/files@0.2.0;
                import agenthost:plugin/llm@0.2.0;
                import agenthost:plugin/log@0.2.0;
            }
        ",
        path: "../../wit/v0.2.0",
        generate_all,
        additional_derives: [PartialEq],
    });
}

pub use bindings::agenthost::plugin::{computer, files, llm, log, shell, types};
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use types::{ContentPart, HostError, ToolSpec, ToolUse};

/// A tool call's input that does not parse as the tool's input type. `?`
/// in `invoke` makes it `ToolError::InvalidInput`, which the model sees
/// and can correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Parse a call's input as `T`. The error names the tool and the field
/// serde stopped at.
pub fn input<T: DeserializeOwned>(call: &ToolUse) -> Result<T, InputError> {
    serde_json::from_str(&call.input)
        .map_err(|e| InputError(format!("input is not valid for `{}`: {e}", call.name)))
}

/// The JSON Schema of `T` as text, for a `tool-spec`. Derive it with
/// `#[derive(schemars::JsonSchema)]`; doc comments on fields become their
/// descriptions, `#[serde(deny_unknown_fields)]` becomes
/// `additionalProperties: false`.
pub fn schema<T: JsonSchema>() -> String {
    let mut schema = schemars::schema_for!(T);
    // The dialect line and the Rust type's name mean nothing to a model.
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
    }
    schema.to_value().to_string()
}

/// A `tool-spec` whose input schema is derived from `T`.
pub fn spec<T: JsonSchema>(name: &str, description: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema: schema::<T>(),
    }
}

/// A text content part.
pub fn text(s: impl Into<String>) -> ContentPart {
    ContentPart::Text(s.into())
}

impl HostError {
    /// What the host said, without the kind.
    pub fn message(&self) -> &str {
        match self {
            HostError::Denied(m)
            | HostError::NoSandbox(m)
            | HostError::Invalid(m)
            | HostError::Timeout(m)
            | HostError::Failed(m) => m,
        }
    }
}

/// Generates a tool plugin's bindings (world `tool-plugin`) from the WIT
/// in `wit/` (or the directory given), reusing this crate's host
/// interfaces, and the conversions `?` needs in `invoke`.
#[macro_export]
macro_rules! tool_plugin {
    () => {
        $crate::tool_plugin!("wit");
    };
    ($wit:literal) => {
        $crate::__wit_bindgen::generate!({
            world: "tool-plugin",
            path: $wit,
            runtime_path: "::agenthost_sdk::__wit_bindgen::rt",
            with: {
                "agenthost:plugin/types@0.2.0": ::agenthost_sdk::types,
                "agenthost:plugin/computer@0.2.0": ::agenthost_sdk::computer,
                "agenthost:plugin/shell@0.2.0": ::agenthost_sdk::shell,
                "agenthost:plugin/files@0.2.0": ::agenthost_sdk::files,
                "agenthost:plugin/llm@0.2.0": ::agenthost_sdk::llm,
                "agenthost:plugin/log@0.2.0": ::agenthost_sdk::log,
            },
        });

        impl ::core::convert::From<::agenthost_sdk::types::HostError>
            for exports::agenthost::plugin::tool::ToolError
        {
            fn from(e: ::agenthost_sdk::types::HostError) -> Self {
                Self::Failed(e.message().to_string())
            }
        }

        impl ::core::convert::From<::agenthost_sdk::InputError>
            for exports::agenthost::plugin::tool::ToolError
        {
            fn from(e: ::agenthost_sdk::InputError) -> Self {
                Self::InvalidInput(e.0)
            }
        }
    };
}

/// Generates a policy plugin's bindings (world `policy-plugin`) from the
/// WIT in `wit/` (or the directory given), reusing this crate's host
/// interfaces, and `From<HostError> for PolicyError` so `?` passes a failed
/// host call on as the host gave it.
#[macro_export]
macro_rules! policy_plugin {
    () => {
        $crate::policy_plugin!("wit");
    };
    ($wit:literal) => {
        $crate::__wit_bindgen::generate!({
            world: "policy-plugin",
            path: $wit,
            runtime_path: "::agenthost_sdk::__wit_bindgen::rt",
            with: {
                "agenthost:plugin/types@0.2.0": ::agenthost_sdk::types,
                "agenthost:plugin/llm@0.2.0": ::agenthost_sdk::llm,
                "agenthost:plugin/log@0.2.0": ::agenthost_sdk::log,
            },
        });

        impl ::core::convert::From<::agenthost_sdk::types::HostError>
            for exports::agenthost::plugin::policy::PolicyError
        {
            fn from(e: ::agenthost_sdk::types::HostError) -> Self {
                Self::Host(e)
            }
        }
    };
}
