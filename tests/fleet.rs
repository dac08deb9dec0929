//! Three `agenthost serve --fleet` processes on one PostgreSQL database:
//! any host serves any session, live events cross hosts exactly once,
//! commands reach the owner, a policy installed through one host runs a
//! session on another, and a host killed mid-run has its session
//! adopted by another within the lease time, paused "host lost", then
//! resumed, and runs on, on a new desktop holding its files as the last
//! snapshot (pushed to a registry) left them.

use std::time::{Duration, Instant};

use agenthost::store::Store;
use agenthost_tests::fleet::{agenthost_bin, Database, HostProcess, LoadBalancer, Registry};
use agenthost_tests::server::{call_json, is_status, Ws};
use serde_json::{json, Value};

/// The default lease time the hosts run with.
const LEASE: Duration = Duration::from_secs(10);

async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_json(
        &reqwest::Client::new(),
        method,
        &format!("{base}{path}"),
        token,
        body,
    )
    .await
}

/// Stored events' sequence numbers in the frames, checked to be each
/// exactly once and in order after `after`.
fn assert_exactly_once(frames: &[Value], after: i64) -> i64 {
    let seqs: Vec<i64> = frames.iter().filter_map(|f| f["seq"].as_i64()).collect();
    let expected: Vec<i64> = (after + 1..=after + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "each stored event once, in order");
    *seqs.last().unwrap_or(&after)
}

