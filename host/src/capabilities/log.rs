//! `agenthost:plugin/log` and the shared `types` interface. Logging needs
//! no grant, but is bounded so a chatty plugin cannot flood the session.

use super::HostState;
use crate::plugins::bindings::current::log::{Host, Level};
use crate::plugins::bindings::current::types;

const MAX_LINE_BYTES: usize = 4 << 10;

impl Host for HostState {
    async fn log(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        self.ctx.log.log(self.plugin(), level, &message);
    }
}

impl types::Host for HostState {}
