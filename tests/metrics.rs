//! `/metrics` scraped by a real Prometheus (Debian's package, on loopback)
//! after a session ran a tool: the tool-call histogram, sessions by status
//! and the sandbox pool are queried back through Prometheus's own API.

use std::process::Stdio;
use std::time::{Duration, Instant};

use agenthost_tests::server::{user_message, Db, TestHost};
use serde_json::Value;

/// A free loopback port for Prometheus to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asks Prometheus `query` until it has a sample, up to a minute (scrapes
/// are every second; a missing metric is a failure, not a hang).
async fn query(prometheus: &str, query: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: Value = match http
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await
        {
            Ok(res) => res.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if let Some(result) = answer["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
        {
            return result.clone();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has no `{query}`: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_hosts_metrics() {
    let host = TestHost::start(Db::Sqlite).await;
    let admin = host.admin_token("ops").await;
    let user = host.token("ada").await;

    // Operators only.
    let (status, _, _) = host.get_text("/metrics", "aht_not-a-token").await;
    assert_eq!(status, 401);
    let (status, _, _) = host.get_text("/metrics", &user).await;
    assert_eq!(status, 403);

    let (_, mut ws) = host.open_chat(&user).await;
    ws.send(user_message("run `true`")).await;
    ws.until_status("idle").await;
    let (status, content_type, page) = host.get_text("/metrics", &admin).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(page.contains("agenthost_websocket_clients 1"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let target = host.server().addr;
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: agenthost\n    \
         authorization:\n      credentials: {admin}\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed (scripts/setup.sh installs it)");
    let url = format!("http://127.0.0.1:{port}");

    let up = query(&url, "up{job=\"agenthost\"} == 1").await;
    assert_eq!(up.len(), 1, "the scrape succeeds with the operator's token");
    let bash = query(
        &url,
        "agenthost_tool_call_seconds_count{tool=\"bash\",outcome=\"ok\"}",
    )
    .await;
    assert_eq!(bash[0]["value"][1], "1", "{bash:?}");
    let idle = query(&url, "agenthost_sessions{status=\"idle\"}").await;
    assert_eq!(idle[0]["value"][1], "1", "{idle:?}");
    let appends = query(&url, "agenthost_event_append_seconds_count > 0").await;
    assert!(!appends.is_empty());
    let claimed = query(&url, "agenthost_sandboxes{state=\"claimed\"}").await;
    assert_eq!(claimed[0]["value"][1], "1", "{claimed:?}");
    let sockets = query(&url, "agenthost_websocket_clients").await;
    assert_eq!(sockets[0]["value"][1], "1", "{sockets:?}");

    prometheus.kill().await.unwrap();
    drop(ws);
    host.stop().await;
}
