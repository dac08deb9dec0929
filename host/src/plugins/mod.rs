//! The plugin runtime.
//!
//! * [`Runtime`] owns the one engine, the linker (WASI with nothing granted
//!   plus our interfaces), the compiled cache and the limits. It loads a
//!   component into a [`LoadedPlugin`] (validated, compiled once, with an
//!   `InstancePre`) and runs tool calls (a fresh store each) and policy steps
//!   (one store per session, see [`PolicyInstance`]).
//! * [`Registry`] is what is installed: versions on disk, grants, and the
//!   active version of each plugin behind an atomic swap.

mod advice;
pub mod bindings;
mod cache;
mod dispatch;
mod engine;
mod error;
mod fs;
mod grants;
mod inspect;
pub(crate) mod limits;
mod loaded;
mod logs;
mod manifest;
mod policy;
mod registry;
mod runtime;
mod schema;

pub use advice::{advise, Advice};
pub use cache::{compiled_cache_dir, CacheOutcome};
pub use error::{InvokeError, LoadError, PluginError, RegistryError};
pub use grants::{EffectiveGrants, GrantTable};
pub use inspect::{check_header, Shape};
pub use limits::Limits;
pub use loaded::{Describe, LoadedPlugin};
pub use logs::{level_name, LogLine, PluginLogs};
pub use manifest::{parse_capability_list, Capability, Manifest, PluginKind};
pub use policy::PolicyInstance;
pub use registry::{InstalledPlugin, Registry};
pub use runtime::{Runtime, RuntimeConfig, ToolResult};
pub use schema::InputSchema;
