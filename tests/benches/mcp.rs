//! What MCP adds to a tool call: `cargo bench -p agenthost-tests --bench mcp`.
//!
//! One host (in this process, SQLite, a real sandbox) and one session. The
//! same bash `true` call is made, interleaved round by round:
//!
//! * through `/mcp` (HTTP, JSON-RPC, rmcp, the token check, the session
//!   actor, the call and its result stored, the answer as server-sent
//!   events), with the minimal client in `tests/support/mcp.rs`;
//! * directly: the session's own tool-call path (the actor stores the call,
//!   the tool runs, the result is stored), which is what the agent loop
//!   does for each call, without HTTP or MCP.
//!
//! The difference of the medians is what MCP adds (target: at most 2 ms).
//! Writes `bench-results/mcp.json`.

use std::time::{Duration, Instant};

use agenthost::plugins::bindings::current::types::ToolUse;
use agenthost_tests::mcp::{text_of, McpClient};
use agenthost_tests::server::{Db, TestHost};
use serde_json::json;

const WARMUP: usize = 20;
const ROUNDS: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token("bench").await;
    let session = host.create_session(&token, json!({})).await;
    let id = session["id"].as_str().unwrap().to_string();
    let base = format!("http://{}", host.server().addr);
    let (mut mcp, _) = McpClient::connect(&base, &token, Some(&id)).await;
    let sessions = host.server().state().sessions.clone();
    let (_, handle) = sessions.open("bench", &id).await.unwrap();

    let mut via_mcp = Vec::with_capacity(ROUNDS);
    let mut direct = Vec::with_capacity(ROUNDS);
    for round in 0..WARMUP + ROUNDS {
        let started = Instant::now();
        let result = mcp.call_tool("bash", json!({"command": "true"})).await;
        let mcp_took = started.elapsed();
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(text_of(&result), "(no output)");

        let started = Instant::now();
        let call = ToolUse {
            id: format!("direct_{round}"),
            name: "bash".into(),
            input: json!({"command": "true"}).to_string(),
        };
        let event = handle
            .external_call(call, "direct")
            .await
            .unwrap()
            .run(std::future::pending())
            .await
            .unwrap();
        let direct_took = started.elapsed();
        assert_eq!(event.kind(), "tool_result");
        if round >= WARMUP {
            via_mcp.push(mcp_took);
            direct.push(direct_took);
        }
    }
    via_mcp.sort();
    direct.sort();
    let (m50, d50) = (percentile(&via_mcp, 0.5), percentile(&direct, 0.5));
    let result = json!({
        "bench": "mcp",
        "rounds": ROUNDS,
        "call": "bash `true` in a real sandbox, interleaved",
        "via_mcp_ms": {"p50": m50, "p95": percentile(&via_mcp, 0.95), "p99": percentile(&via_mcp, 0.99)},
        "direct_ms": {"p50": d50, "p95": percentile(&direct, 0.95), "p99": percentile(&direct, 0.99)},
        "mcp_adds_p50_ms": m50 - d50,
        "target_p50_ms": 2.0,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results/mcp.json");
    std::fs::write(out, serde_json::to_string_pretty(&result).unwrap() + "\n").unwrap();
    host.stop().await;
}
