//! The plugin contract across versions: components built against the
//! frozen WIT 0.1.0 (the `v0-1-*` fixtures in `plugins/testing`) load and
//! run on this host beside first-party components built against 0.2.0,
//! through the real runtime and the in-memory capability doubles.

use std::sync::{Arc, Mutex};

use agenthost::capabilities::{CallContext, ImageStore, LlmBackend};
use agenthost::plugins::bindings::current::llm::{
    Message, MessagePart, Request, Response, Role, StopReason, Thinking, Usage,
};
use agenthost::plugins::bindings::current::policy::{Context, Decision, PolicyError};
use agenthost::plugins::bindings::current::tool::{ToolError, ToolOutput};
use agenthost::plugins::bindings::current::types::{ContentPart, HostError, ToolUse};
use agenthost::plugins::{LoadError, PluginError, PluginKind, PolicyInstance, Runtime};
use agenthost_tests::{load, requested_grants, runtime, FakeSandbox};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The released 0.1.0 contract, byte for byte. A change here breaks every
/// plugin built against it: add a new version beside it instead.
const V0_1_0_SHA256: &str = "0936c6a217ab722c1f59eddbfc6ff8256fdf45d34cdd283bb133db8313113013";

#[test]
fn the_released_contract_is_frozen() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/v0.1.0/plugin.wit");
    let text = std::fs::read(path).expect("wit/v0.1.0/plugin.wit exists");
    assert_eq!(hex::encode(Sha256::digest(&text)), V0_1_0_SHA256);
}

#[tokio::test(flavor = "multi_thread")]
async fn both_versions_load_side_by_side() {
    let rt = runtime();
    for (name, kind, version) in [
        ("v0-1-tool", PluginKind::Tool, "0.1.0"),
        ("v0-1-policy", PluginKind::Policy, "0.1.0"),
        ("bash", PluginKind::Tool, "0.2.0"),
        ("scripted-policy", PluginKind::Policy, "0.2.0"),
    ] {
        let plugin = load(&rt, name).await;
        assert_eq!(plugin.kind(), kind, "{name}");
        assert_eq!(plugin.shape.wit_version, version, "{name}");
        assert_eq!(plugin.summary().wit_version, version, "{name}");
    }
    let old = load(&rt, "v0-1-tool").await;
    assert!(
        old.shape
            .imports
            .iter()
            .any(|i| i == "agenthost:plugin/shell@0.1.0"),
        "{:?}",
        old.shape.imports
    );
}

async fn invoke(
    rt: &Runtime,
    ctx: &CallContext,
    tool: &str,
    input: serde_json::Value,
) -> Result<ToolOutput, ToolError> {
    let plugin = load(rt, "v0-1-tool").await;
    let call = ToolUse {
        id: "c1".into(),
        name: tool.into(),
        input: input.to_string(),
    };
    rt.invoke_tool(&plugin, requested_grants(&plugin), ctx.clone(), call)
        .await
        .expect("no host-level failure")
}

fn text(out: &ToolOutput) -> String {
    out.content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(t) => Some(t.as_str()),
            ContentPart::Image(_) => None,
        })
        .collect()
}

/// Answers with a thinking part (which 0.1.0 cannot hold) and echoes the
/// last text it was sent; keeps the requests.
#[derive(Default)]
struct EchoLlm {
    requests: Mutex<Vec<Request>>,
}

