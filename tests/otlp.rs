//! Traces over OTLP: two fleet hosts export their spans to a stand-in
//! collector that decodes every export with the official OpenTelemetry
//! protobuf bindings (tests/support/otlp_collector.py). A message sent
//! through host B with a W3C `traceparent` is one trace across both hosts:
//! B's request, B's forward to the owner A, A's request. A's run of the
//! session is a trace of its own: policy steps, the model calls inside
//! them, the tool call. No credential reaches the collector.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

use agenthost::store::Store;
use agenthost_tests::fleet::{Database, HostProcess};
use agenthost_tests::mock_llm::{MockLlm, Reply};
use agenthost_tests::server::{call_json, is_status, Ws};
use agenthost_tests::tools::tools_bin;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

/// The collector process; its span lines are read when it is stopped.
struct Collector {
    url: String,
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Collector {
    async fn start(dir: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/otlp_collector.py");
        let mut child = tokio::process::Command::new(tools_bin("python"))
            .arg(script)
            .arg(dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the collector starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().expect("a listening line");
        let url = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        Self { url, child, lines }
    }

    /// Every line printed so far. Called once the hosts have exited: each
    /// flushed its spans and had them answered, and the collector prints
    /// before it answers.
    async fn stop(mut self) -> Vec<Value> {
        self.child.kill().await.unwrap();
        let mut out = Vec::new();
        while let Some(line) = self.lines.next_line().await.unwrap() {
            out.push(serde_json::from_str(&line).unwrap());
        }
        out
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

fn instance(span: &Value) -> &str {
    span["resource"]["service.instance.id"]
        .as_str()
        .unwrap_or_default()
}

/// A fleet host exporting to `collector`, its model the stand-in at `llm`.
async fn start_host(
    id: &str,
    database_url: &str,
    dir: &Path,
    collector: &str,
    llm: &str,
) -> HostProcess {
    let resource = format!("service.instance.id={id}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20collector-secret",
        ),
        ("OTEL_RESOURCE_ATTRIBUTES", resource.as_str()),
        ("ANTHROPIC_API_KEY", "sk-otlp-model-key"),
        ("ANTHROPIC_BASE_URL", llm),
    ];
    HostProcess::start_with_env(id, database_url, dir, &[], &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spans_reach_the_collector_and_a_forwarded_request_is_one_trace() {
    let collector_dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(collector_dir.path()).await;
    let (_llm, llm_addr) = MockLlm::start(vec![
        Reply::Tool {
            text: None,
            id: "toolu_trace",
            name: "bash",
            input: vec!["{\"command\": \"echo traced\"}"],
        },
        Reply::Text(vec!["Done."]),
    ])
    .await;
    let db = Database::create().await;
    let store = Store::open(&db.url).await.unwrap();
    let token = store
        .create_token("tess", "test", None, false)
        .await
        .unwrap();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();

    let llm_url = format!("http://{llm_addr}");
    let a = start_host("host-a", &db.url, dirs[0].path(), &collector.url, &llm_url).await;
    let b = start_host("host-b", &db.url, dirs[1].path(), &collector.url, &llm_url).await;
    let began = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;

    let http = reqwest::Client::new();
    let (status, session) = call_json(
        &http,
        "POST",
        &format!("{}/api/v1/sessions", a.url),
        &token,
        Some(json!({"policy": "anthropic-policy"})),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_string();
    let mut ws = Ws::connect(&a.url, &token, &id, 0).await;

    // The message goes through B, which forwards it to A, in the caller's
    // trace.
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let res = http
        .post(format!("{}/api/v1/sessions/{id}/messages", b.url))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({"text": "list the files"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let frames = ws.until(|f| is_status(f, "idle")).await;
    assert!(
        frames.iter().any(|f| f["kind"] == "tool_result"),
        "the tool ran: {frames:?}"
    );
    drop(ws);
    a.stop().await;
    b.stop().await;

    let lines = collector.stop().await;
    let errors: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(
        errors.is_empty(),
        "exports the bindings refused: {errors:?}"
    );
    let spans: Vec<&Value> = lines.iter().collect();
    assert!(!spans.is_empty(), "no spans arrived");
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap(), *s))
        .collect();
    for s in &spans {
        assert_eq!(s["authorization"], "Bearer collector-secret", "{s}");
        assert_eq!(s["resource"]["service.name"], "agenthost", "{s}");
        assert_eq!(s["scope"], "agenthost", "{s}");
        assert_eq!(s["trace_id"].as_str().unwrap().len(), 32, "{s}");
        assert_eq!(s["span_id"].as_str().unwrap().len(), 16, "{s}");
        let (start, end) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        assert!(start >= began - 600_000_000_000 && end >= start, "{s}");
    }

    // B's request span: a server span in the caller's trace, under the
    // caller's span.
    let path = format!("/api/v1/sessions/{id}/messages");
    let request_on = |host: &str| {
        spans
            .iter()
            .find(|s| instance(s) == host && attr(s, "url.path") == path.as_str())
            .copied()
            .unwrap_or_else(|| panic!("no request span on {host}: {spans:?}"))
    };
    let on_b = request_on("host-b");
    assert_eq!(on_b["name"], format!("POST {path}"));
    assert_eq!(on_b["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(on_b["trace_id"], caller_trace);
    assert_eq!(on_b["parent_span_id"], caller_span);
    assert_eq!(attr(on_b, "http.request.method"), "POST");
    assert_eq!(attr(on_b, "http.response.status_code"), 202);
    assert!(
        attr(on_b, "traceparent").is_null(),
        "the header steers, it is no attribute"
    );
    // B's forward: a client span under B's request.
    let forward = spans
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("forward POST"))
        .copied()
        .expect("a forward span");
    assert_eq!(instance(forward), "host-b");
    assert_eq!(forward["kind"], 3, "SPAN_KIND_CLIENT");
    assert_eq!(forward["trace_id"], caller_trace);
    assert_eq!(forward["parent_span_id"], on_b["span_id"]);
    assert_eq!(attr(forward, "server.host"), "host-a");
    // A's request: under B's forward, same trace.
    let on_a = request_on("host-a");
    assert_eq!(on_a["trace_id"], caller_trace);
    assert_eq!(on_a["parent_span_id"], forward["span_id"]);
    assert_eq!(attr(on_a, "http.response.status_code"), 202);

    // A's run: its own trace, with the steps, model calls and tool call
    // inside it.
    let run = spans
        .iter()
        .find(|s| s["name"] == "session.run" && attr(s, "session.id") == id.as_str())
        .copied()
        .expect("a session.run span");
    assert_eq!(instance(run), "host-a");
    assert_eq!(run["parent_span_id"], "", "a root: {run}");
    assert_ne!(run["trace_id"], caller_trace);
    assert_eq!(attr(run, "policy"), "anthropic-policy");
    assert_eq!(attr(run, "outcome"), "replied");
    let in_run: Vec<&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == run["trace_id"])
        .copied()
        .collect();
    let steps: Vec<&Value> = in_run
        .iter()
        .filter(|s| s["name"] == "policy.step")
        .copied()
        .collect();
    assert_eq!(steps.len(), 2, "one step to act, one to reply: {in_run:?}");
    for step in &steps {
        assert_eq!(step["parent_span_id"], run["span_id"]);
    }
    let calls: Vec<&Value> = in_run
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("chat "))
        .copied()
        .collect();
    assert_eq!(calls.len(), 2, "{in_run:?}");
    for call in &calls {
        assert_eq!(call["kind"], 3, "SPAN_KIND_CLIENT");
        assert_eq!(attr(call, "gen_ai.provider.name"), "anthropic");
        assert!(attr(call, "gen_ai.usage.output_tokens").as_i64().unwrap() > 0);
        let parent = by_id[call["parent_span_id"].as_str().unwrap()];
        assert_eq!(
            parent["name"], "policy.step",
            "a model call is inside a step"
        );
    }
    let tool = in_run
        .iter()
        .find(|s| s["name"] == "tool bash")
        .copied()
        .expect("the tool call's span");
    assert_eq!(tool["parent_span_id"], run["span_id"]);
    assert_eq!(attr(tool, "tool.call_id"), "toolu_trace");
    assert_eq!(attr(tool, "tool.is_error"), false);
    assert_eq!(tool["status"]["code"], 0, "STATUS_CODE_UNSET: {tool}");

    // No credential left the hosts: not the user's token, not the model's
    // key, not the collector's own header.
    for entry in std::fs::read_dir(collector_dir.path()).unwrap() {
        let body = std::fs::read(entry.unwrap().path()).unwrap();
        for secret in [token.as_str(), "sk-otlp-model-key", "collector-secret"] {
            assert!(
                !body.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} was exported"
            );
        }
    }
    db.drop_now().await;
}
