//! The host against hostile input and hostile neighbours (SECURITY.md):
//! servers in the tests that answer where a sandbox's VNC and exec
//! services should, the browser bridge fed bad clients, the container's
//! confinement and network on a real Docker engine, per-user caps, image
//! scope, token revocation, eviction, cancel at random moments, and a stop
//! under load. A missing Docker engine or image is a failure, never a skip.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agenthost::capabilities::ShellBackend;
use agenthost::plugins::bindings::current::shell::Command;
use agenthost::plugins::bindings::current::types::HostError;
use agenthost::rfb::{bridge, RfbClient, RfbError, ServerInit};
use agenthost::sandbox::{Activity, Docker, ExecClient, SandboxConfig, BLOCKED_RANGES};
use agenthost_tests::server::{user_message, Db, TestHost};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback server that runs `serve` on each connection.
async fn hostile<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// The RFB handshake up to ServerInit, offering `security` types and
/// accepting whatever the client answers.
async fn rfb_greeting(s: &mut TcpStream, security: &[u8], width: u16, height: u16) {
    s.write_all(b"RFB 003.008\n").await.unwrap();
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await.unwrap();
    s.write_u8(security.len() as u8).await.unwrap();
    s.write_all(security).await.unwrap();
    let chosen = s.read_u8().await.unwrap();
    if chosen == 2 {
        s.write_all(&[0u8; 16]).await.unwrap();
        let mut answer = [0u8; 16];
        s.read_exact(&mut answer).await.unwrap();
    }
    s.write_u32(0).await.unwrap();
    let _shared = s.read_u8().await.unwrap();
    s.write_u16(width).await.unwrap();
    s.write_u16(height).await.unwrap();
    s.write_all(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])
        .await
        .unwrap();
    s.write_u32(4).await.unwrap();
    s.write_all(b"evil").await.unwrap();
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_vnc_server_without_authentication_is_refused_when_we_hold_a_password() {
    let addr = hostile(|mut s| async move {
        let _ = s.write_all(b"RFB 003.008\n").await;
        let mut version = [0u8; 12];
        let _ = s.read_exact(&mut version).await;
        let _ = s.write_all(&[1, 1]).await; // only None
        let _ = s.read_u8().await;
    })
    .await;
    let err = RfbClient::connect(addr, Some("secret12"), Duration::from_secs(5))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, RfbError::Auth(_)), "{err}");
}

