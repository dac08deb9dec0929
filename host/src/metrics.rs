//! The host's metrics in the Prometheus text format (`GET /metrics`).
//!
//! Counters and histograms are kept here, updated where things happen
//! (tool calls, model calls, appends, leases, sockets); gauges that other
//! parts already know (sessions by status, the sandbox pool) are read when
//! scraped. Label values come from a small fixed set (providers, lease
//! changes) or from installed tool names, which the operator controls; a
//! cap on distinct label sets keeps a misbehaving source from growing the
//! page without bound.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Distinct label sets one metric keeps; later ones are counted under
/// `other`.
const MAX_SERIES: usize = 256;

/// Latency buckets in seconds, from a fast bash call to a slow model turn.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// A labelled family: label values (in the family's label order) to a
/// value.
struct Family<T> {
    series: Mutex<BTreeMap<Vec<String>, T>>,
}

impl<T: Default> Default for Family<T> {
    fn default() -> Self {
        Self {
            series: Mutex::default(),
        }
    }
}

impl<T: Default> Family<T> {
    fn with(&self, labels: &[&str], f: impl FnOnce(&mut T)) {
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        if !map.contains_key(&key) && map.len() >= MAX_SERIES {
            let other = vec!["other".to_string(); labels.len()];
            f(map.entry(other).or_default());
            return;
        }
        f(map.entry(key).or_default());
    }
}

/// Every metric the host keeps itself.
#[derive(Default)]
pub struct Metrics {
    tool_calls: Family<Histogram>,
    llm_calls: Family<Histogram>,
    llm_tokens: Family<u64>,
    llm_errors: Family<u64>,
    appends: Family<Histogram>,
    lease_changes: Family<u64>,
    websocket_clients: AtomicI64,
    forwarded: AtomicU64,
}

/// Gauges read at scrape time from the parts that know them.
pub struct Snapshot {
    /// Stored sessions by status.
    pub sessions: Vec<(String, i64)>,
    /// Sandboxes: warm (ready), claimed (by sessions), booting.
    pub sandboxes: Option<(usize, usize, usize)>,
}

impl Metrics {
    /// A tool call's latency, by tool.
    pub fn tool_call(&self, tool: &str, took: Duration, failed: bool) {
        let outcome = if failed { "error" } else { "ok" };
        self.tool_calls
            .with(&[tool, outcome], |h| h.observe(took.as_secs_f64()));
    }

    /// A model call's latency and tokens, by provider.
    pub fn llm_call(&self, provider: &str, took: Duration, input: u64, output: u64) {
        self.llm_calls
            .with(&[provider], |h| h.observe(took.as_secs_f64()));
        self.llm_tokens.with(&[provider, "input"], |n| *n += input);
        self.llm_tokens
            .with(&[provider, "output"], |n| *n += output);
    }

    pub fn llm_error(&self, provider: &str) {
        self.llm_errors.with(&[provider], |n| *n += 1);
    }

    /// An event append's latency, store round trip included.
    pub fn append(&self, took: Duration) {
        self.appends.with(&[], |h| h.observe(took.as_secs_f64()));
    }

    /// A lease taken, adopted, released or lost (fleet hosts).
    pub fn lease_change(&self, change: &'static str) {
        self.lease_changes.with(&[change], |n| *n += 1);
    }

    /// A request replayed on the host that runs its session.
    pub fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a session WebSocket while the guard lives.
    pub fn websocket(self: &std::sync::Arc<Self>) -> SocketGuard {
        self.websocket_clients.fetch_add(1, Ordering::Relaxed);
        SocketGuard(self.clone())
    }

