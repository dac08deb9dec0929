//! Plugin runtime benchmark: `cargo bench -p agenthost-tests --bench plugin_runtime`.
//!
//! Measures, in one run on this machine:
//! * tool call round trip (fresh store, instantiate, invoke, drop) for a
//!   Rust, a Python and a JavaScript component, against the 50 µs target;
//! * first load (compile) vs cached load (a new runtime on the same cache);
//! * hot swap: installing a new version until calls reach it, and switching
//!   a session's policy plus its next step, against the 50 ms target.
//!
//! Writes `bench-results/plugin-runtime.json` and prints a Markdown table.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agenthost::capabilities::CallContext;
use agenthost::plugins::bindings::current::llm::{Message, MessagePart, Role};
use agenthost::plugins::bindings::current::policy::Context;
use agenthost::plugins::bindings::current::types::ToolUse;
use agenthost::plugins::{Limits, PolicyInstance, Registry, Runtime, RuntimeConfig};
use agenthost_tests::{component, requested_grants, FakeSandbox};
use serde_json::json;

struct Row {
    name: String,
    samples: usize,
    p50: Duration,
    p90: Duration,
    target: &'static str,
}

fn stats(name: &str, mut samples: Vec<Duration>, target: &'static str) -> Row {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Row {
        name: name.into(),
        samples: samples.len(),
        p50: at(0.5),
        p90: at(0.9),
        target,
    }
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

async fn call_round_trip(
    rt: &Runtime,
    plugin: &str,
    tool: &str,
    input: serde_json::Value,
    n: usize,
    ctx: &CallContext,
) -> Vec<Duration> {
    let (bytes, manifest) = component(plugin);
    let loaded = rt.load(bytes, Some(manifest), plugin).await.unwrap();
    let grants = requested_grants(&loaded);
    let input = input.to_string();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let call = ToolUse {
            id: "b".into(),
            name: tool.into(),
            input: input.clone(),
        };
        let started = Instant::now();
        let out = rt
            .invoke_tool(&loaded, grants.clone(), ctx.clone(), call)
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(out.is_ok(), "{plugin} call failed");
        if i >= n / 10 {
            samples.push(elapsed); // the first tenth warms up
        }
    }
    samples
}

