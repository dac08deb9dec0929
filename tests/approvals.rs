//! Asking before acting: tool calls that wait for a person's approval,
//! answered over REST and the WebSocket, timed out, withdrawn by a pause,
//! a cancel, a takeover or a restart. Real host, real sandboxes, the
//! scripted policy (which reports a failed step's text back, so what the
//! policy read is visible in its reply).

use agenthost::config::ServeConfig;
use agenthost_tests::server::{stored, unique, user_message, Db, TestHost, Ws};
use serde_json::{json, Value};

/// A host whose operator asks before `echo ask-*` commands.
async fn host_with(tweak: impl FnOnce(&mut ServeConfig)) -> TestHost {
    TestHost::start_with(Db::Sqlite, |c| {
        c.approval.bash = vec![r"^echo ask-".into()];
        tweak(c);
    })
    .await
}

async fn host() -> TestHost {
    host_with(|_| {}).await
}

/// Frames until the request for a tool call; returns it.
async fn until_request(ws: &mut Ws) -> Value {
    let frames = ws.until(|f| f["kind"] == "approval_requested").await;
    frames.last().unwrap().clone()
}

/// `POST /api/v1/sessions/{id}/{action}` (pause, cancel, takeover, ...).
async fn session_control(host: &TestHost, token: &str, id: &str, action: &str) -> u16 {
    let path = format!("/api/v1/sessions/{id}/{action}");
    host.call("POST", &path, token, None).await.0
}

