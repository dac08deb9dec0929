//! `agenthost:plugin@0.2.0` (`wit/v0.2.0/`), the newest version: the types
//! the rest of the host uses.

/// The version string components carry in their import/export names.
pub const VERSION: &str = "0.2.0";

mod tool_world {
    wasmtime::component::bindgen!({
        world: "tool-plugin",
        path: "../wit/v0.2.0",
        imports: { default: async | tracing },
        exports: { default: async },
    });
}

mod policy_world {
    wasmtime::component::bindgen!({
        world: "policy-plugin",
        path: "../wit/v0.2.0",
        imports: { default: async | tracing },
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
