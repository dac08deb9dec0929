//! Host bindings generated from `wit/`.
//!
//! One module per released WIT version. Today there is one; when 0.2.0
//! ships, 0.1.0's bindings stay here and thin shims map its calls onto the
//! newest host implementation, so components built against 0.1.0 keep
//! working (the approach Zed's extension host takes).

pub mod v0_1_0 {
    /// The version string components carry in their import/export names.
    pub const VERSION: &str = "0.1.0";

    mod tool_world {
        wasmtime::component::bindgen!({
            world: "tool-plugin",
            path: "../wit",
            imports: { default: async },
            exports: { default: async },
        });
    }

    mod policy_world {
        wasmtime::component::bindgen!({
            world: "policy-plugin",
            path: "../wit",
            imports: { default: async },
            exports: { default: async },
            with: {
                "agenthost:plugin/types": super::tool_world::agenthost::plugin::types,
                "agenthost:plugin/llm": super::tool_world::agenthost::plugin::llm,
                "agenthost:plugin/log": super::tool_world::agenthost::plugin::log,
            },
        });
    }

    pub use policy_world::exports::agenthost::plugin::policy;
    pub use policy_world::{PolicyPlugin, PolicyPluginPre};
    pub use tool_world::agenthost::plugin::{computer, files, llm, log, shell, types};
    pub use tool_world::exports::agenthost::plugin::tool;
    pub use tool_world::{ToolPlugin, ToolPluginPre};
}

pub use v0_1_0 as current;