fn fresh_runtime(cache: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        limits: Limits::default(),
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

async fn load_times(name: &str) -> (Duration, Duration) {
    let cache = tempfile::tempdir().unwrap();
    let (bytes, manifest) = component(name);
    let started = Instant::now();
    fresh_runtime(cache.path())
        .load(bytes.clone(), Some(manifest.clone()), name)
        .await
        .unwrap();
    let first = started.elapsed();
    let rt = fresh_runtime(cache.path()); // what a restarted host has
    let started = Instant::now();
    rt.load(bytes, Some(manifest), name).await.unwrap();
    (first, started.elapsed())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut rows = Vec::new();
    let cache = tempfile::tempdir().unwrap();
    let rt = Arc::new(fresh_runtime(cache.path()));
    let sandbox = FakeSandbox::new();
    // Only the Rust rows (the hot path), for interleaved A/B runs against
    // a build whose Python and JavaScript examples are not at hand; the
    // results file is then left as it was.
    let rust_only = std::env::var_os("AGENTHOST_BENCH_RUST_ONLY").is_some();

    let samples = call_round_trip(
        &rt,
        "misbehaving-tool",
        "echo",
        json!({"x": 1}),
        5000,
        &sandbox.ctx,
    )
    .await;
    rows.push(stats("tool call, Rust (echo)", samples, "p50 <= 50 µs"));
    let samples = call_round_trip(
        &rt,
        "bash",
        "bash",
        json!({"command": "true"}),
        5000,
        &sandbox.ctx,
    )
    .await;
    rows.push(stats(
        "tool call, Rust (bash tool, in-memory shell)",
        samples,
        "p50 <= 50 µs",
    ));
    if !rust_only {
        let samples = call_round_trip(
            &rt,
            "text-stats",
            "text_stats",
            json!({"text": "a b a"}),
            300,
            &sandbox.ctx,
        )
        .await;
        rows.push(stats("tool call, Python (componentize-py)", samples, "-"));
        let samples = call_round_trip(
            &rt,
            "convert-case",
            "convert_case",
            json!({"text": "a b", "to": "snake"}),
            300,
            &sandbox.ctx,
        )
        .await;
        rows.push(stats(
            "tool call, JavaScript (componentize-js)",
            samples,
            "-",
        ));

        for name in ["computer", "text-stats", "convert-case"] {
            let (first, cached) = load_times(name).await;
            rows.push(stats(
                &format!("load {name}: first (compile)"),
                vec![first],
                "-",
            ));
            rows.push(stats(
                &format!("load {name}: cached (new runtime)"),
                vec![cached],
                "-",
            ));
        }
    }

    // Hot swap of an installed tool: install a new version (its compiled
    // artifact is cached, as for any re-release of the same code) and time
    // until a call runs on it.
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(rt.clone(), dir.path()).await.unwrap();
    let (bytes, manifest) = component("misbehaving-tool");
    let mut swaps = Vec::new();
    for i in 0..30 {
        let mut m = manifest.clone();
        m.version = format!("1.0.{i}");
        let started = Instant::now();
        registry
            .install(bytes.clone(), Some(m), "misbehaving-tool", &BTreeSet::new())
            .await
            .unwrap();
        let call = ToolUse {
            id: "b".into(),
            name: "echo".into(),
            input: "{}".into(),
        };
        registry
            .invoke_tool(call, CallContext::default())
            .await
            .unwrap()
            .unwrap();
        swaps.push(started.elapsed());
        assert_eq!(
            registry.get("misbehaving-tool").unwrap().manifest.version,
            format!("1.0.{i}")
        );
    }
    rows.push(stats(
        "hot swap: install new tool version + first call on it",
        swaps,
        "<= 50 ms",
    ));

    // Policy hot swap in a session: swap, then the next step on the new policy.
    let (bytes, manifest) = component("scripted-policy");
    let a = Arc::new(
        rt.load(bytes.clone(), Some(manifest.clone()), "p")
            .await
            .unwrap(),
    );
    let mut m2 = manifest;
    m2.version = "0.2.0".into();
    let b = Arc::new(rt.load(bytes, Some(m2), "p").await.unwrap());
    let mut instance = PolicyInstance::new(
        rt.clone(),
        a.clone(),
        requested_grants(&a),
        CallContext::default(),
    )
    .unwrap();
    let context = || Context {
        session_id: "s".into(),
        step: 0,
        history: vec![Message {
            role: Role::User,
            parts: vec![MessagePart::Text("take a screenshot".into())],
        }],
        tools: Vec::new(),
        state: None,
        config: "{}".into(),
    };
    let (mut steady, mut swapped) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let started = Instant::now();
        instance.step(context()).await.unwrap().unwrap();
        steady.push(started.elapsed());
        let next = if i % 2 == 0 { b.clone() } else { a.clone() };
        let started = Instant::now();
        instance
            .swap(next.clone(), requested_grants(&next))
            .unwrap();
        instance.step(context()).await.unwrap().unwrap();
        swapped.push(started.elapsed());
    }
    rows.push(stats("policy step, same instance (baseline)", steady, "-"));
    rows.push(stats(
        "policy hot swap + first step on the new policy",
        swapped,
        "<= 50 ms",
    ));

    println!("| measurement | samples | p50 | p90 | target |");
    println!("|---|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.name,
            r.samples,
            fmt(r.p50),
            fmt(r.p90),
            r.target
        );
    }
    let json = json!({
        "benchmark": "plugin_runtime",
        "machine": format!("{} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        "results": rows.iter().map(|r| json!({
            "name": r.name, "samples": r.samples,
            "p50_us": r.p50.as_secs_f64() * 1e6, "p90_us": r.p90.as_secs_f64() * 1e6, "target": r.target,
        })).collect::<Vec<_>>(),
    });
    if rust_only {
        return;
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("plugin-runtime.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    println!("\nwritten to bench-results/plugin-runtime.json");
}
