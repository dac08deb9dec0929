//! Plugin log lines in a running server: each goes to the server log (as
//! before) and to whoever follows that plugin's lines live, which is how
//! `agenthost plugin dev` shows an author what their plugin says while
//! sessions use it. Nothing is kept: a follower sees lines from the moment
//! it connects, and one that falls behind loses the oldest and is told.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::capabilities::{LogSink, TracingLog};
use crate::plugins::bindings::current::log::Level;

/// Lines buffered for followers that read slower than plugins write.
const BACKLOG: usize = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub plugin: String,
    /// trace, debug, info, warn, error; `output` for what a call wrote to
    /// stdout and stderr.
    pub level: &'static str,
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
}

pub struct PluginLogs {
    lines: broadcast::Sender<LogLine>,
}

impl Default for PluginLogs {
    fn default() -> Self {
        Self {
            lines: broadcast::channel(BACKLOG).0,
        }
    }
}

impl PluginLogs {
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.lines.subscribe()
    }

    fn publish(&self, plugin: &str, level: &'static str, message: &str) {
        // Nobody following is the common case: build nothing then.
        if self.lines.receiver_count() == 0 {
            return;
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let _ = self.lines.send(LogLine {
            plugin: plugin.to_string(),
            level,
            message: message.to_string(),
            ts,
        });
    }
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl LogSink for PluginLogs {
    fn log(&self, plugin: &str, level: Level, message: &str) {
        TracingLog.log(plugin, level, message);
        self.publish(plugin, level_name(level), message);
    }

    fn output(&self, plugin: &str, text: &str) {
        TracingLog.output(plugin, text);
        self.publish(plugin, "output", text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_get_lines_from_when_they_subscribe_and_hear_when_they_lag() {
        let logs = PluginLogs::default();
        logs.log("a", Level::Info, "before anyone follows");
        let mut rx = logs.subscribe();
        logs.log("a", Level::Warn, "hello");
        logs.output("b", "printed");
        let line = rx.try_recv().unwrap();
        assert_eq!(
            (line.plugin.as_str(), line.level, line.message.as_str()),
            ("a", "warn", "hello")
        );
        assert_eq!(rx.try_recv().unwrap().level, "output");
        assert!(rx.try_recv().is_err());
        for i in 0..BACKLOG + 5 {
            logs.log("a", Level::Debug, &i.to_string());
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
    }
}
