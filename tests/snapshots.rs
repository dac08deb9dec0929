//! Snapshots and forks on one host: a session's desktop files are saved
//! after each run, and a fork at event N under another policy gets the
//! history up to N and a desktop holding the files of that moment (and
//! not those made after it). Real sandboxes; the fork's model is the
//! local stand-in speaking Anthropic's wire format.

use agenthost_tests::mock_llm::{MockLlm, Reply};
use agenthost_tests::server::{stored, unique, user_message, Db, TestHost};
use serde_json::{json, Value};

fn tool_output(frames: &[Value]) -> String {
    stored(frames)
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .flat_map(|e| {
            e["payload"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_at_step_n_runs_another_policy_on_the_files_of_that_moment() {
    let (mock, addr) = MockLlm::start(vec![
        Reply::Tool {
            text: None,
            id: "toolu_ls",
            name: "bash",
            input: vec!["{\"command\": \"ls /home/agent\"}"],
        },
        Reply::Text(vec!["Listed."]),
    ])
    .await;
    let host = TestHost::start_with(Db::Sqlite, |c| {
        c.llm.anthropic.api_key = Some("sk-test".to_string().into());
        c.llm.anthropic.base_url = format!("http://{addr}");
    })
    .await;
    let token = host.token(&unique("fern")).await;
    let source = host
        .create_session(&token, json!({"policy": "scripted-policy"}))
        .await;
    let id = source["id"].as_str().unwrap().to_string();
    let mut ws = host.ws(&token, &id, 0).await;
    ws.send(user_message("run `echo one > /home/agent/one.txt`"))
        .await;
    ws.until_status("idle").await;
    ws.send(user_message("run `echo two > /home/agent/two.txt`"))
        .await;
    ws.until_status("idle").await;

    // A snapshot after each run, saved before the run is reported over.
    let (status, list) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{id}/snapshots"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let snapshots = list["snapshots"].as_array().unwrap().clone();
    assert_eq!(snapshots.len(), 2, "{list}");
    let first = snapshots[0]["seq"].as_i64().unwrap();
    assert!(first < snapshots[1]["seq"].as_i64().unwrap());
    assert!(snapshots[0]["bytes"].as_i64().unwrap() >= 1024, "{list}");
    assert!(
        snapshots[0].get("location").is_none(),
        "paths stay on the host"
    );

    // Bad forks are refused with a reason, and nothing is made.
    for (body, code) in [
        (json!({"at_seq": 0}), "invalid_body"),
        (json!({"at_seq": 10_000}), "invalid_body"),
        (json!({"policy": "no-such-policy"}), "unknown_policy"),
        (json!({"at": 3}), "invalid_body"),
    ] {
        let (status, answer) = host
            .call(
                "POST",
                &format!("/api/v1/sessions/{id}/fork"),
                &token,
                Some(body.clone()),
            )
            .await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let stranger = host.token(&unique("mallory")).await;
    let (status, _) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/fork"),
            &stranger,
            None,
        )
        .await;
    assert_eq!(status, 404, "another user's session is not theirs to fork");

    // Fork at the end of the first run, under the model-driven policy.
    let (status, fork) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{id}/fork"),
            &token,
            Some(json!({"at_seq": first, "policy": "anthropic-policy"})),
        )
        .await;
    assert_eq!(status, 201, "{fork}");
    let fork_id = fork["id"].as_str().unwrap().to_string();
    assert_ne!(fork_id, id);
    assert_eq!(fork["policy"], "anthropic-policy");
    assert_eq!(fork["status"], "paused");
    assert_eq!(fork["forked_from"], json!({"session_id": id, "seq": first}));
    assert_eq!(fork["snapshot"]["seq"], first);

    // The history up to the cut, the same events in the same order, then
    // the fork's own pause.
    let (_, source_events) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{id}/events"),
            &token,
            None,
        )
        .await;
    let (_, fork_events) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{fork_id}/events"),
            &token,
            None,
        )
        .await;
    let strip = |e: &Value| (e["seq"].clone(), e["kind"].clone(), e["payload"].clone());
    let source_events = source_events["events"].as_array().unwrap();
    let fork_events = fork_events["events"].as_array().unwrap();
    assert_eq!(
        fork_events[..first as usize]
            .iter()
            .map(strip)
            .collect::<Vec<_>>(),
        source_events[..first as usize]
            .iter()
            .map(strip)
            .collect::<Vec<_>>()
    );
    let last = fork_events.last().unwrap();
    assert_eq!(last["kind"], "state_changed");
    assert_eq!(last["payload"]["status"], "paused");
    assert_eq!(
        last["payload"]["reason"],
        format!("forked from {id} at event {first}")
    );
    assert_eq!(fork_events.len(), first as usize + 1);

    // Resumed, the other policy carries on in a desktop with the first
    // run's file and not the second's.
    let mut fork_ws = host.ws(&token, &fork_id, fork_events.len() as i64).await;
    let (status, _) = host
        .call(
            "POST",
            &format!("/api/v1/sessions/{fork_id}/resume"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let frames = fork_ws.until_status("idle").await;
    let listing = tool_output(&frames);
    assert!(listing.contains("one.txt"), "{listing}");
    assert!(!listing.contains("two.txt"), "{listing}");
    assert_eq!(
        mock.requests().len(),
        2,
        "the fork's policy asked the model"
    );

    // The source is untouched, and deleting it leaves the fork whole.
    let (_, source_now) = host
        .call("GET", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(source_now["policy"], "scripted-policy");
    let (status, _) = host
        .call("DELETE", &format!("/api/v1/sessions/{id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = host
        .call(
            "GET",
            &format!("/api/v1/sessions/{fork_id}/events"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    host.stop().await;
}