/// The first message a live-view WebSocket at `base` + `path` receives.
async fn live_greeting(base: &str, path: &str) -> Vec<u8> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}{path}", base.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "binary".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the live view connects");
    loop {
        match socket.next().await.expect("a message").expect("no error") {
            tokio_tungstenite::tungstenite::Message::Binary(bytes) => return bytes.to_vec(),
            tokio_tungstenite::tungstenite::Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// A fresh database, its store, a token for `ada` and three data
/// directories.
async fn fresh_fleet() -> (Database, Store, String, Vec<tempfile::TempDir>) {
    let db = Database::create().await;
    let store = Store::open(&db.url).await.unwrap();
    let token = store
        .create_token("ada", "test", None, false)
        .await
        .unwrap();
    let dirs = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    (db, store, token, dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_share_sessions_and_adopt_a_lost_hosts_run() {
    let (db, store, token, dirs) = fresh_fleet().await;
    // Snapshots go to a registry every host reaches.
    let registry_dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(registry_dir.path()).await;
    for dir in &dirs {
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[snapshots]\nregistry = \"{}/agenthost/snapshots\"\n",
                registry.addr
            ),
        )
        .unwrap();
    }
    let mut a = HostProcess::start("host-a", &db.url, dirs[0].path(), &[]).await;
    let b = HostProcess::start("host-b", &db.url, dirs[1].path(), &[]).await;
    let c = HostProcess::start("host-c", &db.url, dirs[2].path(), &[]).await;

    // Created through A, which runs it.
    let (status, session) = call(&a.url, "POST", "/api/v1/sessions", &token, Some(json!({}))).await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["host"], "host-a");
    let id = session["id"].as_str().unwrap().to_string();

    // B serves the session's reads and names the owner.
    let (status, seen) = call(
        &b.url,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["host"], "host-a", "B forwards to the owner: {seen}");
    // C's session list names the host running it too.
    let (_, listed) = call(&c.url, "GET", "/api/v1/sessions", &token, None).await;
    let entry = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["host"], "host-a", "{entry}");

    // The live desktop view through B: the ticket comes from A (the
    // request is forwarded), and B relays the viewer's WebSocket to A,
    // whose bridge opens the RFB handshake.
    let (status, ticket) = call(
        &b.url,
        "POST",
        &format!("/api/v1/sessions/{id}/live"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 201, "{ticket}");
    let greeting = live_greeting(&b.url, ticket["path"].as_str().unwrap()).await;
    assert_eq!(greeting, b"RFB 003.008\n");

    // A WebSocket on B streams it live; a message through C reaches it.
    let mut ws = Ws::connect(&b.url, &token, &id, 0).await;
    let snapshot = ws.next().await.unwrap();
    assert_eq!(snapshot["kind"], "snapshot");
    let last_seq = snapshot["last_seq"].as_i64().unwrap();
    let mut frames = Vec::new();
    if last_seq > 0 {
        frames = ws.until(|f| f["seq"].as_i64() == Some(last_seq)).await;
    }
    let (status, sent) = call(
        &c.url,
        "POST",
        &format!("/api/v1/sessions/{id}/messages"),
        &token,
        Some(json!({"text": "run `echo from-host-c | tee /home/agent/marker.txt`"})),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    frames.extend(ws.until(|f| is_status(f, "idle")).await);
    // The run's snapshot is in the registry (saved before the run was
    // reported idle).
    let snapshots = store.snapshots(&id).await.unwrap();
    assert!(
        snapshots
            .last()
            .is_some_and(|s| s.location.starts_with(&format!("oci://{}/", registry.addr))),
        "the snapshot was pushed: {snapshots:?}"
    );
    let cursor = assert_exactly_once(&frames, 0);
    let result = frames
        .iter()
        .find(|f| f["kind"] == "tool_result")
        .expect("the command ran");
    assert!(result.to_string().contains("from-host-c"), "{result}");

    // A policy installed through B's API reaches C, where a session runs
    // on it.
    let admin = store.create_token("ops", "test", None, true).await.unwrap();
    let (bytes, _) = agenthost_tests::component("scripted-policy");
    let manifest = "name = \"scripted-fleet\"\nversion = \"0.2.0\"\nkind = \"policy\"\ndescription = \"shared\"\ncapabilities = []\n";
    let form = reqwest::multipart::Form::new()
        .part("component", reqwest::multipart::Part::bytes(bytes))
        .text("manifest", manifest);
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/plugins", b.url))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let installed = Instant::now();
    let deadline = installed + Duration::from_secs(30);
    loop {
        let (_, policies) = call(&c.url, "GET", "/api/v1/policies", &token, None).await;
        if policies.to_string().contains("scripted-fleet") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C never got the policy: {policies}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the policy installed through B was on C after {:?}",
        installed.elapsed()
    );
    let (status, on_c) = call(
        &c.url,
        "POST",
        "/api/v1/sessions",
        &token,
        Some(json!({"policy": "scripted-fleet", "message": "run `echo shared-policy`"})),
    )
    .await;
    assert_eq!(status, 201, "{on_c}");
    assert_eq!(on_c["host"], "host-c");
    assert_eq!(on_c["policy"], "scripted-fleet");
    let mut on_c_ws = Ws::connect(&c.url, &token, on_c["id"].as_str().unwrap(), 0).await;
    let ran = on_c_ws.until(|f| f["kind"] == "tool_result").await;
    let result = ran.last().unwrap();
    assert!(result.to_string().contains("shared-policy"), "{result}");
    drop(on_c_ws);

    // A command sent on B's socket goes to A; A is killed mid-run.
    ws.send(json!({"type": "user_message", "text": "run `sleep 120` then run `echo finished`"}))
        .await;
    let mut frames = ws
        .until(|f| f["kind"] == "tool_call" && f.to_string().contains("sleep 120"))
        .await;
    a.kill().await;
    let killed = Instant::now();
    frames.extend(ws.until(|f| is_status(f, "paused")).await);
    let adopted_after = killed.elapsed();
    assert!(
        adopted_after <= LEASE + Duration::from_secs(3),
        "adopted {adopted_after:?} after the kill; the lease is {LEASE:?}"
    );
    let paused = frames.last().unwrap();
    assert_eq!(paused["payload"]["reason"], "host lost", "{paused}");
    let interrupted = frames
        .iter()
        .rfind(|f| f["kind"] == "tool_result")
        .expect("the cut call is closed");
    assert!(
        interrupted.to_string().contains("interrupted"),
        "{interrupted}"
    );

    // C sees who adopted it (B or C), and resuming through C finishes the
    // run there on a new desktop.
    let (_, seen) = call(
        &c.url,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        &token,
        None,
    )
    .await;
    let adopter = seen["host"].as_str().unwrap_or_default().to_string();
    assert!(adopter == "host-b" || adopter == "host-c", "{seen}");
    let (status, resumed) = call(
        &c.url,
        "POST",
        &format!("/api/v1/sessions/{id}/resume"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 202, "{resumed}");
    frames.extend(ws.until(|f| is_status(f, "idle")).await);
    // The scripted policy ends a run at a failed step and says so.
    assert!(
        frames.iter().any(|f| f["kind"] == "assistant_message"
            && f.to_string().contains("Step 1 failed: interrupted")),
        "the resumed run reached the policy: {frames:#?}"
    );
    // The new desktop holds the files A's last snapshot saved, pulled
    // from the registry by the adopter.
    let (status, sent) = call(
        &c.url,
        "POST",
        &format!("/api/v1/sessions/{id}/messages"),
        &token,
        Some(json!({"text": "run `cat /home/agent/marker.txt && echo finished`"})),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    frames.extend(ws.until(|f| is_status(f, "idle")).await);
    assert_exactly_once(&frames, cursor);
    let last_result = frames.iter().rfind(|f| f["kind"] == "tool_result").unwrap();
    assert!(
        last_result.to_string().contains("from-host-c")
            && last_result.to_string().contains("finished"),
        "{last_result}"
    );

    // The store holds the same history the socket delivered.
    let (_, stored) = call(
        &b.url,
        "GET",
        &format!("/api/v1/sessions/{id}/events"),
        &token,
        None,
    )
    .await;
    let stored = stored["events"].as_array().unwrap().len() as i64;
    assert_eq!(
        stored,
        frames
            .iter()
            .filter_map(|f| f["seq"].as_i64())
            .max()
            .unwrap()
    );

    // A fork made through B starts from the registry's copy of the last
    // snapshot, which whichever host opens it pulls. Deleting the source
    // deletes its snapshots from the registry, except the one the fork is
    // still to start from.
    let (status, fork) = call(
        &b.url,
        "POST",
        &format!("/api/v1/sessions/{id}/fork"),
        &token,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{fork}");
    let fork_id = fork["id"].as_str().unwrap().to_string();
    let fork_from = store
        .restore_from(&fork_id)
        .await
        .unwrap()
        .expect("the fork starts from a snapshot");
    assert!(
        fork_from.starts_with(&format!("oci://{}/", registry.addr)),
        "{fork_from}"
    );
    let pushed = store.snapshots(&id).await.unwrap();
    assert!(pushed.len() >= 2, "{pushed:?}");
    let (status, _) = call(
        &c.url,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    for s in &pushed {
        assert_eq!(
            registry.has_manifest(&s.location).await,
            s.location == fork_from,
            "{} (the fork's is {fork_from})",
            s.location
        );
    }
    // Only what happens after the copied history counts.
    let copied = fork["last_seq"].as_i64().unwrap();
    let mut fork_ws = Ws::connect(&c.url, &token, &fork_id, copied).await;
    let (status, sent) = call(
        &c.url,
        "POST",
        &format!("/api/v1/sessions/{fork_id}/messages"),
        &token,
        Some(json!({"text": "run `cat /home/agent/marker.txt`"})),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let ran = fork_ws.until(|f| is_status(f, "idle")).await;
    let result = ran
        .iter()
        .rfind(|f| f["kind"] == "tool_result")
        .unwrap_or_else(|| panic!("the fork ran no command: {ran:#?}"));
    assert!(result.to_string().contains("from-host-c"), "{result}");
    drop(fork_ws);

    // A comes back under its name: it rejoins and reaps what it left.
    let a = HostProcess::start("host-a", &db.url, dirs[0].path(), &[]).await;
    let (status, _) = call(
        &a.url,
        "GET",
        &format!("/api/v1/sessions/{fork_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    drop(ws);
    for host in [a, b, c] {
        host.stop().await;
    }
    store.close().await;
    db.drop_now().await;
}

/// A host with no desktop free places a new session on the fleet's host
/// with the most; thirty sessions through HAProxy spread over the hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_sessions_go_where_there_is_room_and_spread_behind_a_load_balancer() {
    let (db, store, token, dirs) = fresh_fleet().await;
    let mut hosts = Vec::new();
    for (i, (name, room)) in [("lb-a", 4), ("lb-b", 4), ("lb-c", 2)].iter().enumerate() {
        let config = dirs[i].path().join("fleet.toml");
        std::fs::write(&config, format!("[sandbox]\nmax_running = {room}\n")).unwrap();
        let config = config.display().to_string();
        hosts.push(HostProcess::start(name, &db.url, dirs[i].path(), &["--config", &config]).await);
    }

    // C has two desktops, both kept busy by its first two sessions: the
    // next one asked of C starts on a host with room.
    let c = hosts[2].url.clone();
    // (Two users: each may hold one of C's two desktops.)
    let bob = store
        .create_token("bob", "test", None, false)
        .await
        .unwrap();
    let create = |token: &str, body: Value| {
        let (c, token) = (c.clone(), token.to_string());
        async move { call(&c, "POST", "/api/v1/sessions", &token, Some(body)).await }
    };
    // Busy for longer than the test, whatever the machine's load: one
    // command is cut at the shell's 120 s limit, so four in a row.
    let busy = json!({"message": "run `sleep 110` then run `sleep 110` then run `sleep 110` then run `sleep 110`"});
    let (status, first) = create(&token, busy.clone()).await;
    assert_eq!(
        (status, first["host"].as_str()),
        (201, Some("lb-c")),
        "{first}"
    );
    let (status, second) = create(&bob, busy).await;
    assert_eq!(
        (status, second["host"].as_str()),
        (201, Some("lb-c")),
        "{second}"
    );
    let (status, placed) = create(&token, json!({})).await;
    assert_eq!(status, 201, "{placed}");
    assert!(
        placed["host"] == "lb-a" || placed["host"] == "lb-b",
        "{placed}"
    );

    // C's second goes idle: its desktop is room again, given up on demand.
    let second_id = second["id"].as_str().unwrap();
    let (status, _) = call(
        &c,
        "POST",
        &format!("/api/v1/sessions/{second_id}/cancel"),
        &bob,
        None,
    )
    .await;
    assert_eq!(status, 202);

    // HAProxy in front of the three, round robin.
    let urls: Vec<&str> = hosts.iter().map(|h| h.url.as_str()).collect();
    let haproxy = LoadBalancer::start(dirs[0].path(), &urls).await;
    let lb = haproxy.url.clone();
    // A third user, holding none of C's desktops.
    let carol = store
        .create_token("carol", "test", None, false)
        .await
        .unwrap();
    let mut spread = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..30 {
        let (status, session) =
            call(&lb, "POST", "/api/v1/sessions", &carol, Some(json!({}))).await;
        assert_eq!(status, 201, "{session}");
        *spread
            .entry(session["host"].as_str().unwrap_or("none").to_string())
            .or_default() += 1;
    }
    println!("30 sessions through HAProxy: {spread:?}");
    // C's busy desktop was never taken from it: the sessions C got reused
    // desktops its idle sessions gave up, or went elsewhere.
    let first_id = first["id"].as_str().unwrap();
    let (_, still) = call(
        &hosts[2].url,
        "GET",
        &format!("/api/v1/sessions/{first_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(still["status"], "running", "{still}");
    assert_eq!(spread.values().sum::<usize>(), 30);
    for host in ["lb-a", "lb-b", "lb-c"] {
        assert!(
            spread.get(host).copied().unwrap_or(0) > 0,
            "{host} got none: {spread:?}"
        );
    }
    for host in hosts {
        host.stop().await;
    }
    store.close().await;
    db.drop_now().await;
}

/// A user's caps count their agents running on every host: with one
/// running on A at a cap of one, a session asked of B is refused; once A's
/// is deleted, B grants it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_user_caps_hold_across_the_fleet() {
    let (db, store, token, dirs) = fresh_fleet().await;
    for dir in &dirs[..2] {
        std::fs::write(
            dir.path().join("config.toml"),
            "[quotas]\nsandboxes_per_user = 1\n",
        )
        .unwrap();
    }
    let a = HostProcess::start("host-a", &db.url, dirs[0].path(), &[]).await;
    let b = HostProcess::start("host-b", &db.url, dirs[1].path(), &[]).await;

    // Busy for longer than the test, whatever the machine's load: one
    // command is cut at the shell's 120 s limit, so four in a row.
    let busy = json!({"message": "run `sleep 110` then run `sleep 110` then run `sleep 110` then run `sleep 110`"});
    let (status, first) = call(&a.url, "POST", "/api/v1/sessions", &token, Some(busy)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["host"], "host-a");
    assert_eq!(first["status"], "running");
    let (status, refused) = call(&b.url, "POST", "/api/v1/sessions", &token, Some(json!({}))).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "quota_sandboxes", "{refused}");
    // Another user is not held back by ada's desktop.
    let other = store.create_token("bo", "test", None, false).await.unwrap();
    let (status, theirs) = call(&b.url, "POST", "/api/v1/sessions", &other, Some(json!({}))).await;
    assert_eq!(status, 201, "{theirs}");

    let first_id = first["id"].as_str().unwrap();
    let (status, _) = call(
        &a.url,
        "DELETE",
        &format!("/api/v1/sessions/{first_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, second) = call(&b.url, "POST", "/api/v1/sessions", &token, Some(json!({}))).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["host"], "host-b");

    a.stop().await;
    b.stop().await;
    store.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn a_fleet_on_sqlite_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(agenthost_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--fleet"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a fleet needs PostgreSQL"), "{stderr}");
}
