//! `/mcp` with the chat page's side of it: calls an MCP client makes show
//! up live on the session's WebSocket, and a person who takes the desktop
//! over stops the client until they hand it back. (The protocol itself is
//! tested with the official Python SDK in tests/mcp.)

use agenthost_tests::mcp::{text_of, McpClient};
use agenthost_tests::server::{stored, unique, Db, TestHost};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn mcp_calls_stream_live_to_the_page_and_a_person_can_take_over() {
    let host = TestHost::start(Db::Sqlite).await;
    let token = host.token(&unique("mia")).await;
    let (id, mut ws) = host.open_chat(&token).await;
    let base = format!("http://{}", host.server().addr);
    let (mut mcp, init) = McpClient::connect(&base, &token, Some(&id)).await;
    assert_eq!(
        init["result"]["_meta"]["dev.agenthost/session"],
        id.as_str()
    );

    let result = mcp
        .call_tool("bash", json!({"command": "echo driven over mcp"}))
        .await;
    assert_eq!(text_of(&result), "driven over mcp\n");
    let frames = ws.until(|f| f["kind"] == "tool_result").await;
    let events = stored(&frames);
    let call = events.iter().find(|e| e["kind"] == "tool_call").unwrap();
    assert_eq!(call["payload"]["name"], "bash");
    assert_eq!(call["source"], "agent");
    assert_eq!(call["payload"]["via"], "mcp", "marked as the MCP client's");
    let tool_result = events.last().unwrap();
    assert_eq!(
        tool_result["payload"]["tool_use_id"], call["payload"]["id"],
        "the result answers the call"
    );
    assert_eq!(
        tool_result["payload"]["content"][0]["text"],
        "driven over mcp\n"
    );

    // The person takes the desktop: the client is told, nothing runs.
    ws.send(json!({"type": "take_over"})).await;
    ws.until(|f| f["kind"] == "control_changed").await;
    let refused = mcp
        .call_tool("bash", json!({"command": "echo while taken"}))
        .await;
    assert_eq!(refused["isError"], true);
    assert!(text_of(&refused).contains("taken over"), "{refused}");

    // Handed back, the client drives again.
    ws.send(json!({"type": "hand_back"})).await;
    ws.until(|f| f["kind"] == "control_changed").await;
    let again = mcp.call_tool("bash", json!({"command": "echo back"})).await;
    assert_eq!(text_of(&again), "back\n");
    host.stop().await;
}

/// Copies a directory into the container at `to`, as the agent.
fn copy_into(container: &str, from: &std::path::Path, to: &str) {
    use std::process::{Command, Stdio};
    let mut tar = Command::new("tar")
        .args(["-c", "-C"])
        .arg(from)
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = Command::new("docker")
        .args(["exec", "-i", "-u", "agent", container, "sh", "-c"])
        .arg(format!("mkdir -p {to} && tar -x -C {to}"))
        .stdin(tar.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(status.success() && tar.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_uses_an_mcp_server_running_inside_the_sandbox() {
    use agenthost::mcp::McpServerConfig;
    use agenthost_tests::mock_llm::{MockLlm, Reply};

    let (mock, addr) = MockLlm::start(vec![
        Reply::Tool {
            text: Some("Noting it."),
            id: "toolu_n1",
            name: "notes__add_note",
            input: vec!["{\"text\": \"buy milk\"}"],
        },
        Reply::Tool {
            text: None,
            id: "toolu_n2",
            name: "notes__fail_always",
            input: vec!["{\"reason\": \"on purpose\"}"],
        },
        Reply::Tool {
            text: None,
            id: "toolu_n3",
            name: "bash",
            input: vec!["{\"command\": \"cat ~/notes.txt; hostname\"}"],
        },
        Reply::Text(vec!["Noted."]),
    ])
    .await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.llm.anthropic.api_key = Some("sk-test-mcp".to_string().into());
        c.llm.anthropic.base_url = format!("http://{addr}");
        c.mcp.servers.insert(
            "notes".into(),
            McpServerConfig {
                command: vec!["python3".into(), "/home/agent/mcp/notes_server.py".into()],
                env: [(
                    "NOTES_FILE".to_string(),
                    "/home/agent/notes.txt".to_string(),
                )]
                .into(),
                cwd: None,
            },
        );
        // A server that dies at once: reported, and the run goes on.
        c.mcp.servers.insert(
            "broken".into(),
            McpServerConfig {
                command: vec!["python3".into(), "-c".into(), "raise SystemExit(3)".into()],
                env: Default::default(),
                cwd: None,
            },
        );
    })
    .await;
    let token = host.token(&unique("nia")).await;
    let (id, mut ws) = host.open_chat(&token).await;
    let container = host
        .server()
        .state()
        .sessions
        .running(&id)
        .and_then(|h| h.live().sandbox)
        .expect("the session has a sandbox");
    // The server goes into the sandbox (the image has the official Python
    // MCP SDK it is written with); the host starts it when the run begins.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mcp");
    copy_into(&container, &fixtures, "/home/agent/mcp");

    ws.send(json!({"type": "user_message", "text": "Remember to buy milk"}))
        .await;
    let frames = ws.until_status("idle").await;
    let events = stored(&frames);
    let errors: Vec<&&serde_json::Value> = events.iter().filter(|e| e["kind"] == "error").collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["payload"]["code"], "mcp_unavailable");
    let why = errors[0]["payload"]["message"].as_str().unwrap();
    // Named, and known as soon as the process ended (not after the wait).
    assert!(
        why.contains("`broken`") && why.contains("handshake"),
        "{why}"
    );
    let results: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .copied()
        .collect();
    assert_eq!(results.len(), 3);
    // The server's answer, stored like any tool result; it ran on the
    // sandbox (its hostname is the container's).
    assert_eq!(results[0]["payload"]["name"], "notes__add_note");
    assert_eq!(results[0]["payload"]["is_error"], false);
    let added = results[0]["payload"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        added.starts_with("added on ") && added.ends_with(": buy milk"),
        "{added}"
    );
    let sandbox_host = added
        .trim_start_matches("added on ")
        .trim_end_matches(": buy milk");
    // A tool's error is a result the model reads.
    assert_eq!(results[1]["payload"]["is_error"], true);
    // The note is in the sandbox's home, written by the server there.
    let shell = results[2]["payload"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(shell, format!("buy milk\n{sandbox_host}\n"));

    // The model was offered the server's tools with their schemas.
    let first = &mock.requests()[0].body;
    let tool = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "notes__add_note")
        .expect("the MCP tool is offered");
    assert_eq!(tool["input_schema"]["properties"]["text"]["type"], "string");
    assert_eq!(tool["description"], "Adds a note to the notes file.");

    // The API lists the servers with the plugins, and what they offered.
    let (status, listed) = host.call("GET", "/api/v1/plugins", &token, None).await;
    assert_eq!(status, 200);
    let servers = listed["mcp_servers"].as_array().unwrap();
    let by_name = |n: &str| servers.iter().find(|s| s["name"] == n).unwrap().clone();
    assert_eq!(
        by_name("notes")["tools"],
        json!(["notes__add_note", "notes__fail_always"])
    );
    assert_eq!(by_name("broken")["tools"], serde_json::Value::Null);
    assert_eq!(by_name("notes")["tool_prefix"], "notes__");
    host.stop().await;
}
