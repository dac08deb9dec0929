//! The sessions server end to end: a real host on loopback, real sandboxes
//! on Docker, SQLite and PostgreSQL, the scripted policy. Each test drives
//! it the way the chat page does: REST to create, WebSocket to talk.

use agenthost_tests::server::{is_status, stored, unique, user_message, Db, TestHost};
use base64::Engine as _;
use futures_util::SinkExt;
use serde_json::{json, Value};

fn kinds(frames: &[&Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

fn seqs(frames: &[&Value]) -> Vec<i64> {
    frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect()
}

/// Reference sequence 1: create, connect, ask, watch tool calls with
/// screenshots, replay after reconnecting. On both databases.
async fn end_to_end(db: Db) {
    let host = TestHost::start(db).await;
    let alice = agenthost_tests::server::unique("alice");
    let token = host.token(&alice).await;
    let session = host.create_session(&token, json!({"title": "demo"})).await;
    let id = session["id"].as_str().unwrap();
    assert_eq!(session["policy"], "scripted-policy");
    assert_eq!(session["status"], "idle");

    // A client that never reads must not hold the session back.
    let _stuck = host.ws(&token, id, 0).await;

    let mut ws = host.ws(&token, id, 0).await;
    let snapshot = ws.next().await.unwrap();
    assert_eq!(snapshot["kind"], "snapshot");
    assert_eq!(snapshot["session"]["id"], id);
    ws.send(user_message(
        "run `echo hello-from-sandbox` then take a screenshot",
    ))
    .await;
    let frames = ws.until_status("idle").await;
    let events = stored(&frames);
    assert_eq!(seqs(&events), (1..=events.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        kinds(&events),
        [
            "user_message",
            "state_changed",
            "assistant_message",
            "tool_call",
            "tool_result",
            "assistant_message",
            "tool_call",
            "tool_result",
            "assistant_message",
            "state_changed"
        ]
    );
    let bash = events[4];
    assert_eq!(bash["payload"]["is_error"], false);
    assert_eq!(
        bash["payload"]["content"][0]["text"],
        "hello-from-sandbox\n"
    );
    let shot = &events[7]["payload"]["content"][0];
    assert_eq!(shot["type"], "image", "{shot}");
    let sha = shot["sha256"].as_str().unwrap();

    // The screenshot is stored once and served by reference.
    let png = host
        .http
        .get(host.url(&format!("/api/v1/sessions/{id}/images/{sha}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    // Reconnecting with a cursor gives each later event exactly once.
    let last = events.last().unwrap()["seq"].as_i64().unwrap();
    let mut again = host.ws(&token, id, 4).await;
    assert_eq!(again.next().await.unwrap()["kind"], "snapshot");
    let mut replayed = Vec::new();
    for _ in 5..=last {
        replayed.push(again.next().await.unwrap());
    }
    let replayed: Vec<&Value> = replayed.iter().collect();
    assert_eq!(seqs(&replayed), (5..=last).collect::<Vec<_>>());
    for (a, b) in replayed.iter().zip(&events[4..]) {
        assert_eq!(*a, *b, "replay equals the live stream");
    }

    // Both clients see the same live stream of a new turn.
    ws.send(user_message("run `true`")).await;
    let a = ws.until_status("idle").await;
    let b = again.until_status("idle").await;
    assert_eq!(stored(&a), stored(&b));

    // The REST log agrees, paged by cursor.
    let (status, page) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{id}/events?after=0&limit=3"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_cursor"], 3);
    assert_eq!(page["has_more"], true);
    let (_, got) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(got["title"], "demo");
    assert_eq!(got["status"], "idle");
    assert!(got["sandbox"].is_string());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn end_to_end_on_sqlite() {
    end_to_end(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn end_to_end_on_postgres() {
    end_to_end(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_only_see_their_own_sessions() {
    let host = TestHost::start(Db::Sqlite).await;
    let alice = host.token("alice").await;
    let bob = host.token("bob").await;
    let session = host.create_session(&alice, json!({})).await;
    let id = session["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", format!("/api/v1/sessions/{id}"), None),
        ("GET", format!("/api/v1/sessions/{id}/events"), None),
        (
            "POST",
            format!("/api/v1/sessions/{id}/messages"),
            Some(json!({"text": "run `id`"})),
        ),
        ("POST", format!("/api/v1/sessions/{id}/cancel"), None),
        (
            "PUT",
            format!("/api/v1/sessions/{id}/policy"),
            Some(json!({"policy": "scripted-policy"})),
        ),
        ("DELETE", format!("/api/v1/sessions/{id}"), None),
    ] {
        let (status, body) = host.call(method, &path, &bob, body).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (_, list) = host.call("GET", "/api/v1/sessions", &bob, None).await;
    assert_eq!(list["sessions"], json!([]));
    let (_, list) = host.call("GET", "/api/v1/sessions", &alice, None).await;
    assert_eq!(list["sessions"][0]["id"], id);

    // The WebSocket checks too, before upgrading.
    let url = format!("ws://{}/api/v1/sessions/{id}/ws", host.server().addr);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {bob}").parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // Missing, unknown and expired tokens.
    let res = host
        .http
        .get(host.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = host.call("GET", "/api/v1/sessions", "aht_nope", None).await;
    assert_eq!(status, 401);
    let expired = host
        .server()
        .state()
        .store
        .create_token("alice", "old", Some(1), false)
        .await
        .unwrap();
    let (status, body) = host.call("GET", "/api/v1/sessions", &expired, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // A browser authenticates in its first message; a wrong token is told so.
    let url = format!("ws://{}/api/v1/sessions/{id}/ws", host.server().addr);
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let mut ws = agenthost_tests::server::Ws { socket };
    ws.send(json!({"type": "auth", "token": "aht_wrong"})).await;
    let frame = ws.next().await.unwrap();
    assert_eq!(frame["payload"]["code"], "unauthorized");
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let mut ws = agenthost_tests::server::Ws { socket };
    ws.send(json!({"type": "auth", "token": alice})).await;
    assert_eq!(ws.next().await.unwrap()["kind"], "snapshot");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_loses_nothing() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token("carol").await;
    let (id, mut ws) = host.open_chat(&token).await;
    let id = id.as_str();
    ws.send(user_message("run `echo kept`")).await;
    let before = stored(&ws.until_status("idle").await).len();

    let post = |body: &'static str| {
        host.http
            .post(host.url(&format!("/api/v1/sessions/{id}/messages")))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
    };
    let res = post("{not json").send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let res = post(r#"{"text": "hi", "extra": 1}"#).send().await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_body"
    );

    let huge = "x".repeat(100 << 10);
    let (status, body) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/messages"),
            &token,
            Some(json!({"text": huge})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("message_too_large"))
    );
    let (status, body) = host
        .call(
            "PUT",
            &format!("/api/v1/sessions/{id}/policy"),
            &token,
            Some(json!({"policy": "no-such-policy"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_policy"))
    );
    let (status, body) = host
        .call(
            "PUT",
            &format!("/api/v1/sessions/{id}/policy"),
            &token,
            Some(json!({"policy": "bash"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("not_a_policy"))
    );
    let (status, body) = host
        .call("GET", "/api/v1/sessions/ses_unknown", &token, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = host.call("GET", "/api/v1/nowhere", &token, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = host
        .call("GET", "/api/v1/sessions?limit=0", &token, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (status, body) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/pause"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );

    // Over the WebSocket: not JSON, an unknown type, a bad field.
    for (raw, code) in [
        ("hello", "invalid_message"),
        (r#"{"type": "dance"}"#, "invalid_message"),
        (
            r#"{"type": "user_message", "txt": "typo"}"#,
            "invalid_message",
        ),
    ] {
        ws.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(raw.into()))
            .await
            .unwrap();
        let frame = ws.next().await.unwrap();
        assert_eq!(frame["kind"], "error", "{raw}");
        assert_eq!(frame["payload"]["code"], code, "{raw}");
        assert!(frame.get("seq").is_none(), "a protocol error is not stored");
    }
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await.unwrap()["kind"], "pong");

    // Finish the session; resuming it is refused, a follow-up starts a
    // new run over the whole history.
    ws.send(user_message("done")).await;
    ws.until_status("finished").await;
    let (status, body) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/resume"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (status, _) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/messages"),
            &token,
            Some(json!({"text": "more"})),
        )
        .await;
    assert_eq!(status, 202, "a finished session takes a follow-up");
    let frames = ws.until_status("idle").await;
    assert!(
        stored(&frames)
            .iter()
            .any(|e| e["kind"] == "user_message" && e["payload"]["text"] == "more"),
        "{frames:?}"
    );

    // Nothing stored was lost or added by the bad input.
    let (_, page) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{id}/events?limit=1000"),
            &token,
            None,
        )
        .await;
    let all = page["events"].as_array().unwrap();
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // "done": the message, running, the closing text, finished; the
    // follow-up "more": the message, running, the reply, idle.
    assert_eq!(all.len(), before + 8, "{kinds:?}");
    assert!(!kinds.contains(&"error"), "{kinds:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_tool_and_the_session_carries_on() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token("dave").await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("run `sleep 600`")).await;
    ws.until(|f| f["kind"] == "tool_call").await;
    ws.send(json!({"type": "cancel"})).await;
    let frames = ws.until_status("idle").await;
    let events = stored(&frames);
    let result = events
        .iter()
        .find(|e| e["kind"] == "tool_result")
        .expect("the open call is closed");
    assert_eq!(result["payload"]["is_error"], true);
    assert_eq!(
        result["payload"]["content"][0]["text"],
        "cancelled by the user"
    );
    assert_eq!(events.last().unwrap()["payload"]["reason"], "cancelled");

    ws.send(user_message("run `echo after`")).await;
    let frames = ws.until_status("idle").await;
    let result = stored(&frames)
        .into_iter()
        .find(|e| e["kind"] == "tool_result")
        .unwrap()
        .clone();
    assert_eq!(result["payload"]["content"][0]["text"], "after\n");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_mid_session_brings_it_back_paused_with_its_history() {
    let mut host = TestHost::start(Db::Postgres).await;
    let token = host.token(&agenthost_tests::server::unique("erin")).await;
    let session = host.create_session(&token, json!({})).await;
    let id = session["id"].as_str().unwrap().to_string();
    let mut ws = host.ws(&token, &id, 0).await;
    ws.next().await.unwrap();
    ws.send(user_message("run `echo one` then run `sleep 600`"))
        .await;
    ws.until(|f| {
        f["kind"] == "tool_call" && f["payload"]["input"].as_str().unwrap().contains("sleep")
    })
    .await;

    host.restart().await;
    // The old socket is closed by the stop.
    while ws.next().await.is_some() {}

    let (_, got) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(got["status"], "paused", "{got}");
    let mut ws = host.ws(&token, &id, 0).await;
    assert_eq!(ws.next().await.unwrap()["session"]["status"], "paused");
    let frames = ws.until(|f| is_status(f, "paused")).await;
    let events = stored(&frames);
    assert_eq!(seqs(&events), (1..=events.len() as i64).collect::<Vec<_>>());
    let results: Vec<&&Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(results[0]["payload"]["content"][0]["text"], "one\n");
    assert_eq!(
        results[1]["payload"]["content"][0]["text"],
        "interrupted: the host restarted"
    );
    assert_eq!(
        events.last().unwrap()["payload"]["reason"],
        "host restarted"
    );

    // Resumable without anyone editing state: the policy sees the interrupted step.
    ws.send(json!({"type": "resume"})).await;
    let frames = ws.until(|f| is_status(f, "idle")).await;
    let reply = stored(&frames)
        .into_iter()
        .find(|e| e["kind"] == "assistant_message")
        .unwrap()
        .clone();
    assert!(
        reply["payload"]["text"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{reply}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_swap_mid_session_takes_effect_at_the_next_step() {
    let host = TestHost::start(Db::Sqlite).await;
    let admin = host.admin_token("ops").await;
    let token = host.token("frank").await;

    // A second policy: the scripted one under another name, uploaded.
    let (bytes, _) = agenthost_tests::component("scripted-policy");
    let manifest = "name = \"scripted-b\"\nversion = \"0.2.0\"\nkind = \"policy\"\ndescription = \"b\"\ncapabilities = []\n";
    upload(&host, &admin, bytes.clone(), manifest).await;

    // An upload that fails validation changes nothing; a user may not upload.
    let (_, before) = host.call("GET", "/api/v1/policies", &token, None).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(b"not wasm".to_vec()),
        )
        .text("manifest", manifest.replace("0.2.0", "0.3.0"));
    let res = host
        .http
        .post(host.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "not_wasm"
    );
    let (_, after) = host.call("GET", "/api/v1/policies", &token, None).await;
    assert_eq!(before, after);
    let form =
        reqwest::multipart::Form::new().part("component", reqwest::multipart::Part::bytes(bytes));
    let res = host
        .http
        .post(host.url("/api/v1/plugins"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let (id, mut ws) = host.open_chat(&token).await;
    let id = id.as_str();
    ws.send(user_message("run `sleep 1` then run `echo two`"))
        .await;
    ws.until(|f| f["kind"] == "tool_call").await;
    ws.send(json!({"type": "switch_policy", "policy": "scripted-b"}))
        .await;
    let frames = ws.until_status("idle").await;
    let events = stored(&frames);
    let k = kinds(&events);
    let switched = k
        .iter()
        .position(|k| k == "policy_switched")
        .expect("switch recorded");
    let second_call = k.iter().rposition(|k| k == "tool_call").unwrap();
    assert!(
        switched < second_call,
        "switch happens before the next step: {k:?}"
    );
    assert_eq!(events[switched]["payload"]["from"], "scripted-policy");
    assert_eq!(events[switched]["payload"]["to"], "scripted-b");
    assert_eq!(events[switched]["payload"]["version"], "0.2.0");
    assert_eq!(
        k.iter().filter(|k| *k == "tool_result").count(),
        2,
        "no step lost or repeated: {k:?}"
    );
    let (_, got) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(got["policy"], "scripted-b");

    // While idle, a switch applies at once.
    let (status, got) = host
        .call(
            "PUT",
            &format!("/api/v1/sessions/{id}/policy"),
            &token,
            Some(json!({"policy": "scripted-policy"})),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(got["policy"], "scripted-policy");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_manage_plugins_and_grants_take_effect() {
    // A warm desktop, for what `/readyz` tells operators about the pool.
    let host = TestHost::start_with(Db::Sqlite, |c| c.sandbox.warm = 1).await;
    let admin = host.admin_token("ops").await;
    let token = host.token("judy").await;
    let (status, list) = host.call("GET", "/api/v1/plugins", &token, None).await;
    assert_eq!(status, 200);
    let bash = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bash")
        .unwrap();
    assert_eq!(bash["granted"], json!(["shell"]));

    // Revoking the shell grant denies the next call, with a message that
    // says which grant is missing; granting it back restores it.
    let (status, _) = host
        .call(
            "POST",
            "/api/v1/plugins/bash/grants",
            &token,
            Some(json!({"revoke": ["shell"]})),
        )
        .await;
    assert_eq!(status, 403, "users cannot change grants");
    let (status, bash) = host
        .call(
            "POST",
            "/api/v1/plugins/bash/grants",
            &admin,
            Some(json!({"revoke": ["shell"]})),
        )
        .await;
    assert_eq!((status, bash["granted"].clone()), (200, json!([])));
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("run `echo no`")).await;
    let frames = ws.until_status("idle").await;
    let result = stored(&frames)
        .into_iter()
        .find(|e| e["kind"] == "tool_result")
        .unwrap()
        .clone();
    assert_eq!(result["payload"]["is_error"], true);
    assert!(
        result["payload"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("shell"),
        "{result}"
    );
    let (status, _) = host
        .call(
            "POST",
            "/api/v1/plugins/bash/grants",
            &admin,
            Some(json!({"grant": ["shell"], "revoke": ["warp-drive"]})),
        )
        .await;
    assert_eq!(status, 422, "an unknown capability changes nothing");
    host.call(
        "POST",
        "/api/v1/plugins/bash/grants",
        &admin,
        Some(json!({"grant": ["shell"]})),
    )
    .await;
    ws.send(user_message("run `echo yes`")).await;
    let frames = ws.until_status("idle").await;
    let result = stored(&frames)
        .into_iter()
        .find(|e| e["kind"] == "tool_result")
        .unwrap()
        .clone();
    assert_eq!(result["payload"]["content"][0]["text"], "yes\n");

    // Policies, rollback with nothing to roll back to, removal.
    let (_, policies) = host.call("GET", "/api/v1/policies", &token, None).await;
    assert_eq!(policies["default"], "scripted-policy");
    let names: Vec<&str> = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"anthropic-policy") && names.contains(&"openai-policy"),
        "{names:?}"
    );
    let (status, body) = host
        .call("POST", "/api/v1/plugins/bash/rollback", &admin, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("no_previous_version"))
    );
    let (status, _) = host
        .call("DELETE", "/api/v1/plugins/openai-policy", &token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = host
        .call("DELETE", "/api/v1/plugins/openai-policy", &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = host
        .call("GET", "/api/v1/plugins/openai-policy", &token, None)
        .await;
    assert_eq!(status, 404);

    // The API describes itself.
    let doc: Value = host.get_json("/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/{id}/ws",
        "/api/v1/sessions/{id}/events",
        "/api/v1/plugins/{name}/grants",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    let pool = host.server().state().pool.clone().expect("Docker is up");
    pool.wait_warm(1, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    // Details are for operators (anyone else learns only ready or not).
    let ready = host
        .http
        .get(host.url("/readyz"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        (
            ready["store"]["ok"].as_bool(),
            ready["docker"]["ok"].as_bool()
        ),
        (Some(true), Some(true))
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_step_limit_pauses_and_resume_continues() {
    let host = TestHost::start_with(Db::Sqlite, |c| c.agent.max_steps = 2).await;
    let token = host.token("kim").await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message(
        "run `echo 1` then run `echo 2` then run `echo 3`",
    ))
    .await;
    let frames = ws.until_status("paused").await;
    let events = stored(&frames);
    let error = events.iter().find(|e| e["kind"] == "error").unwrap();
    assert_eq!(error["payload"]["code"], "step_limit");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "tool_result").count(),
        2
    );

    ws.send(json!({"type": "resume"})).await;
    let frames = ws.until_status("idle").await;
    let results: Vec<&Value> = stored(&frames)
        .into_iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["payload"]["content"][0]["text"], "3\n");
    host.stop().await;
}

/// Uploads a component with a manifest, as an operator.
async fn upload(host: &TestHost, admin: &str, bytes: Vec<u8>, manifest: &str) {
    let form = reqwest::multipart::Form::new()
        .part("component", reqwest::multipart::Part::bytes(bytes))
        .text("manifest", manifest.to_string());
    let res = host
        .http
        .post(host.url("/api/v1/plugins"))
        .bearer_auth(admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

/// Sends a message and returns the agent's last reply once it is idle.
async fn reply_to(ws: &mut agenthost_tests::server::Ws, text: &str) -> String {
    ws.send(user_message(text)).await;
    let frames = ws.until_status("idle").await;
    stored(&frames)
        .iter()
        .rev()
        .find(|e| e["kind"] == "assistant_message")
        .and_then(|e| e["payload"]["text"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_drops_the_old_policys_state_whether_idle_or_running() {
    let host = TestHost::start(Db::Sqlite).await;
    let admin = host.admin_token("ops").await;
    let token = host.token("grace").await;
    let (bytes, _) = agenthost_tests::component("scripted-policy");
    upload(
        &host,
        &admin,
        bytes,
        "name = \"scripted-b\"\nversion = \"0.2.0\"\nkind = \"policy\"\ncapabilities = []\n",
    )
    .await;
    let (id, mut ws) = host.open_chat(&token).await;

    assert_eq!(reply_to(&mut ws, "remember alpha").await, "Remembered.");
    assert_eq!(reply_to(&mut ws, "recall").await, "I remember: alpha");

    // Idle: the switch applies at once, and the new policy starts empty.
    let (status, _) = host
        .call(
            "PUT",
            &format!("/api/v1/sessions/{id}/policy"),
            &token,
            Some(json!({"policy": "scripted-b"})),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(reply_to(&mut ws, "recall").await, "I remember nothing.");

    // Running: the switch waits for the step to end, and the policy that
    // takes over mid-run starts empty too.
    assert_eq!(reply_to(&mut ws, "remember beta").await, "Remembered.");
    ws.send(user_message("run `sleep 1`")).await;
    ws.until(|f| f["kind"] == "tool_call").await;
    ws.send(json!({"type": "switch_policy", "policy": "scripted-policy"}))
        .await;
    let frames = ws.until_status("idle").await;
    let k = kinds(&stored(&frames));
    let switched = k.iter().position(|k| k == "policy_switched");
    let result = k.iter().position(|k| k == "tool_result");
    assert!(
        switched.is_some() && result.is_some(),
        "the switch was made during the run: {k:?}"
    );
    assert_eq!(reply_to(&mut ws, "recall").await, "I remember nothing.");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_built_against_wit_0_1_0_runs_a_session() {
    let host = TestHost::start(Db::Sqlite).await;
    let admin = host.admin_token("ops").await;
    let token = host.token("heidi").await;
    let (bytes, manifest) = agenthost_tests::component("v0-1-policy");
    upload(&host, &admin, bytes, &manifest.to_toml()).await;
    let (id, mut ws) = host.open_chat(&token).await;
    let (status, _) = host
        .call(
            "PUT",
            &format!("/api/v1/sessions/{id}/policy"),
            &token,
            Some(json!({"policy": "v0-1-policy"})),
        )
        .await;
    assert_eq!(status, 202);

    // A bash call on the sandbox, decided by a 0.1.0 policy and run by the
    // 0.2.0 bash tool.
    let reply = reply_to(&mut ws, "run echo from-the-old-contract").await;
    assert_eq!(reply, "output: from-the-old-contract\n");
    // 0.1.0's empty act is still a reply.
    assert_eq!(reply_to(&mut ws, "say hello").await, "hello");
    assert_eq!(reply_to(&mut ws, "remember gamma").await, "remembered");
    assert_eq!(reply_to(&mut ws, "recall").await, "state: gamma");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_a_request_id_the_client_may_choose() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token("reqid").await;
    let request_id = |path: &str, chosen: Option<&'static str>| {
        let mut req = host.http.get(host.url(path)).bearer_auth(&token);
        if let Some(id) = chosen {
            req = req.header("x-request-id", id);
        }
        async move {
            let response = req.send().await.unwrap();
            let id = response.headers()["x-request-id"].to_str().unwrap();
            (response.status().as_u16(), id.to_string())
        }
    };
    assert_eq!(
        request_id("/api/v1/me", Some("trace-me-42")).await,
        (200, "trace-me-42".to_string())
    );
    let (status, id) = request_id("/api/v1/sessions/ses_nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let (_, doc) = host.call("GET", "/api/v1/openapi.json", &token, None).await;
    assert!(doc["components"]["schemas"]["Event"]["oneOf"].is_array());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_exports_as_json_lines_and_one_html_page() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token(&unique("erin")).await;
    let (id, mut ws) = host.open_chat(&token).await;
    ws.send(user_message(
        "run `echo <b>exported</b>` then take a screenshot",
    ))
    .await;
    ws.until_status("idle").await;
    let session = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await
        .1;

    let (status, content_type, text) = host
        .get_text(&format!("/api/v1/sessions/{id}/export.jsonl"), &token)
        .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/jsonl"),
        "{content_type}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "session");
    assert_eq!(lines[0]["session"]["id"], id.as_str());
    let events: Vec<&Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    assert_eq!(events.len() as i64, session["last_seq"].as_i64().unwrap());
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["event"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let images: Vec<&Value> = lines.iter().filter(|l| l["type"] == "image").collect();
    assert_eq!(images.len(), 1);
    let png = base64::engine::general_purpose::STANDARD
        .decode(images[0]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&png));
    assert_eq!(images[0]["sha256"], sha.as_str());

    let (status, content_type, html) = host
        .get_text(&format!("/api/v1/sessions/{id}/export.html"), &token)
        .await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("data:image/png;base64,"));
    assert!(
        html.contains("&lt;b&gt;exported&lt;/b&gt;"),
        "model and tool text is escaped"
    );
    assert!(!html.contains("<b>exported"));

    // While the host builds as many exports as it allows, another waits
    // its turn as a 429 rather than taking more memory.
    let exports = host.server().state().exports.clone();
    let held = exports
        .acquire_many(agenthost::export::MAX_CONCURRENT as u32)
        .await
        .unwrap();
    let (status, _, body) = host
        .get_text(&format!("/api/v1/sessions/{id}/export.html"), &token)
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("export_busy"), "{body}");
    drop(held);

    // Another user's session does not exist for them.
    let other = host.token(&unique("mallory")).await;
    for format in ["jsonl", "html"] {
        let (status, _, body) = host
            .get_text(&format!("/api/v1/sessions/{id}/export.{format}"), &other)
            .await;
        assert_eq!(status, 404, "{body}");
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_run_is_a_playable_webm_of_the_desktop() {
    let host = TestHost::start_with(Db::Sqlite, |c| c.recording.max_session_mib = 1).await;
    let token = host.token(&unique("rhea")).await;
    let session = host
        .create_session(&token, json!({"settings": {"record_video": true}}))
        .await;
    assert_eq!(session["settings"]["record_video"], true);
    let id = session["id"].as_str().unwrap().to_string();
    let mut ws = host.ws(&token, &id, 0).await;
    ws.send(user_message("type recorded then take a screenshot"))
        .await;
    let frames = ws.until(|f| f["kind"] == "recording_saved").await;
    assert!(
        frames.iter().all(|f| f["kind"] != "error"),
        "no recording error: {frames:?}"
    );
    let saved = frames.last().unwrap()["payload"].clone();
    ws.until_status("idle").await;
    assert_eq!(
        (saved["width"].as_u64(), saved["height"].as_u64()),
        (Some(1280), Some(800))
    );
    let file = saved["file"].as_str().unwrap();
    let path = format!("/api/v1/sessions/{id}/recordings/{file}");

    let res = host
        .http
        .get(host.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "video/webm");
    let bytes = res.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, saved["bytes"].as_u64().unwrap());
    assert_eq!(&bytes[..4], b"\x1a\x45\xdf\xa3", "an EBML (WebM) header");
    // ffprobe (Debian's ffmpeg) reads it as VP8 video of the screen's size.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("run.webm");
    std::fs::write(&copy, &bytes).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-show_entries", "format=duration", "-of", "json"])
        .arg(&copy)
        .output()
        .expect("ffprobe runs");
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "vp8");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(1280), Some(800))
    );
    let decoded: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(decoded >= 2, "first and last picture at least: {probe}");
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(duration > 0.0, "{probe}");

    // A browser seeks with ranges.
    let res = host
        .http
        .get(host.url(&path))
        .bearer_auth(&token)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().len(), 100);

    // Past the session's disk allowance a run is not recorded, and says so.
    let dir = host.data_dir.join("recordings").join(&id);
    std::fs::write(dir.join("1.webm"), vec![0u8; 1 << 20]).unwrap();
    ws.send(user_message("take a screenshot")).await;
    let frames = ws.until_status("idle").await;
    let refused = frames
        .iter()
        .find(|f| f["kind"] == "error")
        .expect("an error event");
    assert_eq!(refused["payload"]["code"], "recording_failed");
    assert!(
        refused["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 1 MiB"),
        "{refused}"
    );
    assert!(frames.iter().all(|f| f["kind"] != "recording_saved"));

    // Bad names, another user, and a deleted session find nothing.
    let (status, _, _) = host
        .get_text(
            &format!("/api/v1/sessions/{id}/recordings/..%2Fagenthost.db"),
            &token,
        )
        .await;
    assert_eq!(status, 400);
    let other = host.token(&unique("mallory")).await;
    assert_eq!(host.get_text(&path, &other).await.0, 404);
    let (status, _) = host
        .call("DELETE", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    assert!(!host.data_dir.join("recordings").join(&id).exists());
    host.stop().await;
}