#[async_trait::async_trait]
impl LlmBackend for EchoLlm {
    async fn complete(&self, request: Request, _: &ImageStore) -> Result<Response, HostError> {
        let said = request
            .messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .rev()
            .find_map(|p| match p {
                MessagePart::Text(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default();
        self.requests.lock().unwrap().push(request);
        Ok(Response {
            parts: vec![
                MessagePart::Thinking(Thinking {
                    text: "the person wants an echo".into(),
                    signature: Some("sig".into()),
                }),
                MessagePart::Text(format!("echo: {said}")),
            ],
            stop_reason: StopReason::EndTurn,
            usage: Usage {
                input_tokens: 1,
                output_tokens: 1,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_tool_reaches_every_interface_through_the_shims() {
    let rt = runtime();
    let mut sb = FakeSandbox::new();
    let llm = Arc::new(EchoLlm::default());
    sb.ctx.llm = Some(llm.clone());

    // shell: unchanged interface, shared implementation.
    let out = invoke(&rt, &sb.ctx, "v01_shell", json!({"command": "echo hi"}))
        .await
        .unwrap();
    assert_eq!(text(&out), "ran: echo hi");

    // computer.click: 0.1.0's numeric count and key names, mapped onto
    // 0.2.0's enum and flags.
    let out = invoke(
        &rt,
        &sb.ctx,
        "v01_click",
        json!({"x": 5, "y": 6, "count": 2, "modifiers": ["Shift", "ctrl"]}),
    )
    .await
    .unwrap();
    assert_eq!(text(&out), "clicked 2 time(s) at 5, 6");
    assert_eq!(sb.computer.take(), ["click left x2 at 5,6 [shift+ctrl]"]);
    for (input, complaint) in [
        (json!({"x": 5, "y": 6, "count": 4}), "must be 1, 2 or 3"),
        (
            json!({"x": 5, "y": 6, "count": 1, "modifiers": ["hyper"]}),
            "unknown modifier `hyper`",
        ),
    ] {
        let err = invoke(&rt, &sb.ctx, "v01_click", input).await.unwrap_err();
        assert!(
            matches!(&err, ToolError::Failed(m) if m.contains(complaint)),
            "{err:?}"
        );
    }
    assert!(sb.computer.take().is_empty(), "a refused click never ran");

    // llm: the old request gains no stop sequences; the reply loses the
    // thinking part the old types cannot carry, and keeps the text.
    let out = invoke(&rt, &sb.ctx, "v01_complete", json!({"prompt": "ping"}))
        .await
        .unwrap();
    assert_eq!(text(&out), "echo: ping");
    let sent = llm.requests.lock().unwrap().pop().unwrap();
    assert!(sent.stop_sequences.is_empty());
    assert_eq!(sent.messages.len(), 1);
}

fn user(text: &str) -> Message {
    Message {
        role: Role::User,
        parts: vec![MessagePart::Text(text.into())],
    }
}

fn context(history: Vec<Message>, state: Option<&[u8]>) -> Context {
    Context {
        session_id: "s1".into(),
        step: 0,
        history,
        tools: Vec::new(),
        state: state.map(<[u8]>::to_vec),
        config: "{}".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_policy_decides_in_the_new_types() {
    let rt = runtime();
    let plugin = Arc::new(load(&rt, "v0-1-policy").await);
    let mut policy = PolicyInstance::new(
        rt.clone(),
        plugin.clone(),
        requested_grants(&plugin),
        CallContext::default(),
    )
    .unwrap();
    let out = policy
        .step(context(vec![user("run ls -la")], None))
        .await
        .expect("no host-level failure")
        .unwrap();
    let Decision::Act(act) = out.decision else {
        panic!("expected an act: {:?}", out.decision)
    };
    assert_eq!(act.text.as_deref(), Some("running ls -la"));
    assert_eq!(act.calls.len(), 1);
    assert_eq!(act.calls[0].name, "bash");

    // 0.1.0's empty act was a reply, and still is for these components.
    let out = policy
        .step(context(vec![user("say hello")], None))
        .await
        .expect("no host-level failure")
        .unwrap();
    assert!(matches!(&out.decision, Decision::Reply(t) if t == "hello"));

    // The history may hold parts 0.1.0 has no case for: they are left out.
    let mut history = vec![user("recall")];
    history.insert(
        0,
        Message {
            role: Role::Assistant,
            parts: vec![MessagePart::Thinking(Thinking {
                text: "earlier reasoning".into(),
                signature: None,
            })],
        },
    );
    let out = policy
        .step(context(history, Some(b"kept")))
        .await
        .expect("no host-level failure")
        .unwrap();
    assert!(matches!(&out.decision, Decision::Reply(t) if t == "state: kept"));
    assert_eq!(out.state.as_deref(), Some(&b"kept"[..]));

    // A string error becomes the policy's own failure.
    let err = policy
        .step(context(vec![user("fail")], None))
        .await
        .expect("no host-level failure")
        .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Failed(m) if m.contains("on purpose")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_must_keep_to_one_released_version() {
    let rt = runtime();
    let load_err = |wat: &str| {
        let bytes = wat::parse_str(wat).unwrap();
        let rt = rt.clone();
        async move { rt.load(bytes, None, "x").await.unwrap_err() }
    };
    let mixed = load_err(
        r#"(component
             (import "agenthost:plugin/log@0.1.0" (instance))
             (instance $i)
             (export "agenthost:plugin/tool@0.2.0" (instance $i)))"#,
    )
    .await;
    assert!(
        matches!(mixed, PluginError::Load(LoadError::MixedVersions(_))),
        "{mixed}"
    );
    assert!(mixed.to_string().contains("0.1.0, 0.2.0"), "{mixed}");

    let draft = load_err(
        r#"(component
             (instance $i)
             (export "agenthost:plugin/tool@0.2.1-dev" (instance $i)))"#,
    )
    .await;
    assert!(
        matches!(draft, PluginError::Load(LoadError::UnreleasedVersion(_))),
        "{draft}"
    );
    assert!(
        draft.to_string().contains("allow_unreleased_wit"),
        "{draft}"
    );
}