fn kinds<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    stored(frames)
        .into_iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn result_text(frames: &[Value]) -> (String, bool) {
    let result = kinds(frames, "tool_result")[0];
    (
        result["payload"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        result["payload"]["is_error"].as_bool().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_matching_bash_call_waits_and_runs_once_approved_over_rest() {
    let host = host().await;
    let token = host.token(&unique("ana")).await;
    let (id, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("run `echo ask-first`")).await;
    let request = until_request(&mut ws).await;
    let call = request["payload"]["tool_use_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(request["payload"]["name"], "bash");
    assert!(
        request["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("^echo ask-"),
        "{request}"
    );

    // The session says what waits, for clients that poll.
    let (_, session) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(session["awaiting_approval"]["tool_use_id"], call);
    assert_eq!(session["status"], "running");

    // A wrong id, and a note over the limit, are refused and lose nothing.
    let path = format!("/api/v1/sessions/{id}/approvals/{call}");
    let (status, body) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/approvals/call_nope"),
            &token,
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (status, _) = host
        .call(
            "POST",
            &path,
            &token,
            Some(json!({"approve": true, "note": "x".repeat(2001)})),
        )
        .await;
    assert_eq!(status, 400);
    // Another user cannot answer.
    let mallory = host.token(&unique("mallory")).await;
    let (status, _) = host
        .call("POST", &path, &mallory, Some(json!({"approve": true})))
        .await;
    assert_eq!(status, 404);

    let (status, body) = host
        .call(
            "POST",
            &path,
            &token,
            Some(json!({"approve": true, "note": "fine"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let frames = ws.until_status("idle").await;
    let decided = kinds(&frames, "approval_decided");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["payload"]["outcome"], "approved");
    assert_eq!(decided[0]["source"], "user");
    let (text, is_error) = result_text(&frames);
    assert_eq!((text.trim(), is_error), ("ask-first", false));

    // Answered once: a second answer is refused.
    let (status, _) = host
        .call("POST", &path, &token, Some(json!({"approve": false})))
        .await;
    assert_eq!(status, 409);
    let (_, session) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert!(session["awaiting_approval"].is_null());

    // A command no rule matches runs without asking.
    ws.send(user_message("run `echo plain`")).await;
    let frames = ws.until_status("idle").await;
    assert!(kinds(&frames, "approval_requested").is_empty());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_over_the_websocket_reaches_the_policy_with_its_note() {
    let host = host().await;
    let token = host.token(&unique("bea")).await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("run `echo ask-deny` then run `echo after`"))
        .await;
    let mut frames = ws.until(|f| f["kind"] == "approval_requested").await;
    let call = frames.last().unwrap()["payload"]["tool_use_id"].clone();
    ws.send(json!({"type": "deny", "tool_use_id": call, "note": "not on this machine"}))
        .await;
    frames.extend(ws.until_status("idle").await);
    let decided = kinds(&frames, "approval_decided");
    assert_eq!(decided[0]["payload"]["outcome"], "denied");
    assert_eq!(decided[0]["payload"]["note"], "not on this machine");
    let (text, is_error) = result_text(&frames);
    assert!(is_error);
    assert_eq!(text, "the person denied this call: not on this machine");
    // The scripted policy reads the result and stops there.
    let reply = kinds(&frames, "assistant_message");
    let reply = reply.last().unwrap()["payload"]["text"].as_str().unwrap();
    assert!(reply.contains("not on this machine"), "{reply}");
    assert_eq!(
        kinds(&frames, "tool_call").len(),
        1,
        "the second step never ran"
    );

    // An answer to nothing waiting is an error event on the socket.
    ws.send(json!({"type": "approve", "tool_use_id": call}))
        .await;
    let frames = ws.until(|f| f["kind"] == "error").await;
    assert_eq!(frames.last().unwrap()["payload"]["code"], "invalid_state");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_request_times_out_as_a_denial() {
    let host = host_with(|c| c.approval.timeout_secs = 1).await;
    let token = host.token(&unique("cid")).await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("run `echo ask-late`")).await;
    let frames = ws.until_status("idle").await;
    let request = kinds(&frames, "approval_requested")[0];
    let decided = kinds(&frames, "approval_decided")[0];
    assert_eq!(decided["payload"]["outcome"], "timed_out");
    assert_eq!(decided["source"], "host");
    assert!(
        decided["ts"].as_i64().unwrap() >= request["payload"]["expires_at"].as_i64().unwrap(),
        "not before its deadline"
    );
    let (text, is_error) = result_text(&frames);
    assert!(is_error);
    assert!(text.contains("nobody answered within 1 s"), "{text}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_before_acting_asks_before_actions_not_looks_and_pause_withdraws() {
    let host = host().await;
    let token = host.token(&unique("dee")).await;
    let session = host
        .create_session(&token, json!({"settings": {"ask_before_acting": true}}))
        .await;
    assert_eq!(session["settings"]["ask_before_acting"], true);
    let id = session["id"].as_str().unwrap();
    let mut ws = host.ws(&token, id, 0).await;
    ws.send(user_message("take a screenshot then run `echo acted`"))
        .await;
    let frames = ws.until(|f| f["kind"] == "approval_requested").await;
    // The screenshot ran without asking; the command waits.
    assert_eq!(kinds(&frames, "tool_result").len(), 1);
    assert_eq!(frames.last().unwrap()["payload"]["name"], "bash");

    assert_eq!(session_control(&host, &token, id, "pause").await, 202);
    let frames = ws.until_status("paused").await;
    let decided = kinds(&frames, "approval_decided");
    assert_eq!(decided[0]["payload"]["outcome"], "withdrawn");
    let (text, is_error) = result_text(&frames);
    assert!(is_error && text.contains("paused"), "{text}");

    // Switched off (and recorded), the next action just runs.
    let (status, body) = host
        .call(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            &token,
            Some(json!({"settings": {"ask_before_acting": false}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["ask_before_acting"], false);
    let frames = ws.until(|f| f["kind"] == "settings_changed").await;
    assert_eq!(
        frames.last().unwrap()["payload"]["ask_before_acting"],
        false
    );
    let (status, body) = host
        .call(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            &token,
            Some(json!({"settings": {"ask_first": true}})),
        )
        .await;
    assert_eq!(status, 422, "unknown switches are refused: {body}");
    ws.send(user_message("run `echo acted`")).await;
    let frames = ws.until_status("idle").await;
    assert!(kinds(&frames, "approval_requested").is_empty());
    assert_eq!(result_text(&frames).0.trim(), "acted");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_takeover_and_restart_each_close_a_waiting_request() {
    let mut host = host().await;
    let token = host.token(&unique("eva")).await;
    let (id, mut ws) = host.open_chat(&token).await;

    ws.send(user_message("run `echo ask-cancel`")).await;
    until_request(&mut ws).await;
    assert_eq!(session_control(&host, &token, &id, "cancel").await, 202);
    let frames = ws.until_status("idle").await;
    assert_eq!(
        kinds(&frames, "approval_decided")[0]["payload"]["outcome"],
        "withdrawn"
    );
    assert!(result_text(&frames).1);

    ws.send(user_message("run `echo ask-takeover`")).await;
    until_request(&mut ws).await;
    assert_eq!(session_control(&host, &token, &id, "takeover").await, 202);
    let frames = ws.until_status("paused").await;
    let decided = kinds(&frames, "approval_decided");
    assert!(decided[0]["payload"]["note"]
        .as_str()
        .unwrap()
        .contains("took over"));

    assert_eq!(session_control(&host, &token, &id, "handback").await, 202);
    ws.until_status("idle").await;
    ws.send(user_message("run `echo ask-restart`")).await;
    until_request(&mut ws).await;
    drop(ws);
    host.restart().await;
    let mut ws = host.ws(&token, &id, 0).await;
    let frames = ws
        .until(|f| f["kind"] == "state_changed" && f["payload"]["reason"] == "host restarted")
        .await;
    let frames = stored(&frames);
    // Every request in the log has exactly one answer, right after it
    // (the scripted policy reuses call ids across runs, so order is what
    // pairs them).
    let approvals: Vec<(&str, &str)> = frames
        .iter()
        .filter(|f| f["kind"].as_str().unwrap().starts_with("approval_"))
        .map(|f| {
            (
                f["kind"].as_str().unwrap(),
                f["payload"]["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let requested = ("approval_requested", "");
    assert_eq!(
        approvals,
        vec![
            requested,
            ("approval_decided", "withdrawn"),
            requested,
            ("approval_decided", "withdrawn"),
            requested,
            ("approval_decided", "withdrawn"),
        ]
    );
    let last = frames
        .iter()
        .rev()
        .find(|f| f["kind"] == "approval_decided")
        .unwrap();
    assert!(last["payload"]["note"]
        .as_str()
        .unwrap()
        .contains("restarted"));
    host.stop().await;
}
