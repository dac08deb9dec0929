//! Host bindings generated from `wit/`, one module per released WIT
//! version (the approach Zed's extension host takes).
//!
//! The newest version is [`current`]: the rest of the host speaks only its
//! types. An older version's module generates bindings for the interfaces
//! that changed since and reuses the newest module's for those that did not
//! (bindgen's `with`), so one implementation serves both; for the changed
//! ones it holds thin shims that convert onto the newest types and forward.
//! [`versions`] decides which module a component's WIT version belongs to.

pub mod v0_1_0;
pub mod v0_2_0;
pub mod versions;

pub use v0_2_0 as current;
