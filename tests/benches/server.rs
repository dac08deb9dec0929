//! Sessions server benchmark: `cargo bench -p agenthost-tests --bench server`.
//!
//! The host runs in a child process (this same executable, started with
//! `AGENTHOST_BENCH_SERVE` set) so its memory is measured alone. Measures,
//! in one run:
//!
//! * create-session-to-first-event: `POST /sessions` with a first message,
//!   open the WebSocket, receive the stored `user_message`; with a warm
//!   pool, against a cold one (no warm sandbox, so the claim boots one);
//! * delivery of a session's events to 1,000 concurrent WebSocket clients,
//!   from posting a message to each client receiving it (p50/p99), against
//!   the same with one client; and the host's resident memory before and
//!   with the 1,000 clients connected.
//!
//! Writes `bench-results/server.json`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agenthost::server::Server;
use agenthost_tests::server::{install_plugins, TestHost, Ws};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CLIENTS: usize = 1000;
const ROUNDS: usize = 20;
const CREATES: usize = 15;

/// The child: a host on loopback, until its stdin closes.
async fn serve_child(data_dir: &str, warm: usize) {
    let dir = std::path::PathBuf::from(data_dir);
    let mut config = TestHost::config(format!("sqlite:{}", dir.join("agenthost.db").display()));
    config.sandbox.warm = warm;
    config.sandbox.max_running = 64;
    let server = Server::start(config, &dir).await.unwrap();
    if let Some(pool) = server.state().pool.clone() {
        if warm > 0 {
            pool.wait_warm(warm, Duration::from_secs(120))
                .await
                .unwrap();
        }
    }
    let token = server
        .state()
        .store
        .create_token("bench", "bench", None, false)
        .await
        .unwrap();
    println!("READY {} {token}", server.addr);
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await
    .unwrap();
    server.stop().await;
}

struct HostProcess {
    child: Child,
    addr: String,
    token: String,
}

impl HostProcess {
    fn start(data_dir: &std::path::Path, warm: usize) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(
                "AGENTHOST_BENCH_SERVE",
                format!("{}|{warm}", data_dir.display()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().expect("piped stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .find_map(|l| l.ok()?.strip_prefix("READY ").map(str::to_string));
        let Some(ready) = ready else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the host process exited before it was ready");
        };
        let (addr, token) = ready.split_once(' ').expect("READY addr token");
        Self {
            addr: addr.into(),
            token: token.into(),
            child,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

async fn ws(addr: &str, token: &str, session: &str, after: i64) -> Ws {
    let mut req = format!("ws://{addr}/api/v1/sessions/{session}/ws?after={after}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    Ws { socket }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn create_to_first_event(child: &HostProcess, http: &reqwest::Client) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 0..CREATES {
        let started = Instant::now();
        let session: Value = http
            .post(format!("http://{}/api/v1/sessions", child.addr))
            .bearer_auth(&child.token)
            .json(&json!({"message": format!("run `echo {i}`")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["id"].as_str().unwrap();
        let mut socket = ws(&child.addr, &child.token, id, 0).await;
        let first = socket.until(|f| f["seq"].is_i64()).await;
        times.push(started.elapsed());
        assert_eq!(first.last().unwrap()["kind"], "user_message");
        socket
            .until(|f| f["kind"] == "state_changed" && f["payload"]["status"] == "idle")
            .await;
        // Give the sandbox back so the pool refills before the next round.
        http.delete(format!("http://{}/api/v1/sessions/{id}", child.addr))
            .bearer_auth(&child.token)
            .send()
            .await
            .unwrap();
        // Wait for the refill via readiness, not a fixed sleep.
        loop {
            let ready = http
                .get(format!("http://{}/readyz", child.addr))
                .send()
                .await
                .unwrap();
            if ready.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    times.sort();
    times
}

/// Posts `ROUNDS` messages; returns each client's delivery latency of each.
async fn fan_out(
    child: &HostProcess,
    http: &reqwest::Client,
    clients: usize,
) -> (Vec<Duration>, u64, u64) {
    let session: Value = http
        .post(format!("http://{}/api/v1/sessions", child.addr))
        .bearer_auth(&child.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap().to_string();
    let before = child.rss_kib();
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut s = ws(&child.addr, &child.token, &id, 0).await;
        assert_eq!(s.next().await.unwrap()["kind"], "snapshot");
        sockets.push(s);
    }
    let with_clients = child.rss_kib();
    let sent_at: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    // Each client waits for ROUNDS user messages and records arrival times.
    let mut tasks = Vec::new();
    for mut s in sockets {
        tasks.push(tokio::spawn(async move {
            let mut arrivals = Vec::new();
            while arrivals.len() < ROUNDS {
                let msg = s.socket.next().await.unwrap().unwrap();
                if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["kind"] == "user_message" {
                        arrivals.push(Instant::now());
                    }
                }
            }
            (arrivals, s)
        }));
    }
    for i in 0..ROUNDS {
        sent_at.lock().unwrap().push(Instant::now());
        let res = http
            .post(format!(
                "http://{}/api/v1/sessions/{id}/messages",
                child.addr
            ))
            .bearer_auth(&child.token)
            .json(&json!({"text": format!("hello {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let sent = sent_at.lock().unwrap().clone();
    let mut latencies = Vec::new();
    for t in tasks {
        let (arrivals, _socket) = t.await.unwrap();
        for (arrived, sent) in arrivals.iter().zip(&sent) {
            latencies.push(arrived.duration_since(*sent));
        }
    }
    latencies.sort();
    (latencies, before, with_clients)
}

#[tokio::main]
async fn main() {
    if let Ok(spec) = std::env::var("AGENTHOST_BENCH_SERVE") {
        let (dir, warm) = spec.split_once('|').unwrap();
        serve_child(dir, warm.parse().unwrap()).await;
        return;
    }
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    install_plugins(dir.path()).await;

    let warm_child = HostProcess::start(dir.path(), 1);
    let warm = create_to_first_event(&warm_child, &http).await;
    let (one, _, _) = fan_out(&warm_child, &http, 1).await;
    let (many, rss_before, rss_with) = fan_out(&warm_child, &http, CLIENTS).await;
    warm_child.stop();

    let cold_dir = tempfile::tempdir().unwrap();
    install_plugins(cold_dir.path()).await;
    let cold_child = HostProcess::start(cold_dir.path(), 0);
    let cold = create_to_first_event(&cold_child, &http).await;
    cold_child.stop();

    let result = json!({
        "machine": "2 cores, no accelerator",
        "create_to_first_event_ms": {
            "warm_pool": {"p50": percentile(&warm, 0.5), "p95": percentile(&warm, 0.95), "runs": warm.len()},
            "cold_pool_baseline": {"p50": percentile(&cold, 0.5), "p95": percentile(&cold, 0.95), "runs": cold.len()},
        },
        "delivery_latency_ms": {
            "clients_1000": {"p50": percentile(&many, 0.5), "p99": percentile(&many, 0.99), "max": percentile(&many, 1.0), "samples": many.len()},
            "client_1_baseline": {"p50": percentile(&one, 0.5), "p99": percentile(&one, 0.99), "samples": one.len()},
        },
        "host_rss_kib": {
            "before_clients": rss_before,
            "with_1000_clients": rss_with,
            "per_client_kib": (rss_with.saturating_sub(rss_before)) as f64 / CLIENTS as f64,
        },
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results/server.json");
    std::fs::write(out, serde_json::to_string_pretty(&result).unwrap() + "\n").unwrap();
}
