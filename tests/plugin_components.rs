//! What the first-party components and the foreign-language examples do,
//! through the real runtime, against in-memory capability backends.

use std::sync::Arc;

use agenthost::capabilities::CallContext;
use agenthost::plugins::bindings::current::llm::{Message, MessagePart, Role};
use agenthost::plugins::bindings::current::policy::{Act, Context, Decision};
use agenthost::plugins::bindings::current::tool::{ToolError, ToolOutput};
use agenthost::plugins::bindings::current::types::{ContentPart, ToolResult, ToolUse};
use agenthost::plugins::{PolicyInstance, Runtime};
use agenthost_tests::{component, load, requested_grants, runtime, FakeSandbox};
use serde_json::json;

async fn invoke(
    rt: &Runtime,
    plugin: &str,
    ctx: &CallContext,
    tool: &str,
    input: serde_json::Value,
) -> Result<ToolOutput, ToolError> {
    let p = load(rt, plugin).await;
    let call = ToolUse {
        id: "c1".into(),
        name: tool.into(),
        input: input.to_string(),
    };
    rt.invoke_tool(&p, requested_grants(&p), ctx.clone(), call)
        .await
        .expect("no host-level failure")
}

fn texts(out: &ToolOutput) -> String {
    out.content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(t) => Some(t.as_str()),
            ContentPart::Image(_) => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn images(out: &ToolOutput) -> Vec<(u32, u32)> {
    out.content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Image(i) => Some((i.width, i.height)),
            ContentPart::Text(_) => None,
        })
        .collect()
}

