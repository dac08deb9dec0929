//! Our own RFB (VNC) client, a subset of RFC 6143.
//!
//! One persistent connection per sandbox. The client keeps a mirror of the
//! remote framebuffer current by always having an incremental update
//! request outstanding, so a screenshot encodes memory instead of asking
//! the server, and "the screen has settled" is simply "no update arrived
//! for a while". The crates on crates.io expose no end-of-update signal,
//! which is why this exists.

mod auth;
pub mod bridge;
mod client;
mod encode;
mod framebuffer;
mod keys;

pub use client::{
    connect_authenticated, read_server_message, Event, RfbClient, RfbError, ServerInit,
    ServerMessage, UpdateState,
};
pub use encode::{encode_png, scale_region, Rgb};
pub use framebuffer::Framebuffer;
pub use keys::{keysym_for_char, parse_combo, KeyError};

/// Pointer button bits in a PointerEvent mask.
pub mod buttons {
    pub const LEFT: u8 = 1;
    pub const MIDDLE: u8 = 2;
    pub const RIGHT: u8 = 4;
    pub const WHEEL_UP: u8 = 8;
    pub const WHEEL_DOWN: u8 = 16;
    pub const WHEEL_LEFT: u8 = 32;
    pub const WHEEL_RIGHT: u8 = 64;
}
