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