#[tokio::test]
async fn a_giant_rectangle_ends_the_connection_without_allocating_it() {
    let addr = hostile(|mut s| async move {
        rfb_greeting(&mut s, &[2], 1280, 800).await;
        // One raw rectangle of 65535x65535: 16 GiB if believed.
        let mut update = vec![0u8, 0, 0, 1];
        for v in [0u16, 0, 65535, 65535] {
            update.extend_from_slice(&v.to_be_bytes());
        }
        update.extend_from_slice(&0i32.to_be_bytes());
        let _ = s.write_all(&update).await;
        let _ = s.write_all(&vec![0xAB; 1 << 20]).await;
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let before = peak_rss_kib();
    let client = RfbClient::connect(addr, Some("secret12"), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(client.first_frame(Duration::from_secs(5)).await.is_err());
    assert!(!client.is_alive());
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(grown_mib < 64, "peak memory grew by {grown_mib} MiB");
}

#[tokio::test]
async fn a_server_that_drips_an_update_is_dropped() {
    let addr = hostile(|mut s| async move {
        rfb_greeting(&mut s, &[2], 64, 48).await;
        let mut update = vec![0u8, 0, 0, 1];
        for v in [0u16, 0, 64, 48] {
            update.extend_from_slice(&v.to_be_bytes());
        }
        update.extend_from_slice(&0i32.to_be_bytes());
        let _ = s.write_all(&update).await;
        // One pixel byte a second: the update would take hours.
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s.write_all(&[1]).await.is_err() {
                return;
            }
        }
    })
    .await;
    let started = Instant::now();
    let client = RfbClient::connect(addr, Some("secret12"), Duration::from_secs(5))
        .await
        .unwrap();
    let dead = client.first_frame(Duration::from_secs(30)).await;
    assert!(dead.is_err());
    assert!(!client.is_alive());
    assert!(started.elapsed() < Duration::from_secs(25));
}

fn exec_client(addr: SocketAddr) -> ExecClient {
    ExecClient::new(addr, "secret".into(), Arc::new(Activity::default()))
}

fn shell(command: &str) -> Command {
    Command {
        command: command.into(),
        cwd: None,
        env: vec![],
        timeout_ms: Some(1_000),
    }
}

#[tokio::test]
async fn an_endless_exec_reply_is_cut_off_at_its_bound() {
    let addr = hostile(|mut s| async move {
        let chunk = vec![b'a'; 1 << 20];
        while s.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let before = peak_rss_kib();
    let err = exec_client(addr).run(shell("true")).await.unwrap_err();
    let HostError::Failed(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("longer than"), "{message}");
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(grown_mib < 64, "peak memory grew by {grown_mib} MiB");
}

#[tokio::test]
async fn a_silent_exec_service_times_out() {
    let addr = hostile(|mut s| async move {
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let err = exec_client(addr).ping().await.unwrap_err();
    assert!(matches!(err, HostError::Timeout(_)), "{err:?}");
}

/// Runs the bridge between an in-memory browser and a loopback desktop
/// that records what reaches it.
async fn bridge_with(
    browser: Vec<Vec<u8>>,
    control: bool,
) -> (Result<(), bridge::BridgeError>, Vec<u8>, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let desktop = TcpStream::connect(addr).await.unwrap();
    let (mut remote, _) = listener.accept().await.unwrap();
    let received = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = remote.read_to_end(&mut all).await;
        all
    });
    let init = ServerInit {
        width: 64,
        height: 48,
        pixel_format: [0; 16],
        name: b"t".to_vec(),
    };
    let mut frames = vec![b"RFB 003.008\n".to_vec(), vec![1], vec![1]];
    frames.extend(browser);
    let inputs = Arc::new(AtomicUsize::new(0));
    let counted = inputs.clone();
    let result = bridge::run(
        futures_util::stream::iter(frames),
        futures_util::sink::drain::<Vec<u8>>(),
        desktop,
        &init,
        move || control,
        move || {
            counted.fetch_add(1, Ordering::SeqCst);
        },
    )
    .await;
    (
        result,
        received.await.unwrap(),
        inputs.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn the_bridge_refuses_a_huge_clipboard_and_never_forwards_a_resize() {
    // 2 GiB of clipboard announced: refused from the header alone.
    let (result, received, _) = bridge_with(vec![vec![6, 0, 0, 0, 0x80, 0, 0, 0]], true).await;
    assert!(
        matches!(result, Err(bridge::BridgeError::ClipboardTooLarge(_))),
        "{result:?}"
    );
    assert!(received.is_empty());

    // A person with control: pointer events pass and count as activity;
    // a resize is dropped.
    let resize = vec![
        251, 0, 2, 128, 1, 224, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let pointer = vec![5, 1, 0, 10, 0, 20];
    let (_, received, inputs) = bridge_with(vec![resize.clone(), pointer.clone()], true).await;
    assert_eq!(received, pointer);
    assert_eq!(inputs, 1);

    // A viewer: neither input nor clipboard reaches the desktop.
    let cut = vec![6, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'];
    let (_, received, inputs) = bridge_with(vec![pointer, cut, resize], false).await;
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(inputs, 0);
}

fn confined_config(owner: &str) -> SandboxConfig {
    SandboxConfig {
        owner: format!("agenthost-test-{owner}"),
        ..SandboxConfig::default()
    }
}

async fn iptables_rules(chain: &str) -> String {
    let out = tokio::process::Command::new("iptables")
        .args(["-S", chain])
        .output()
        .await
        .expect("iptables runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_is_confined_and_cannot_touch_its_desktop_server() {
    let docker = Docker::connect(confined_config("confined"))
        .await
        .expect("Docker must be running (scripts/setup.sh starts it)");
    docker.reap().await.unwrap();
    let sandbox = docker.start().await.expect("sandbox starts");

    // The container: what Docker says it runs with.
    let hc = docker.host_config(&sandbox.id).await.unwrap();
    assert_eq!(hc.cap_drop.as_deref(), Some(&["ALL".to_string()][..]));
    let mut added = hc.cap_add.clone().unwrap_or_default();
    added.sort();
    assert_eq!(added, ["SETGID", "SETUID"]);
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.init, Some(true));
    let tmpfs = hc.tmpfs.clone().unwrap_or_default();
    for path in ["/tmp", "/home/agent", "/run"] {
        assert!(tmpfs[path].contains("size="), "{path}: {tmpfs:?}");
    }
    let nofile = hc.ulimits.clone().unwrap_or_default();
    assert!(nofile
        .iter()
        .any(|u| u.name.as_deref() == Some("nofile") && u.hard == Some(4096)));
    assert!(hc
        .security_opt
        .unwrap_or_default()
        .contains(&"no-new-privileges".to_string()));

    // The network: its own bridge, inter-container traffic off, never the
    // default bridge.
    let names = docker.network_names();
    assert_eq!(hc.network_mode.as_deref(), Some(names.network.as_str()));
    let net = docker.inspect_network(&names.network).await.unwrap();
    let options = net.options.unwrap_or_default();
    assert_eq!(options["com.docker.network.bridge.enable_icc"], "false");
    assert_eq!(options["com.docker.network.bridge.name"], names.bridge);
    let containers = net.containers.unwrap_or_default();
    assert!(containers.contains_key(&sandbox.id));

    // The egress rules, read back from iptables (no traffic is sent).
    let forward = iptables_rules(&names.forward_chain).await;
    for range in BLOCKED_RANGES {
        assert!(
            forward.contains(&format!("-d {range} -j DROP")),
            "{range} not dropped:\n{forward}"
        );
    }
    let input = iptables_rules(&names.input_chain).await;
    assert!(input.trim_end().ends_with("-j DROP"), "{input}");
    let jumps = iptables_rules("DOCKER-USER").await;
    assert!(
        jumps.contains(&format!("-i {} -j {}", names.bridge, names.forward_chain)),
        "{jumps}"
    );

    // From inside: the agent is `agent` with no capabilities, cannot stop
    // or replace Xvnc, cannot read the VNC password, cannot write the root
    // filesystem; its home is writable.
    let run = |c: &str| sandbox.exec.run(shell_long(c));
    let out = run("id -un; grep CapEff /proc/self/status").await.unwrap();
    assert!(out.stdout.starts_with("agent\n"), "{}", out.stdout);
    assert!(out.stdout.contains("0000000000000000"), "{}", out.stdout);
    let out = run("pkill -9 Xvnc; echo rc=$?; kill -STOP 1; echo stop=$?")
        .await
        .unwrap();
    assert!(
        out.stdout.contains("rc=1") || out.stdout.contains("rc=2"),
        "{out:?}"
    );
    assert!(out.stdout.contains("stop=1"), "{out:?}");
    let out = run("cat /tmp/.desktop-*/passwd; echo rc=$?").await.unwrap();
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    let out = run("touch /usr/evil; echo rc=$?; touch ~/ok && echo home-ok")
        .await
        .unwrap();
    assert!(
        out.stdout.contains("rc=1") && out.stdout.contains("home-ok"),
        "{out:?}"
    );
    // The display still answers after all that.
    let shot = sandbox.computer.client().await.unwrap();
    assert!(shot.is_alive());
    sandbox.destroy().await.unwrap();
    docker.teardown_network().await;
    assert!(iptables_rules(&names.forward_chain).await.is_empty());
}

fn shell_long(command: &str) -> Command {
    Command {
        timeout_ms: Some(20_000),
        ..shell(command)
    }
}

/// The session's stored events, as the API returns them.
async fn stored_events(host: &TestHost, token: &str, id: &str) -> Vec<Value> {
    let (_, body) = host
        .call("GET", &format!("/api/v1/sessions/{id}/events"), token, None)
        .await;
    body["events"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) until the session's stored status is `status`.
async fn wait_status(host: &TestHost, token: &str, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, s) = host
            .call("GET", &format!("/api/v1/sessions/{id}"), token, None)
            .await;
        if s["status"] == status {
            return;
        }
        if Instant::now() >= deadline {
            let events = stored_events(host, token, id).await;
            panic!("never {status}: {s}\nevents: {events:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn per_user_caps_refuse_with_429_and_lose_nothing() {
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.sandbox.max_running = 4;
        c.quotas.running_per_user = Some(1);
        c.quotas.tokens_per_day = 1_000;
    })
    .await;
    let alice = host.token("cap-alice").await;
    let bob = host.token("cap-bob").await;
    // Alice: two busy sessions hold her two desktops.
    let s1 = host
        .create_session(&alice, json!({"message": "run `sleep 60`"}))
        .await;
    let s2 = host.create_session(&alice, json!({})).await;
    let s2_id = s2["id"].as_str().unwrap();
    // Her running cap is 1: the second run is refused and nothing stored.
    let (status, body) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{s2_id}/messages"),
            &alice,
            Some(json!({"text": "run `true`"})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_running");
    let (_, events) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{s2_id}/events"),
            &alice,
            None,
        )
        .await;
    assert!(
        !events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "user_message"),
        "{events}"
    );
    // At her sandbox cap (half of 4), a new session takes the desktop of
    // her idle one rather than being refused...
    let s3 = host.create_session(&alice, json!({})).await;
    let s3_id = s3["id"].as_str().unwrap().to_string();
    // ...but desktops in use (a run, a person in control) are never taken:
    // then a new session is a 429 and nothing is created.
    let (status, _) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{s3_id}/takeover"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let (_, before) = host.call("GET", "/api/v1/sessions", &alice, None).await;
    let (status, body) = host
        .call("POST", "/api/v1/sessions", &alice, Some(json!({})))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_sandboxes");
    let (_, after) = host.call("GET", "/api/v1/sessions", &alice, None).await;
    assert_eq!(
        before["sessions"].as_array().unwrap().len(),
        after["sessions"].as_array().unwrap().len()
    );
    // Bob is not starved by Alice.
    host.create_session(&bob, json!({})).await;

    // The daily token cap: spent is spent, until tomorrow.
    host.server()
        .state()
        .store
        .add_user_tokens("cap-bob", 1_000)
        .await
        .unwrap();
    let res = host
        .http
        .post(host.url("/api/v1/sessions"))
        .bearer_auth(&bob)
        .json(&json!({"message": "run `true`"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_tokens");

    let (_, bobs) = host.call("GET", "/api/v1/sessions", &bob, None).await;
    assert_eq!(bobs["sessions"].as_array().unwrap().len(), 1, "{bobs}");
    let s1_id = s1["id"].as_str().unwrap();
    host.call(
        "POST",
        &format!("/api/v1/sessions/{s1_id}/cancel"),
        &alice,
        None,
    )
    .await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_are_evicted_so_sessions_outnumber_plugin_instances() {
    // Room for 3 live plugin instances; 6 sessions each keep a policy
    // instance after their run unless evicted.
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.limits.instances = 3;
        c.agent.evict_idle_secs = 1;
        c.sandbox.warm = 0;
        c.quotas.sandboxes_per_user = Some(4);
    })
    .await;
    let token = host.token("evict").await;
    let sessions = &host.server().state().sessions;
    let mut ids = Vec::new();
    for i in 0..6 {
        let s = host
            .create_session(&token, json!({"message": format!("run `echo {i}`")}))
            .await;
        let id = s["id"].as_str().unwrap().to_string();
        wait_status(&host, &token, &id, "idle").await;
        ids.push(id);
        // Evicted once idle with nobody watching.
        let deadline = Instant::now() + Duration::from_secs(30);
        while sessions.live_count() > 0 {
            assert!(Instant::now() < deadline, "never evicted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every run replied; an evicted session comes back from the store.
    for id in &ids {
        let events = stored_events(&host, &token, id).await;
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert!(!kinds.contains(&"error"), "{events:?}");
        assert!(kinds.contains(&"tool_result"), "{events:?}");
    }
    let again = &ids[0];
    host.call(
        "POST",
        &format!("/api/v1/sessions/{again}/messages"),
        &token,
        Some(json!({"text": "run `echo again`"})),
    )
    .await;
    wait_status(&host, &token, again, "idle").await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eviction_pass_never_cuts_a_run_a_queued_message_started() {
    // No background evictor: the test runs the passes itself.
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.agent.evict_idle_secs = 0;
        c.sandbox.warm = 0;
    })
    .await;
    let token = host.token("evict-race").await;
    let sessions = &host.server().state().sessions;
    let s = host.create_session(&token, json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    sessions.evict_idle(Duration::ZERO).await;
    assert_eq!(sessions.live_count(), 0, "an idle session is evicted");

    // The message boots a fresh desktop; while it does, the session still
    // reads idle, and an eviction pass asks the actor to stop.
    let (_, handle) = sessions.open("evict-race", &id).await.unwrap();
    let mut state = handle.state.clone();
    let before = state.borrow_and_update().last_active;
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.user_message("run `echo survived`".into()).await }
    });
    state
        .wait_for(|s| s.last_active > before)
        .await
        .expect("the actor took the message");
    sessions.evict_idle(Duration::ZERO).await;
    sending.await.unwrap().expect("the message was taken");
    assert_eq!(
        sessions.live_count(),
        1,
        "the actor declined: it had a run to do"
    );
    wait_status(&host, &token, &id, "idle").await;
    let events = stored_events(&host, &token, &id).await;
    let outputs: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(outputs.len(), 1, "{events:?}");
    assert!(outputs[0].to_string().contains("survived"), "{events:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_read_only_through_sessions_that_stored_them() {
    let host = TestHost::start(Db::Sqlite).await;
    let alice = host.token("img-alice").await;
    let bob = host.token("img-bob").await;
    let (a_id, mut ws) = host.open_chat(&alice).await;
    ws.send(user_message("take a screenshot")).await;
    let frames = ws.until_status("idle").await;
    let sha = frames
        .iter()
        .find(|f| f["kind"] == "tool_result")
        .and_then(|f| f["payload"]["content"].as_array())
        .and_then(|c| c.iter().find_map(|p| p["sha256"].as_str()))
        .expect("a screenshot")
        .to_string();
    let get = |token: &str, session: &str| {
        let req = host
            .http
            .get(host.url(&format!("/api/v1/sessions/{session}/images/{sha}")))
            .bearer_auth(token.to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(&alice, &a_id).await, 200);
    let b = host.create_session(&bob, json!({})).await;
    let b_id = b["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&bob, &b_id).await,
        404,
        "knowing the hash is not enough"
    );
    drop(ws);
    host.call("DELETE", &format!("/api/v1/sessions/{a_id}"), &alice, None)
        .await;
    let store = &host.server().state().store;
    assert!(store.image(&a_id, &sha).await.is_err());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_and_expired_tokens_close_their_sockets_and_readyz_keeps_details_for_operators() {
    let host = TestHost::start(Db::Sqlite).await;
    let admin = host.admin_token("ops").await;
    let user = host.token("tok-user").await;
    let (_, mut ws) = host.open_chat(&user).await;
    let (status, list) = host.call("GET", "/api/v1/tokens", &admin, None).await;
    assert_eq!(status, 200);
    let id = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_id"] == "tok-user")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!list.to_string().contains(&user), "tokens are never listed");
    let (status, _) = host.call("GET", "/api/v1/tokens", &user, None).await;
    assert_eq!(status, 403);
    let (status, _) = host
        .call("DELETE", &format!("/api/v1/tokens/{id}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let closing = ws.until(|f| f["kind"] == "error").await;
    assert_eq!(closing.last().unwrap()["payload"]["code"], "token_revoked");
    assert!(ws.next().await.is_none(), "closed");
    let (status, _) = host.call("GET", "/api/v1/sessions", &user, None).await;
    assert_eq!(status, 401);

    // A token that expires while its socket is open.
    let other = host.token("tok-other").await;
    let s = host.create_session(&other, json!({})).await;
    let store = &host.server().state().store;
    let soon = store
        .create_token(
            "tok-other",
            "short",
            Some(agenthost::store::now_ms() + 3_000),
            false,
        )
        .await
        .unwrap();
    let mut ws = host.ws(&soon, s["id"].as_str().unwrap(), 0).await;
    let closing = ws.until(|f| f["kind"] == "error").await;
    assert_eq!(closing.last().unwrap()["payload"]["code"], "token_expired");

    // /readyz: the verdict for anyone, the details for operators.
    let anon: Value = host.get_json("/readyz").await;
    assert_eq!(anon.as_object().unwrap().len(), 1, "{anon}");
    let (_, detailed) = host.call("GET", "/readyz", &admin, None).await;
    assert!(detailed["store"]["ok"].is_boolean(), "{detailed}");
    host.stop().await;
}

/// Every tool call in the log has exactly one result, after it (policies
/// may reuse call ids across runs, so a call is matched to the next
/// result that names it).
fn calls_answered_once(events: &[Value]) -> Result<(), String> {
    let mut open = std::collections::HashSet::<String>::new();
    for e in events {
        match e["kind"].as_str() {
            Some("tool_call") => {
                let id = e["payload"]["id"].as_str().unwrap_or_default();
                if !open.insert(id.to_string()) {
                    return Err(format!("call {id} again before its result: {e}"));
                }
            }
            Some("tool_result") => {
                let id = e["payload"]["tool_use_id"].as_str().unwrap_or_default();
                if !open.remove(id) {
                    return Err(format!("a result without an open call: {e}"));
                }
            }
            _ => {}
        }
    }
    match open.iter().next() {
        Some(id) => Err(format!("call {id} has no result")),
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_at_random_moments_leaves_every_call_answered_once() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token("canceller").await;
    let (id, _ws) = host.open_chat(&token).await;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let (status, body) = host
            .call(
                "POST",
                &format!("/api/v1/sessions/{id}/messages"),
                &token,
                Some(json!({"text": "run `echo a` then take a screenshot then run `sleep 0.05`"})),
            )
            .await;
        assert_eq!(status, 202, "round {round}: {body}");
        tokio::time::sleep(Duration::from_micros(rng % 150_000)).await;
        host.call(
            "POST",
            &format!("/api/v1/sessions/{id}/cancel"),
            &token,
            None,
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, s) = host
                .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
                .await;
            if s["status"] != "running" {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let events = host
        .server()
        .state()
        .store
        .events_after(&id, 0, 100_000)
        .await
        .unwrap();
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    calls_answered_once(&events).unwrap();
    // And the session still works.
    host.call(
        "POST",
        &format!("/api/v1/sessions/{id}/messages"),
        &token,
        Some(json!({"text": "run `echo done`"})),
    )
    .await;
    wait_status(&host, &token, &id, "idle").await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_under_load_leaves_no_container() {
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.sandbox.warm = 2;
        c.quotas.sandboxes_per_user = Some(8);
    })
    .await;
    let owner = host.config.sandbox.owner.clone();
    let token = host.token("loaded").await;
    let url = host.url("/api/v1/sessions");
    let mut load = Vec::new();
    for _ in 0..6 {
        let (http, url, token) = (host.http.clone(), url.clone(), token.clone());
        load.push(tokio::spawn(async move {
            let _ = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"message": "run `sleep 30`"}))
                .send()
                .await;
        }));
    }
    // Stop while creates, claims and boots are in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.stop().await;
    for l in load {
        let _ = l.await;
    }
    let docker = Docker::connect(SandboxConfig {
        owner,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(docker.list_owned().await.unwrap(), Vec::<String>::new());
}
