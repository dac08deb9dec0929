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

/// What a Claude run on a cloud platform should look like on the page:
/// the screenshot tool call, the streamed reply, and no secret anywhere.
async fn run_computer_use(host: &TestHost, secret: &str) {
    let token = host.token(&unique("cloud")).await;
    let session = host.create_session(&token, json!({})).await;
    assert_eq!(session["policy"], "anthropic-policy");
    let id = session["id"].as_str().unwrap();
    let mut ws = host.ws(&token, id, 0).await;
    ws.next().await.unwrap();
    ws.send(user_message("What is on the screen?")).await;
    let frames = ws.until_status("idle").await;
    assert_eq!(deltas(&frames), "Let me look.The desktop is ready.");
    let events = stored(&frames);
    let result = events.iter().find(|e| e["kind"] == "tool_result").unwrap();
    assert_eq!(result["payload"]["content"][0]["type"], "image");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(secret), "a credential reached the session");
}

fn look_then_answer() -> Vec<Reply> {
    vec![
        Reply::Tool {
            text: Some("Let me look."),
            id: "toolu_01",
            name: "computer",
            input: vec!["{\"action\":", " \"screenshot\"}"],
        },
        Reply::Text(vec!["The desk", "top is ", "ready."]),
    ]
}

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTKEY";
const BEDROCK_MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

#[tokio::test(flavor = "multi_thread")]
async fn claude_through_amazon_bedrock_signed_and_streamed() {
    let (mock, addr) = MockLlm::start(look_then_answer()).await;
    mock.expect_aws_secret(AWS_SECRET);
    let host = TestHost::start_with(Db::Sqlite, |c| {
        let a = &mut c.llm.anthropic;
        a.platform = agenthost::llm::Platform::Bedrock;
        a.model = BEDROCK_MODEL.into();
        a.bedrock.region = Some("us-east-1".into());
        a.bedrock.access_key_id = Some("AKIDTEST".into());
        a.bedrock.secret_access_key = Some(AWS_SECRET.to_string().into());
        a.bedrock.session_token = Some("session-token-test".to_string().into());
        a.bedrock.base_url = Some(format!("http://{addr}"));
    })
    .await;
    run_computer_use(&host, AWS_SECRET).await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(
        first.path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    );
    // Bedrock's body: version and betas inside, no model, no stream flag.
    assert_eq!(first.body["anthropic_version"], "bedrock-2023-05-31");
    assert!(first.body.get("model").is_none() && first.body.get("stream").is_none());
    assert_eq!(first.body["anthropic_beta"][0], "computer-use-2025-01-24");
    assert!(first.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "computer"));
    // Signed (the mock checked the signature itself) with the session token.
    assert_eq!(first.headers["x-amz-security-token"], "session-token-test");
    let auth = first.headers["authorization"].to_str().unwrap();
    assert!(
        auth.contains("Credential=AKIDTEST/") && auth.contains("/us-east-1/bedrock/aws4_request")
    );
    // The second step sends the screenshot back as a tool result.
    let last = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"][0]["type"], "tool_result");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_bedrock_signature_is_an_error_event_with_amazons_reason() {
    let (mock, addr) = MockLlm::start(look_then_answer()).await;
    mock.expect_aws_secret("the-real-secret");
    let host = TestHost::start_with(Db::Sqlite, |c| {
        let a = &mut c.llm.anthropic;
        a.platform = agenthost::llm::Platform::Bedrock;
        a.model = BEDROCK_MODEL.into();
        a.bedrock.region = Some("eu-west-1".into());
        a.bedrock.access_key_id = Some("AKIDTEST".into());
        a.bedrock.secret_access_key = Some("a-wrong-secret".to_string().into());
        a.bedrock.base_url = Some(format!("http://{addr}"));
    })
    .await;
    let token = host.token(&unique("bad-sig")).await;
    let (_, mut ws) = host.open_chat(&token).await;
    ws.send(user_message("hello")).await;
    let frames = ws.until_status("error").await;
    let error = stored(&frames)
        .into_iter()
        .find(|e| e["kind"] == "error")
        .unwrap();
    let message = error["payload"]["message"].as_str().unwrap();
    assert!(
        message.contains("403") && message.contains("signature mismatch"),
        "{message}"
    );
    assert!(!message.contains("a-wrong-secret"));
    host.stop().await;
}

/// A service-account key file whose token requests the mock verifies.
fn service_account(dir: &std::path::Path, token_uri: &str) -> (std::path::PathBuf, Vec<u8>) {
    let key = dir.join("key.pem");
    let public = dir.join("public.der");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    run(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        public.to_str().unwrap(),
    ]);
    let file = dir.join("service-account.json");
    let json = json!({
        "type": "service_account",
        "project_id": "agenthost-test",
        "private_key_id": "k1",
        "private_key": std::fs::read_to_string(&key).unwrap(),
        "client_email": "agent@agenthost-test.iam.gserviceaccount.com",
        "token_uri": token_uri,
    });
    std::fs::write(&file, json.to_string()).unwrap();
    (file, std::fs::read(&public).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_through_vertex_ai_with_a_service_account() {
    let (mock, addr) = MockLlm::start(look_then_answer()).await;
    let dir = tempfile::tempdir().unwrap();
    let (file, public) = service_account(dir.path(), &format!("http://{addr}/google/token"));
    mock.expect_google_key(public);
    let host = TestHost::start_with(Db::Sqlite, |c| {
        let a = &mut c.llm.anthropic;
        a.platform = agenthost::llm::Platform::Vertex;
        a.model = "claude-sonnet-4-5@20250929".into();
        a.vertex.project = Some("agenthost-test".into());
        a.vertex.region = Some("us-east5".into());
        a.vertex.base_url = Some(format!("http://{addr}"));
        a.vertex.credentials_file = Some(file);
    })
    .await;
    let private_key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let key_body = private_key.lines().nth(1).unwrap().to_string();
    run_computer_use(&host, &key_body).await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].path,
        "/v1/projects/agenthost-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    );
    let body = &requests[0].body;
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none());
    assert_eq!(body["stream"], true);
    assert_eq!(
        requests[0].headers["anthropic-beta"],
        "computer-use-2025-01-24"
    );
    // One token, fetched once and reused for the second step.
    assert_eq!(requests[0].headers["authorization"], "Bearer ya29.test-1");
    assert_eq!(requests[1].headers["authorization"], "Bearer ya29.test-1");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_through_vertex_ai_with_the_metadata_servers_token() {
    let (mock, addr) = MockLlm::start(look_then_answer()).await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        let a = &mut c.llm.anthropic;
        a.platform = agenthost::llm::Platform::Vertex;
        a.model = "claude-sonnet-4-5@20250929".into();
        a.vertex.project = Some("agenthost-test".into());
        a.vertex.base_url = Some(format!("http://{addr}"));
        a.vertex.metadata_url = format!("http://{addr}");
    })
    .await;
    run_computer_use(&host, "ya29.").await;
    let requests = mock.requests();
    assert!(requests[0]
        .path
        .starts_with("/v1/projects/agenthost-test/locations/global/"));
    assert_eq!(requests[0].headers["authorization"], "Bearer ya29.test-1");
    host.stop().await;
}