    /// The exposition page.
    pub fn render(&self, host: &str, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(8 << 10);
        let host = escape(host);
        header(
            &mut out,
            "agenthost_host_info",
            "gauge",
            "This host's id in the fleet.",
        );
        let _ = writeln!(out, "agenthost_host_info{{host=\"{host}\"}} 1");
        header(
            &mut out,
            "agenthost_sessions",
            "gauge",
            "Stored sessions by status.",
        );
        for (status, n) in &snapshot.sessions {
            let _ = writeln!(
                out,
                "agenthost_sessions{{status=\"{}\"}} {n}",
                escape(status)
            );
        }
        if let Some((warm, claimed, booting)) = snapshot.sandboxes {
            header(
                &mut out,
                "agenthost_sandboxes",
                "gauge",
                "This host's sandboxes by state.",
            );
            for (state, n) in [("warm", warm), ("claimed", claimed), ("booting", booting)] {
                let _ = writeln!(out, "agenthost_sandboxes{{state=\"{state}\"}} {n}");
            }
        }
        unlabelled(
            &mut out,
            ("agenthost_websocket_clients", "gauge"),
            "Open session WebSockets.",
            self.websocket_clients.load(Ordering::Relaxed),
        );
        unlabelled(
            &mut out,
            ("agenthost_forwarded_requests_total", "counter"),
            "Requests replayed on the host running their session.",
            self.forwarded.load(Ordering::Relaxed),
        );
        histograms(
            &mut out,
            "agenthost_tool_call_seconds",
            "Tool call latency by tool and outcome.",
            &["tool", "outcome"],
            &self.tool_calls,
        );
        histograms(
            &mut out,
            "agenthost_llm_request_seconds",
            "Model call latency by provider.",
            &["provider"],
            &self.llm_calls,
        );
        counters(
            &mut out,
            "agenthost_llm_tokens_total",
            "Model tokens by provider and direction.",
            &["provider", "direction"],
            &self.llm_tokens,
        );
        counters(
            &mut out,
            "agenthost_llm_errors_total",
            "Failed model calls by provider.",
            &["provider"],
            &self.llm_errors,
        );
        histograms(
            &mut out,
            "agenthost_event_append_seconds",
            "Event append latency (durable).",
            &[],
            &self.appends,
        );
        counters(
            &mut out,
            "agenthost_lease_changes_total",
            "Session leases taken, adopted, released or lost.",
            &["change"],
            &self.lease_changes,
        );
        out
    }
}

/// Decrements the WebSocket gauge when the socket ends.
pub struct SocketGuard(std::sync::Arc<Metrics>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.websocket_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric with one value and no labels.
fn unlabelled(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    value: impl std::fmt::Display,
) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn counters(out: &mut String, name: &str, help: &str, names: &[&str], family: &Family<u64>) {
    header(out, name, "counter", help);
    let map = family.series.lock().unwrap_or_else(|p| p.into_inner());
    for (values, n) in map.iter() {
        let _ = writeln!(out, "{name}{} {n}", labels(names, values, None));
    }
}

fn histograms(
    out: &mut String,
    name: &str,
    help: &str,
    names: &[&str],
    family: &Family<Histogram>,
) {
    header(out, name, "histogram", help);
    let map = family.series.lock().unwrap_or_else(|p| p.into_inner());
    for (values, h) in map.iter() {
        for (le, n) in BUCKETS.iter().zip(h.counts) {
            let le = le.to_string();
            let _ = writeln!(
                out,
                "{name}_bucket{} {n}",
                labels(names, values, Some(("le", &le)))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {}",
            labels(names, values, Some(("le", "+Inf"))),
            h.count
        );
        let _ = writeln!(out, "{name}_sum{} {}", labels(names, values, None), h.sum);
        let _ = writeln!(
            out,
            "{name}_count{} {}",
            labels(names, values, None),
            h.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Snapshot {
        Snapshot {
            sessions: vec![("idle".into(), 2)],
            sandboxes: Some((1, 2, 0)),
        }
    }

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.tool_call("bash", Duration::from_millis(3), false);
        m.tool_call("bash", Duration::from_millis(40), false);
        m.tool_call("we\"ird", Duration::from_secs(60), true);
        let page = m.render("host-a", &empty());
        assert!(
            page.contains(
                "agenthost_tool_call_seconds_bucket{tool=\"bash\",outcome=\"ok\",le=\"0.005\"} 1"
            ),
            "{page}"
        );
        assert!(page.contains(
            "agenthost_tool_call_seconds_bucket{tool=\"bash\",outcome=\"ok\",le=\"0.05\"} 2"
        ));
        assert!(page.contains(
            "agenthost_tool_call_seconds_bucket{tool=\"bash\",outcome=\"ok\",le=\"+Inf\"} 2"
        ));
        assert!(page
            .contains("agenthost_tool_call_seconds_count{tool=\"we\\\"ird\",outcome=\"error\"} 1"));
        assert!(page.contains("agenthost_sandboxes{state=\"claimed\"} 2"));
        assert!(page.contains("agenthost_sessions{status=\"idle\"} 2"));
    }

    #[test]
    fn series_are_capped() {
        let m = Metrics::default();
        for i in 0..(MAX_SERIES + 50) {
            m.tool_call(&format!("tool{i}"), Duration::from_millis(1), false);
        }
        let page = m.render("h", &empty());
        let series = page
            .lines()
            .filter(|l| l.starts_with("agenthost_tool_call_seconds_count"))
            .count();
        assert_eq!(series, MAX_SERIES + 1, "the cap plus `other`");
    }

    #[test]
    fn sockets_are_counted_while_open() {
        let m = std::sync::Arc::new(Metrics::default());
        let a = m.websocket();
        let _b = m.websocket();
        drop(a);
        assert!(m
            .render("h", &empty())
            .contains("agenthost_websocket_clients 1"));
    }
}