fn error_text(e: ToolError) -> String {
    match e {
        ToolError::InvalidInput(m) => format!("invalid: {m}"),
        ToolError::Failed(m) => format!("failed: {m}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn computer_maps_actions_and_returns_a_settled_screenshot() {
    let rt = runtime();
    let sb = FakeSandbox::new();
    let out = invoke(
        &rt,
        "computer",
        &sb.ctx,
        "computer",
        json!({"action": "left_click", "coordinate": [100, 200]}),
    )
    .await
    .unwrap();
    assert_eq!(images(&out), [(1280, 800)]);
    assert_eq!(
        sb.computer.take(),
        ["click left x1 at 100,200 []", "settle", "screenshot"]
    );

    // The image handle resolves to the bytes the backend produced.
    let handle = match &out.content[0] {
        ContentPart::Image(i) => i.handle.clone(),
        other => panic!("expected an image, got {other:?}"),
    };
    assert_eq!(&*sb.ctx.images.get(&handle).unwrap().bytes, b"png 1280x800");

    for (input, expected) in [
        (
            json!({"action": "double_click", "coordinate": [5, 6], "text": "shift"}),
            "click left x2 at 5,6 [shift]",
        ),
        (
            json!({"action": "triple_click", "coordinate": [5, 6]}),
            "click left x3 at 5,6 []",
        ),
        (
            json!({"action": "right_click"}),
            "click right x1 at 10,20 []",
        ),
        (
            json!({"action": "mouse_move", "coordinate": [7, 8]}),
            "move 7,8",
        ),
        (
            json!({"action": "left_click_drag", "start_coordinate": [1, 2], "coordinate": [30, 40]}),
            "drag left 1,2 -> 30,40",
        ),
        (
            json!({"action": "scroll", "coordinate": [50, 60], "scroll_direction": "down", "scroll_amount": 5}),
            "scroll down 5 at 50,60",
        ),
        (
            json!({"action": "key", "text": "ctrl+shift+t"}),
            "key ctrl+shift+t",
        ),
        (
            json!({"action": "hold_key", "text": "shift", "duration": 0.5}),
            "hold shift 500ms",
        ),
        (
            json!({"action": "type", "text": "héllo wörld"}),
            "type héllo wörld",
        ),
        (json!({"action": "left_mouse_down"}), "left down"),
        (json!({"action": "left_mouse_up"}), "left up"),
    ] {
        invoke(&rt, "computer", &sb.ctx, "computer", input.clone())
            .await
            .unwrap_or_else(|e| panic!("{input}: {}", error_text(e)));
        assert_eq!(sb.computer.take()[0], expected, "{input}");
    }

    let out = invoke(
        &rt,
        "computer",
        &sb.ctx,
        "computer",
        json!({"action": "cursor_position"}),
    )
    .await
    .unwrap();
    assert_eq!(texts(&out), "X=10,Y=20");
}

#[tokio::test(flavor = "multi_thread")]
async fn computer_scales_between_model_and_screen() {
    let rt = runtime();
    // A 1920x1200 screen is shown to the model as 1280x800 (same 16:10 ratio).
    let sb = FakeSandbox::with_screen(1920, 1200);
    let out = invoke(
        &rt,
        "computer",
        &sb.ctx,
        "computer",
        json!({"action": "left_click", "coordinate": [640, 400]}),
    )
    .await
    .unwrap();
    assert_eq!(images(&out), [(1280, 800)]);
    assert_eq!(
        sb.computer.take(),
        [
            "click left x1 at 960,600 []",
            "settle",
            "screenshot 0,0 1920x1200 -> 1280x800"
        ]
    );
    let out = invoke(
        &rt,
        "computer",
        &sb.ctx,
        "computer",
        json!({"action": "cursor_position"}),
    )
    .await
    .unwrap();
    assert_eq!(texts(&out), "X=6,Y=13"); // (10, 20) on screen
    let out = invoke(
        &rt,
        "computer",
        &sb.ctx,
        "computer",
        json!({"action": "zoom", "region": [0, 0, 640, 400]}),
    )
    .await
    .unwrap();
    assert_eq!(images(&out), [(1280, 800)]);
    assert_eq!(sb.computer.take(), ["screenshot 0,0 960x600 -> 1280x800"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn computer_rejects_bad_input_clearly() {
    let rt = runtime();
    let sb = FakeSandbox::new();
    for (input, needle) in [
        (
            json!({"action": "left_click", "coordinate": [5000, 10]}),
            "off screen",
        ),
        (
            json!({"action": "left_click", "coordinate": [-1, 10]}),
            "off screen",
        ),
        (json!({"action": "type", "text": ""}), "empty"),
        (
            json!({"action": "key", "text": "no_such_key"}),
            "unknown key name",
        ),
        // Caught by the host against the tool's schema (an enum).
        (
            json!({"action": "fly"}),
            "at `/action`: \"fly\" is not one of",
        ),
        (
            json!({"action": "scroll", "scroll_direction": "sideways"}),
            "not one of",
        ),
        (
            json!({"action": "left_click_drag", "coordinate": [1, 1]}),
            "start_coordinate",
        ),
        (json!({"action": "wait", "duration": 3600}), "duration"),
        (json!({"actoin": "screenshot"}), "('actoin' was unexpected)"),
    ] {
        let err = error_text(
            invoke(&rt, "computer", &sb.ctx, "computer", input.clone())
                .await
                .unwrap_err(),
        );
        assert!(err.contains(needle), "{input}: {err}");
    }
    assert!(
        sb.computer.take().iter().all(|a| !a.starts_with("click")),
        "no rejected click reached the screen"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_runs_commands_and_reports_exit_codes() {
    let rt = runtime();
    let sb = FakeSandbox::new();
    let out = invoke(&rt, "bash", &sb.ctx, "bash", json!({"command": "ls -la /"}))
        .await
        .unwrap();
    assert_eq!(texts(&out), "ran: ls -la /");
    let out = invoke(&rt, "bash", &sb.ctx, "bash", json!({"command": "exit 3"}))
        .await
        .unwrap();
    assert!(texts(&out).ends_with("[exit code 3]"), "{}", texts(&out));
    let err = error_text(
        invoke(&rt, "bash", &sb.ctx, "bash", json!({"command": "  "}))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("must not be empty"), "{err}");
    assert_eq!(*sb.shell.commands.lock().unwrap(), ["ls -la /", "exit 3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn editor_creates_views_edits_and_undoes() {
    let rt = runtime();
    let sb = FakeSandbox::new();
    let edit = |input: serde_json::Value| {
        let (rt, ctx) = (rt.clone(), sb.ctx.clone());
        async move { invoke(&rt, "editor", &ctx, "str_replace_based_edit_tool", input).await }
    };
    let file = |sb: &FakeSandbox| {
        String::from_utf8(sb.files.files.lock().unwrap()["/home/user/a.txt"].clone()).unwrap()
    };

    edit(
        json!({"command": "create", "path": "/home/user/a.txt", "file_text": "one\ntwo\nthree\n"}),
    )
    .await
    .unwrap();
    let out = edit(json!({"command": "view", "path": "/home/user/a.txt", "view_range": [2, 3]}))
        .await
        .unwrap();
    assert!(
        texts(&out).ends_with("     2\ttwo\n     3\tthree"),
        "{}",
        texts(&out)
    );

    edit(json!({"command": "str_replace", "path": "/home/user/a.txt", "old_str": "two", "new_str": "TWO"})).await.unwrap();
    assert_eq!(file(&sb), "one\nTWO\nthree\n");
    edit(json!({"command": "insert", "path": "/home/user/a.txt", "insert_line": 1, "insert_text": "one and a half"})).await.unwrap();
    assert_eq!(file(&sb), "one\none and a half\nTWO\nthree\n");

    let err = error_text(
        edit(json!({"command": "str_replace", "path": "/home/user/a.txt", "old_str": "one"}))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("appears 2 times"), "{err}");
    let err = error_text(
        edit(json!({"command": "str_replace", "path": "/home/user/a.txt", "old_str": "zzz"}))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("did not appear verbatim"), "{err}");

    edit(json!({"command": "undo_edit", "path": "/home/user/a.txt"}))
        .await
        .unwrap();
    assert_eq!(file(&sb), "one\nTWO\nthree\n");
    edit(json!({"command": "undo_edit", "path": "/home/user/a.txt"}))
        .await
        .unwrap();
    assert_eq!(file(&sb), "one\ntwo\nthree\n");
    let err = error_text(
        edit(json!({"command": "undo_edit", "path": "/home/user/a.txt"}))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("No edit history"), "{err}");

    let out = edit(json!({"command": "view", "path": "/home/user"}))
        .await
        .unwrap();
    assert!(texts(&out).contains("a.txt"), "{}", texts(&out));
    let err = error_text(
        edit(json!({"command": "view", "path": "relative.txt"}))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("absolute path"), "{err}");
    let err = error_text(
        edit(json!({"command": "view", "path": "/nope"}))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_examples_run() {
    let rt = runtime();
    let ctx = CallContext::default();
    let out = invoke(
        &rt,
        "text-stats",
        &ctx,
        "text_stats",
        json!({"text": "the cat and the hat\nbye", "top": 1}),
    )
    .await
    .unwrap();
    let stats: serde_json::Value = serde_json::from_str(&texts(&out)).unwrap();
    assert_eq!(
        stats,
        json!({"lines": 2, "words": 6, "characters": 23, "top_words": [["the", 2]]})
    );
    let err = error_text(
        invoke(&rt, "text-stats", &ctx, "text_stats", json!({"text": 5}))
            .await
            .unwrap_err(),
    );
    // The host checks the example's schema before the plugin runs.
    assert!(
        err.contains("at `/text`: 5 is not of type \"string\""),
        "{err}"
    );

    let out = invoke(
        &rt,
        "convert-case",
        &ctx,
        "convert_case",
        json!({"text": "Hello big World", "to": "snake"}),
    )
    .await
    .unwrap();
    assert_eq!(texts(&out), "hello_big_world");
    let err = error_text(
        invoke(
            &rt,
            "convert-case",
            &ctx,
            "convert_case",
            json!({"text": "x", "to": "upside-down"}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.starts_with("invalid:") && err.contains("at `/to`: \"upside-down\" is not one of"),
        "{err}"
    );
}

fn user(text: &str) -> Message {
    Message {
        role: Role::User,
        parts: vec![MessagePart::Text(text.into())],
    }
}

fn context(
    step: u32,
    history: Vec<Message>,
    tools: &[agenthost::plugins::bindings::current::types::ToolSpec],
) -> Context {
    Context {
        session_id: "s1".into(),
        step,
        history,
        tools: tools.to_vec(),
        state: None,
        config: "{}".into(),
    }
}

/// Appends the tool use and a result for it, as the host's loop does.
fn record(history: &mut Vec<Message>, call: &ToolUse, result: &str) {
    history.push(Message {
        role: Role::Assistant,
        parts: vec![MessagePart::ToolUse(call.clone())],
    });
    history.push(Message {
        role: Role::User,
        parts: vec![MessagePart::ToolResult(ToolResult {
            tool_use_id: call.id.clone(),
            content: vec![ContentPart::Text(result.into())],
            is_error: false,
        })],
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn scripted_policy_plans_steps_and_survives_a_swap_between_them() {
    let rt = runtime();
    let policy = Arc::new(load(&rt, "scripted-policy").await);
    let mut tools = load(&rt, "bash").await.tools().to_vec();
    tools.extend(load(&rt, "computer").await.tools().to_vec());
    let mut instance = PolicyInstance::new(
        rt.clone(),
        policy.clone(),
        requested_grants(&policy),
        CallContext::default(),
    )
    .unwrap();

    let mut history = vec![user("run `ls -la` then take a screenshot")];
    let first = instance
        .step(context(0, history.clone(), &tools))
        .await
        .unwrap()
        .unwrap();
    let Decision::Act(Act { calls, .. }) = first.decision else {
        panic!("expected tool calls")
    };
    assert_eq!(calls[0].name, "bash");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&calls[0].input).unwrap(),
        json!({"command": "ls -la"})
    );
    record(&mut history, &calls[0], "total 0");

    // Hot swap to another version of the policy between two steps.
    let (bytes, mut manifest) = component("scripted-policy");
    manifest.version = "0.2.0".into();
    let v2 = Arc::new(
        rt.load(bytes, Some(manifest), "scripted-policy")
            .await
            .unwrap(),
    );
    instance.swap(v2.clone(), requested_grants(&v2)).unwrap();
    assert_eq!(instance.plugin().manifest.version, "0.2.0");

    let second = instance
        .step(context(1, history.clone(), &tools))
        .await
        .unwrap()
        .unwrap();
    let Decision::Act(Act { calls, .. }) = second.decision else {
        panic!("expected tool calls")
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&calls[0].input).unwrap(),
        json!({"action": "screenshot"})
    );
    record(&mut history, &calls[0], "");

    let third = instance
        .step(context(2, history.clone(), &tools))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&third.decision, Decision::Reply(t) if t.starts_with("Done: 2 step(s)")),
        "{:?}",
        third.decision
    );

    let unknown = instance
        .step(context(3, vec![user("juggle")], &tools))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&unknown.decision, Decision::Reply(t) if t.contains("don't understand")),
        "{:?}",
        unknown.decision
    );
    let missing_tool = instance
        .step(context(4, vec![user("run ls")], &[]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&missing_tool.decision, Decision::Reply(t) if t.contains("does not have")),
        "{:?}",
        missing_tool.decision
    );
    let done = instance
        .step(context(5, vec![user("done")], &tools))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(done.decision, Decision::Finish(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_cannot_serve_as_a_policy() {
    let rt = runtime();
    let bash = Arc::new(load(&rt, "bash").await);
    let err = PolicyInstance::new(
        rt.clone(),
        bash.clone(),
        requested_grants(&bash),
        CallContext::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("not a policy"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_holds_a_call_to_the_tools_own_schema_before_it_runs() {
    let rt = runtime();
    let sb = FakeSandbox::new();
    // bash's schema says additionalProperties: false; the plugin itself
    // ignores unknown fields and would run `ls`.
    let err = error_text(
        invoke(
            &rt,
            "bash",
            &sb.ctx,
            "bash",
            json!({"command": "ls", "sudo": true}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.starts_with("invalid: the input does not match the tool's input schema"),
        "{err}"
    );
    assert!(
        err.contains("additionalProperties") && err.contains("'sudo'"),
        "{err}"
    );
    let err = error_text(
        invoke(
            &rt,
            "bash",
            &sb.ctx,
            "bash",
            json!({"command": "ls", "timeout_seconds": 0}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.contains("at `/timeout_seconds`") && err.contains("minimum"),
        "{err}"
    );
    assert!(
        sb.shell.commands.lock().unwrap().is_empty(),
        "the plugin never ran"
    );
    // A call the schema allows runs as before.
    invoke(&rt, "bash", &sb.ctx, "bash", json!({"command": "ls"}))
        .await
        .unwrap();
    assert_eq!(*sb.shell.commands.lock().unwrap(), ["ls"]);
}

/// `plugin check`'s advice for a component under a given manifest.
async fn advice_for(
    rt: &Runtime,
    name: &str,
    edit: impl FnOnce(&mut agenthost::plugins::Manifest),
) -> Vec<(String, String)> {
    let (bytes, mut manifest) = component(name);
    edit(&mut manifest);
    let plugin = rt.load(bytes, Some(manifest), name).await.unwrap();
    agenthost::plugins::advise(&plugin, true)
        .into_iter()
        .map(|a| (a.level.to_string(), a.message))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_advises_on_capabilities_and_names_that_load_but_mislead() {
    use agenthost::plugins::Capability;
    let rt = runtime();
    // As shipped: nothing to say.
    assert_eq!(advice_for(&rt, "bash", |_| {}).await, vec![]);
    // bash imports shell; a manifest without it would see every call denied.
    let advice = advice_for(&rt, "bash", |m| m.capabilities.clear()).await;
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert_eq!(advice[0].0, "warning");
    assert!(
        advice[0]
            .1
            .contains("imports `shell` but the manifest does not ask"),
        "{advice:?}"
    );
    // Asking for what it never imports.
    let advice = advice_for(&rt, "bash", |m| {
        m.capabilities.insert(Capability::Computer);
    })
    .await;
    assert!(
        advice[0]
            .1
            .contains("asks for `computer` but the component never imports it"),
        "{advice:?}"
    );
    // componentize-py imports the whole world: a note, not a warning per import.
    let advice = advice_for(&rt, "text-stats", |_| {}).await;
    assert!(
        advice.iter().all(|(level, _)| level == "note"),
        "{advice:?}"
    );
    assert!(
        advice[0].1.contains("imports every capability"),
        "{advice:?}"
    );
    // Every policy imports llm for its types; only a call needs the grant.
    assert_eq!(advice_for(&rt, "scripted-policy", |_| {}).await, vec![]);
    // A policy installed under another name than it gives itself.
    let advice = advice_for(&rt, "scripted-policy", |m| m.name = "scripted-b".into()).await;
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert!(
        advice[0]
            .1
            .contains("the component calls itself `scripted-policy`"),
        "{advice:?}"
    );
}
