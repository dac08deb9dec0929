//! The LLM-backed policies through each provider's real wire format,
//! streamed, against a local server that speaks it; sandboxes are real.

use agenthost_tests::mock_llm::{MockLlm, Reply};
use agenthost_tests::server::{stored, unique, user_message, Db, TestHost};
use serde_json::{json, Value};

const SECRET: &str = "sk-test-SECRET-0123456789";

fn deltas(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["kind"] == "assistant_delta")
        .map(|f| f["payload"]["text"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_computer_use_through_the_anthropic_wire_format() {
    let (mock, addr) = MockLlm::start(vec![
        Reply::Status { status: 529, retry_after: Some("0"), body: json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}) },
        Reply::Tool { text: Some("Let me look."), id: "toolu_01", name: "computer", input: vec!["{\"action\":", " \"screenshot\"}"] },
        Reply::Text(vec!["The desk", "top is ", "ready."]),
    ])
    .await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.llm.anthropic.api_key = Some(SECRET.to_string().into());
        c.llm.anthropic.base_url = format!("http://{addr}");
    })
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
    let (_, got) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(
        (got["input_tokens"].as_i64(), got["output_tokens"].as_i64()),
        (Some(240), Some(84))
    );

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
    let (_mock, addr) = MockLlm::start(vec![
        Reply::Status { status: 400, retry_after: None, body: json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}) },
        Reply::Text(vec!["recovered"]),
    ])
    .await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.llm.anthropic.api_key = Some(SECRET.to_string().into());
        c.llm.anthropic.base_url = format!("http://{addr}");
    })
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
