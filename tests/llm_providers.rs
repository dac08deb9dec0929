//! The LLM-backed policies through each provider's real wire format,
//! streamed, against a local server that speaks it; sandboxes are real.

use agenthost_tests::mock_llm::{MockLlm, Reply};
use agenthost_tests::server::{stored, unique, user_message, Db, TestHost};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};

const SECRET: &str = "sk-test-SECRET-0123456789";

/// A host whose Anthropic provider is a local mock answering from `script`.
async fn with_claude(script: Vec<Reply>) -> (MockLlm, TestHost) {
    let (mock, addr) = MockLlm::start(script).await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.llm.anthropic.api_key = Some(SECRET.to_string().into());
        c.llm.anthropic.base_url = format!("http://{addr}");
    })
    .await;
    (mock, host)
}

fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().unwrap_or_else(|| panic!("a number: {got}"));
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

fn deltas(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["kind"] == "assistant_delta")
        .map(|f| f["payload"]["text"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_computer_use_through_the_anthropic_wire_format() {
    let (mock, host) = with_claude(vec![
        Reply::Status { status: 529, retry_after: Some("0"), body: json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}) },
        Reply::Tool { text: Some("Let me look."), id: "toolu_01", name: "computer", input: vec!["{\"action\":", " \"screenshot\"}"] },
        Reply::Text(vec!["The desk", "top is ", "ready."]),
    ])
    .await;
    let token = host.token(&unique("gina")).await;
    let session = host.create_session(&token, json!({})).await;
    assert_eq!(
        session["policy"], "anthropic-policy",
        "the default with a key"
    );
    let id = session["id"].as_str().unwrap();
    let mut ws = host.ws(&token, id, 0).await;
    ws.next().await.unwrap();
    ws.send(user_message("What is on the screen?")).await;
    let frames = ws.until_status("idle").await;

    // Text streams live before the stored message.
    let streamed = deltas(&frames);
    assert_eq!(streamed, "Let me look.The desktop is ready.");
    let events = stored(&frames);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "user_message",
            "state_changed",
            "usage",
            "assistant_message",
            "tool_call",
            "tool_result",
            "usage",
            "assistant_message",
            "state_changed"
        ]
    );
    assert_eq!(events[4]["payload"]["name"], "computer");
    let input: Value =
        serde_json::from_str(events[4]["payload"]["input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"action": "screenshot"}));
    assert_eq!(events[5]["payload"]["content"][0]["type"], "image");
    assert_eq!(events[7]["payload"]["text"], "The desktop is ready.");
    assert_eq!(events[6]["payload"]["total_input_tokens"], 240);
    assert_eq!(events[6]["payload"]["cache_read_tokens"], 100);
    // Priced at the list price the host knows for the default model: 120
    // fresh input, 42 output, 100 read from and 20 written to the cache.
    let per_call = (120.0 * 3.0 + 42.0 * 15.0 + 100.0 * 0.3 + 20.0 * 3.75) / 1e6;
    assert_eq!(events[6]["payload"]["model"], "claude-sonnet-4-5");
    assert_close(&events[6]["payload"]["cost_usd"], per_call);
    assert_close(&events[6]["payload"]["total_cost_usd"], 2.0 * per_call);
    let (_, got) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(
        (got["input_tokens"].as_i64(), got["output_tokens"].as_i64()),
        (Some(240), Some(84))
    );
    assert_close(&got["cost_usd"], 2.0 * per_call);

    // What went over the wire.
    let requests = mock.requests();
    assert_eq!(requests.len(), 3, "one retry after the 529");
    assert_eq!(requests[0].body, requests[1].body);
    for r in &requests {
        assert_eq!(r.headers["x-api-key"], SECRET);
        assert_eq!(r.headers["anthropic-version"], "2023-06-01");
        assert!(r.headers["anthropic-beta"]
            .to_str()
            .unwrap()
            .contains("computer-use"));
        assert_eq!(r.body["stream"], true);
        assert_eq!(r.body["system"][0]["cache_control"]["type"], "ephemeral");
        let computer = r.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "computer")
            .unwrap();
        assert_eq!(computer["type"], "computer_20250124");
        assert!(computer["display_width_px"].as_u64().unwrap() > 0);
    }
    let last = &requests[2].body["messages"];
    let result = &last[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_01");
    assert_eq!(result["content"][0]["source"]["media_type"], "image/png");
    assert!(
        result["content"][0]["source"]["data"]
            .as_str()
            .unwrap()
            .len()
            > 1000
    );
    assert_eq!(
        last[2]["content"].as_array().unwrap().last().unwrap()["cache_control"]["type"],
        "ephemeral"
    );

    // The key reaches the provider and nowhere else.
    let (_, page) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{id}/events?limit=1000"),
            &token,
            None,
        )
        .await;
    assert!(!page.to_string().contains(SECRET));
    assert!(
        !format!("{:?}", host.config).contains(SECRET),
        "config Debug hides the key"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_calling_through_the_openai_wire_format() {
    let (mock, addr) = MockLlm::start(vec![
        Reply::Tool {
            text: None,
            id: "call_abc",
            name: "bash",
            input: vec!["{\"command\":", " \"echo hi\"}"],
        },
        Reply::Text(vec!["all ", "done"]),
    ])
    .await;
    let host = TestHost::start_with(Db::Postgres, |c| {
        c.llm.openai.base_url = Some(format!("http://{addr}/v1"));
        c.llm.openai.api_key = Some(SECRET.to_string().into());
        c.llm.openai.model = "local-model".into();
        c.prices.insert(
            "local-model".into(),
            agenthost::llm::Price {
                input: 1.0,
                output: 2.0,
                cache_read: Some(0.5),
                cache_write: None,
            },
        );
    })
    .await;
    let token = host.token(&unique("hank")).await;
    let session = host.create_session(&token, json!({})).await;
    assert_eq!(session["policy"], "openai-policy");
    let id = session["id"].as_str().unwrap();
    let mut ws = host.ws(&token, id, 0).await;
    ws.next().await.unwrap();
    ws.send(user_message("say hi in the shell")).await;
    let frames = ws.until_status("idle").await;
    assert_eq!(deltas(&frames), "all done");
    let events = stored(&frames);
    let result = events.iter().find(|e| e["kind"] == "tool_result").unwrap();
    assert_eq!(result["payload"]["content"][0]["text"], "hi\n");
    // OpenAI counts the 200 cached prompt tokens inside its 300: they are
    // priced once, at the cache price.
    let usage = events.iter().find(|e| e["kind"] == "usage").unwrap();
    assert_eq!(usage["payload"]["model"], "local-model");
    assert_close(
        &usage["payload"]["cost_usd"],
        (100.0 * 1.0 + 25.0 * 2.0 + 200.0 * 0.5) / 1e6,
    );
    assert_eq!(
        events
            .iter()
            .rev()
            .find(|e| e["kind"] == "assistant_message")
            .unwrap()["payload"]["text"],
        "all done"
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers["authorization"],
        format!("Bearer {SECRET}")
    );
    assert_eq!(requests[0].body["model"], "local-model");
    assert_eq!(requests[0].body["stream"], true);
    assert!(requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "bash"));
    let messages = requests[1].body["messages"].as_array().unwrap();
    let call = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(call["tool_calls"][0]["id"], "call_abc");
    assert_eq!(
        call["tool_calls"][0]["function"]["arguments"],
        "{\"command\": \"echo hi\"}"
    );
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(
        (tool["tool_call_id"].as_str(), tool["content"].as_str()),
        (Some("call_abc"), Some("hi\n"))
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_error_is_an_event_and_the_session_stays_resumable() {
    let (_mock, host) = with_claude(vec![
        Reply::Status { status: 400, retry_after: None, body: json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}) },
        Reply::Text(vec!["recovered"]),
    ])
    .await;
    let token = host.token("ivan").await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("hello")).await;
    let frames = ws.until_status("error").await;
    let error = stored(&frames)
        .into_iter()
        .find(|e| e["kind"] == "error")
        .unwrap()
        .clone();
    assert_eq!(error["payload"]["code"], "policy_error");
    assert!(
        error["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long"),
        "{error}"
    );
    ws.send(user_message("try again")).await;
    let frames = ws.until_status("idle").await;
    assert_eq!(deltas(&frames), "recovered");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn extended_thinking_is_shown_and_goes_back_signed_with_its_turn() {
    let (mock, host) = with_claude(vec![
        Reply::Thinking {
            text: vec!["The user wants the screen; ", "take a screenshot."],
            signature: "sig-abc",
            redacted: Some("ENCRYPTED"),
            then: Box::new(Reply::Tool {
                text: None,
                id: "toolu_7",
                name: "computer",
                input: vec!["{\"action\": \"screenshot\"}"],
            }),
        },
        Reply::Text(vec!["A desktop."]),
    ])
    .await;
    let token = host.token(&unique("hana")).await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("What is on the screen?")).await;
    let frames = ws.until_status("idle").await;

    // Stored as the reply arrived: before the turn's tool call.
    let events = stored(&frames);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("thinking") < at("provider_part") && at("provider_part") < at("tool_call"));
    let thinking = &events[at("thinking")]["payload"];
    assert_eq!(
        thinking["text"],
        "The user wants the screen; take a screenshot."
    );
    assert_eq!(thinking["signature"], "sig-abc");
    assert_eq!(events[at("thinking")]["source"], "agent");

    // The next request carries the signed block and the redacted one back,
    // first in the assistant turn, unchanged.
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let assistant = &requests[1].body["messages"][1];
    assert_eq!(assistant["role"], "assistant");
    let content = assistant["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": "The user wants the screen; take a screenshot.", "signature": "sig-abc"})
    );
    assert_eq!(
        content[1],
        json!({"type": "redacted_thinking", "data": "ENCRYPTED"})
    );
    assert_eq!(content[2]["type"], "tool_use");
    assert_eq!(content[2]["id"], "toolu_7");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_sent_during_a_step_reaches_the_model_in_the_same_run() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let (mock, host) = with_claude(vec![
        Reply::Held {
            entered: entered.clone(),
            release: release.clone(),
            then: Box::new(Reply::Tool {
                text: None,
                id: "toolu_1",
                name: "bash",
                input: vec!["{\"command\": \"echo hi\"}"],
            }),
        },
        Reply::Text(vec!["Noted."]),
    ])
    .await;
    let token = host.token(&unique("ines")).await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("say hi in the shell")).await;
    // The model is thinking about the first message; the person adds one.
    entered.notified().await;
    ws.send(user_message("and use lowercase")).await;
    ws.until(|f| f["kind"] == "user_message" && f["payload"]["text"] == "and use lowercase")
        .await;
    release.add_permits(1);
    ws.until_status("idle").await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "one run, two steps");
    let sent = requests[1].body["messages"].to_string();
    assert!(
        sent.contains("and use lowercase"),
        "the second step's history has the message sent during the first: {sent}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_repeating_itself_is_paused_by_the_loop_guard() {
    // The stand-in model asks for the same command over and over; its
    // output never changes. Three in a row is the configured limit.
    let same = || Reply::Tool {
        text: None,
        id: "toolu_loop",
        name: "bash",
        input: vec!["{\"command\": \"echo stuck\"}"],
    };
    let (mock, addr) = MockLlm::start(vec![same(), same(), same(), same(), same()]).await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.llm.anthropic.api_key = Some(SECRET.to_string().into());
        c.llm.anthropic.base_url = format!("http://{addr}");
        c.agent.loop_guard_repeats = 3;
    })
    .await;
    let token = host.token(&unique("lou")).await;
    let session = host.create_session(&token, json!({})).await;
    let id = session["id"].as_str().unwrap();
    let mut ws = host.ws(&token, id, 0).await;
    ws.next().await.unwrap();
    ws.send(user_message("Check the build")).await;
    let frames = ws.until_status("paused").await;

    let events = stored(&frames);
    let results: Vec<&&Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 3, "paused on the third identical step");
    assert!(results
        .iter()
        .all(|r| r["payload"]["content"][0]["text"] == "stuck\n"));
    let paused = events.last().unwrap();
    let reason = paused["payload"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("loop detected") && reason.contains("`bash`"),
        "{reason}"
    );
    // Three model calls, not five: no tokens spent after the loop was seen.
    assert_eq!(mock.requests().len(), 3);

    // A hint starts a new run with a fresh count: the two repeats the
    // script has left run, then the model replies.
    ws.send(user_message("try something else")).await;
    let frames = ws.until_status("idle").await;
    let again = stored(&frames)
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .count();
    assert_eq!(again, 2);
    host.stop().await;
}
