//! Fleet benchmark: `cargo bench -p agenthost-tests --bench fleet`.
//!
//! `agenthost serve --fleet` processes on a fresh PostgreSQL database behind
//! Debian's HAProxy; in one run:
//!
//! * create-session-to-first-event through the load balancer (`POST
//!   /sessions` with a first message, open the WebSocket through the
//!   balancer, receive the stored `user_message`), three hosts against one;
//! * delivery of a message's event to a WebSocket on another host than the
//!   one running the session (LISTEN/NOTIFY, then a store read), against a
//!   WebSocket on the running host, both open on the same session at once
//!   (p50/p99).
//!
//! The grouped append throughput is `bench-results/store.json` (`--bench
//! store`). Writes `bench-results/fleet.json`.

use std::time::{Duration, Instant};

use agenthost::store::Store;
use agenthost_tests::fleet::{Database, HostProcess, LoadBalancer};
use agenthost_tests::server::{call_json, is_status, Ws};
use serde_json::{json, Value};

const CREATES: usize = 30;
const ROUNDS: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    json!({
        "p50": percentile(&samples, 0.5),
        "p95": percentile(&samples, 0.95),
        "p99": percentile(&samples, 0.99),
        "samples": samples.len(),
    })
}

/// Waits until every host has its warm desktops again.
async fn all_ready(hosts: &[HostProcess]) {
    for host in hosts {
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/readyz", host.url))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "{} never got ready again",
                host.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `CREATES` sessions created through the balancer, each timed from the
/// request to its first stored event on a socket opened through the
/// balancer; each is deleted (its desktop freed) before the next.
async fn create_to_first_event(lb: &str, token: &str, hosts: &[HostProcess]) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for i in 0..CREATES {
        all_ready(hosts).await;
        let started = Instant::now();
        let (status, session) = call_json(
            &http,
            "POST",
            &format!("{lb}/api/v1/sessions"),
            token,
            Some(json!({"message": format!("run `echo {i}`")})),
        )
        .await;
        assert_eq!(status, 201, "{session}");
        let id = session["id"].as_str().unwrap();
        let mut ws = Ws::connect(lb, token, id, 0).await;
        let first = ws.until(|f| f["seq"].is_i64()).await;
        times.push(started.elapsed());
        assert_eq!(first.last().unwrap()["kind"], "user_message");
        ws.until(|f| is_status(f, "idle")).await;
        let (status, _) = call_json(
            &http,
            "DELETE",
            &format!("{lb}/api/v1/sessions/{id}"),
            token,
            None,
        )
        .await;
        assert_eq!(status, 204);
    }
    times
}

/// A session on `owner`, a socket on `owner` and one on `other`; each round
/// posts a message to `owner` and times its `user_message` on both.
async fn delivery(
    owner: &HostProcess,
    other: &HostProcess,
    token: &str,
) -> (Vec<Duration>, Vec<Duration>) {
    let http = reqwest::Client::new();
    let (status, session) = call_json(
        &http,
        "POST",
        &format!("{}/api/v1/sessions", owner.url),
        token,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["host"], owner.id.as_str());
    let id = session["id"].as_str().unwrap();
    let mut same = Ws::connect(&owner.url, token, id, 0).await;
    let mut cross = Ws::connect(&other.url, token, id, 0).await;
    same.next().await.unwrap();
    cross.next().await.unwrap();
    let (mut same_times, mut cross_times) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // The scripted policy answers text it cannot act on with a reply:
        // a short run with no tool call.
        let text = format!("hello {round}");
        let started = Instant::now();
        let (status, _) = call_json(
            &http,
            "POST",
            &format!("{}/api/v1/sessions/{id}/messages", owner.url),
            token,
            Some(json!({"text": text})),
        )
        .await;
        assert_eq!(status, 202);
        let (s, c) = tokio::join!(
            arrival(&mut same, &text, started),
            arrival(&mut cross, &text, started)
        );
        same_times.push(s);
        cross_times.push(c);
    }
    (same_times, cross_times)
}

/// When the message `text` reached `ws` after `started`; then waits for
/// the run to end.
async fn arrival(ws: &mut Ws, text: &str, started: Instant) -> Duration {
    ws.until(|f| f["kind"] == "user_message" && f["payload"]["text"] == text)
        .await;
    let at = started.elapsed();
    ws.until(|f| is_status(f, "idle")).await;
    at
}

#[tokio::main]
async fn main() {
    let db = Database::create().await;
    let store = Store::open(&db.url).await.unwrap();
    let token = store
        .create_token("bench", "bench", None, false)
        .await
        .unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();

    // One host behind the balancer.
    let solo = vec![HostProcess::start("solo", &db.url, dirs[3].path(), &[]).await];
    let lb_one = LoadBalancer::start(dirs[3].path(), &[solo[0].url.as_str()]).await;
    let one = create_to_first_event(&lb_one.url, &token, &solo).await;
    drop(lb_one);
    for host in solo {
        host.stop().await;
    }

    // Three hosts behind it.
    let mut hosts = Vec::new();
    for (i, name) in ["host-a", "host-b", "host-c"].iter().enumerate() {
        hosts.push(HostProcess::start(name, &db.url, dirs[i].path(), &[]).await);
    }
    let urls: Vec<&str> = hosts.iter().map(|h| h.url.as_str()).collect();
    let lb_three = LoadBalancer::start(dirs[0].path(), &urls).await;
    let three = create_to_first_event(&lb_three.url, &token, &hosts).await;
    drop(lb_three);

    let (same, cross) = delivery(&hosts[0], &hosts[1], &token).await;
    for host in hosts {
        host.stop().await;
    }
    store.close().await;
    db.drop_now().await;

    let result = json!({
        "machine": "2 cores, no accelerator; every process on it (PostgreSQL, HAProxy, the hosts, their sandboxes, this client)",
        "create_to_first_event_through_haproxy_ms": {
            "three_hosts": summary(three),
            "one_host_baseline": summary(one),
        },
        "websocket_delivery_ms": {
            "cross_host": summary(cross),
            "same_host_baseline": summary(same),
        },
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results/fleet.json");
    std::fs::write(out, serde_json::to_string_pretty(&result).unwrap() + "\n").unwrap();
}
