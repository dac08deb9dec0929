//! The host side of every capability, called directly: no guest, no
//! engine, no Docker. Each test builds a `HostState` with the grants it
//! wants and the in-memory doubles from `tests/support`, calls the WIT
//! host trait the way the generated bindings would, and checks what the
//! backend saw. This is where the checks in front of the backends (the
//! grant gate, input bounds, the missing-sandbox error, the host-call
//! timeout) and the 0.1.0 shims are pinned down, in milliseconds.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenthost::capabilities::{CallContext, HostState, ImageStore, LlmBackend, LogSink};
use agenthost::plugins::bindings::current::{computer, files, llm, log, shell, types::HostError};
use agenthost::plugins::bindings::v0_1_0;
use agenthost::plugins::{Capability, EffectiveGrants, Limits};
use agenthost_tests::{FakeSandbox, FakeShell};
use async_trait::async_trait;

const ALL: [Capability; 4] = [
    Capability::Computer,
    Capability::Shell,
    Capability::Files,
    Capability::Llm,
];

/// A plugin that asked for `requested` and was granted `granted`.
fn state(requested: &[Capability], granted: &[Capability], ctx: CallContext) -> HostState {
    let set = |caps: &[Capability]| caps.iter().copied().collect::<BTreeSet<_>>();
    let grants = EffectiveGrants::new("probe", set(requested), set(granted));
    HostState::new(grants, ctx, &Limits::default())
}

fn granted_all(ctx: CallContext) -> HostState {
    state(&ALL, &ALL, ctx)
}

fn is_denied(r: Result<impl std::fmt::Debug, HostError>) -> bool {
    matches!(r, Err(HostError::Denied(_)))
}

fn is_invalid(r: Result<impl std::fmt::Debug, HostError>) -> bool {
    matches!(r, Err(HostError::Invalid(_)))
}

fn point(x: i32, y: i32) -> computer::Point {
    computer::Point { x, y }
}

fn command(text: &str) -> shell::Command {
    shell::Command {
        command: text.into(),
        cwd: None,
        env: vec![],
        timeout_ms: None,
    }
}

#[tokio::test]
async fn an_ungranted_capability_is_denied_before_any_backend_is_touched() {
    let sandbox = FakeSandbox::new();
    // Asked for everything, granted nothing; then granted, never asked.
    for (requested, granted) in [(&ALL[..], &[][..]), (&[][..], &ALL[..])] {
        let mut s = state(requested, granted, sandbox.ctx.clone());
        assert!(is_denied(shell::Host::run(&mut s, command("id")).await));
        assert!(is_denied(
            files::Host::read(&mut s, "/etc/passwd".into()).await
        ));
        assert!(is_denied(
            files::Host::write(&mut s, "/tmp/x".into(), b"x".to_vec()).await
        ));
        assert!(is_denied(computer::Host::screenshot(&mut s).await));
        assert!(is_denied(computer::Host::wait(&mut s, 1).await));
        assert!(is_denied(
            computer::Host::click(
                &mut s,
                point(1, 1),
                computer::MouseButton::Left,
                computer::ClickCount::Single,
                computer::Modifiers::empty(),
            )
            .await
        ));
        assert!(is_denied(llm::Host::complete(&mut s, request(&[])).await));
    }
    assert!(sandbox.shell.commands.lock().unwrap().is_empty());
    assert!(sandbox.files.files.lock().unwrap().is_empty());
    assert!(sandbox.computer.take().is_empty());
}

#[tokio::test]
async fn a_granted_capability_reaches_its_backend() {
    let sandbox = FakeSandbox::new();
    let mut s = granted_all(sandbox.ctx.clone());

    let out = shell::Host::run(&mut s, command("uname -a")).await.unwrap();
    assert_eq!(out.stdout, "ran: uname -a");
    assert_eq!(*sandbox.shell.commands.lock().unwrap(), ["uname -a"]);

    files::Host::write(&mut s, "/home/user/a.txt".into(), b"hi".to_vec())
        .await
        .unwrap();
    assert_eq!(
        files::Host::read(&mut s, "/home/user/a.txt".into())
            .await
            .unwrap(),
        b"hi"
    );
    let entries = files::Host::list_dir(&mut s, "/home/user".into())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, "a.txt");

    let shot = computer::Host::screenshot(&mut s).await.unwrap();
    assert_eq!((shot.width, shot.height), (1280, 800));
    // The handle resolves in the call's image store, to what the backend made.
    let stored = sandbox.ctx.images.get(&shot.handle).expect("image stored");
    assert_eq!(&*stored.bytes, b"png 1280x800");
    computer::Host::click(
        &mut s,
        point(5, 6),
        computer::MouseButton::Right,
        computer::ClickCount::Double,
        computer::Modifiers::SHIFT | computer::Modifiers::SUPER,
    )
    .await
    .unwrap();
    assert_eq!(
        sandbox.computer.take(),
        ["screenshot", "click right x2 at 5,6 [shift+super]"]
    );
}

#[tokio::test]
async fn sandbox_capabilities_without_a_sandbox_say_so() {
    let mut s = granted_all(CallContext::default());
    for r in [
        shell::Host::run(&mut s, command("id")).await.map(|_| ()),
        files::Host::read(&mut s, "/x".into()).await.map(|_| ()),
        computer::Host::screenshot(&mut s).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(HostError::NoSandbox(_))), "{r:?}");
    }
    // No provider configured is a failure the policy can report, not a trap.
    let r = llm::Host::complete(&mut s, request(&[])).await;
    assert!(
        matches!(&r, Err(HostError::Failed(m)) if m.contains("no LLM provider")),
        "{r:?}"
    );
}

#[tokio::test]
async fn inputs_are_bounded_before_the_backend_sees_them() {
    let sandbox = FakeSandbox::new();
    let mut s = granted_all(sandbox.ctx.clone());
    let size = |width, height| computer::Size { width, height };

    assert!(is_invalid(shell::Host::run(&mut s, command("  \n")).await));
    assert!(is_invalid(files::Host::read(&mut s, String::new()).await));
    assert!(is_invalid(files::Host::stat(&mut s, "/a\0b".into()).await));
    let too_big = vec![0u8; (64 << 20) + 1];
    assert!(is_invalid(
        files::Host::write(&mut s, "/tmp/big".into(), too_big).await
    ));
    assert!(is_invalid(
        computer::Host::screenshot_region(&mut s, point(0, 0), size(0, 10), size(10, 10)).await
    ));
    assert!(is_invalid(
        computer::Host::screenshot_region(&mut s, point(0, 0), size(10, 10), size(4097, 4096))
            .await
    ));
    assert!(is_invalid(computer::Host::wait(&mut s, 60_001).await));
    assert!(is_invalid(
        computer::Host::hold_key(&mut s, "a".into(), 60_001).await
    ));
    assert!(is_invalid(
        computer::Host::type_text(&mut s, String::new()).await
    ));
    assert!(is_invalid(
        computer::Host::type_text(&mut s, "x".repeat((64 << 10) + 1)).await
    ));
    assert!(is_invalid(
        computer::Host::scroll(
            &mut s,
            point(0, 0),
            computer::ScrollDirection::Down,
            101,
            computer::Modifiers::empty()
        )
        .await
    ));
    let stops = |list: &[&str]| {
        let mut r = request(&[]);
        r.stop_sequences = list.iter().map(|s| s.to_string()).collect();
        r
    };
    assert!(is_invalid(
        llm::Host::complete(&mut s, stops(&["a", "b", "c", "d", "e"])).await
    ));
    assert!(is_invalid(llm::Host::complete(&mut s, stops(&[""])).await));
    assert!(is_invalid(
        llm::Host::complete(&mut s, stops(&[&"x".repeat(257)])).await
    ));

    assert!(sandbox.shell.commands.lock().unwrap().is_empty());
    assert!(sandbox.files.files.lock().unwrap().is_empty());
    assert!(sandbox.computer.take().is_empty());

    // Just inside the bounds is accepted.
    computer::Host::screenshot_region(&mut s, point(3, 4), size(10, 10), size(4096, 4096))
        .await
        .unwrap();
    assert_eq!(
        sandbox.computer.take(),
        ["screenshot 3,4 10x10 -> 4096x4096"]
    );
}

#[tokio::test]
async fn a_backend_that_never_answers_is_cut_off_by_the_host_call_timeout() {
    // The gate has no permits: the shell call blocks until the timeout.
    let sandbox = FakeSandbox::with_shell(FakeShell {
        gate: Some(Arc::new(tokio::sync::Semaphore::new(0))),
        ..FakeShell::default()
    });
    let ctx = CallContext {
        host_call_timeout: Duration::from_millis(50),
        ..sandbox.ctx.clone()
    };
    let mut s = granted_all(ctx);
    let r = shell::Host::run(&mut s, command("sleep forever")).await;
    assert!(
        matches!(&r, Err(HostError::Timeout(m)) if m.contains("shell command")),
        "{r:?}"
    );
}

/// A provider double: records requests, answers with canned parts.
#[derive(Default)]
struct RecordingLlm {
    requests: Mutex<Vec<llm::Request>>,
    reply: Vec<llm::MessagePart>,
}

#[async_trait]
impl LlmBackend for RecordingLlm {
    async fn complete(
        &self,
        request: llm::Request,
        _images: &ImageStore,
    ) -> Result<llm::Response, HostError> {
        self.requests.lock().unwrap().push(request);
        Ok(llm::Response {
            parts: self.reply.clone(),
            stop_reason: llm::StopReason::EndTurn,
            usage: llm::Usage {
                input_tokens: 3,
                output_tokens: 2,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
        })
    }
}

fn request(parts: &[&str]) -> llm::Request {
    llm::Request {
        model: None,
        system: None,
        messages: vec![llm::Message {
            role: llm::Role::User,
            parts: parts
                .iter()
                .map(|t| llm::MessagePart::Text(t.to_string()))
                .collect(),
        }],
        tools: vec![],
        max_tokens: 64,
        temperature: None,
        stop_sequences: vec![],
    }
}

fn with_llm(backend: Arc<RecordingLlm>) -> CallContext {
    CallContext {
        llm: Some(backend),
        ..CallContext::default()
    }
}

#[tokio::test]
async fn llm_completion_goes_to_the_provider_as_asked() {
    let backend = Arc::new(RecordingLlm {
        reply: vec![llm::MessagePart::Text("hello".into())],
        ..RecordingLlm::default()
    });
    let mut s = granted_all(with_llm(backend.clone()));
    let mut req = request(&["hi"]);
    req.stop_sequences = vec!["STOP".into()];
    let response = llm::Host::complete(&mut s, req).await.unwrap();
    assert!(matches!(&response.parts[..], [llm::MessagePart::Text(t)] if t == "hello"));
    let seen = backend.requests.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].stop_sequences, ["STOP"]);
}

/// Keeps what plugins log.
#[derive(Default)]
struct KeptLog(Mutex<Vec<(String, String)>>);

impl LogSink for KeptLog {
    fn log(&self, plugin: &str, _level: log::Level, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push((plugin.to_string(), message.to_string()));
    }
}

#[tokio::test]
async fn log_needs_no_grant_and_a_long_line_is_cut_on_a_character_boundary() {
    let kept = Arc::new(KeptLog::default());
    let ctx = CallContext {
        log: kept.clone(),
        ..CallContext::default()
    };
    let mut s = state(&[], &[], ctx);
    log::Host::log(&mut s, log::Level::Info, "short".into()).await;
    // 4095 ASCII bytes then a 3-byte character straddling the 4 KiB cut.
    let long = format!("{}€tail", "a".repeat(4095));
    log::Host::log(&mut s, log::Level::Warn, long).await;
    let lines = kept.0.lock().unwrap();
    assert_eq!(lines[0], ("probe".to_string(), "short".to_string()));
    assert_eq!(lines[1].1, format!("{} [truncated]", "a".repeat(4095)));
}

#[tokio::test]
async fn the_0_1_0_shims_convert_and_forward_to_the_same_checks() {
    let sandbox = FakeSandbox::new();
    let mut s = granted_all(sandbox.ctx.clone());
    let at = v0_1_0::computer::Point { x: 7, y: 8 };
    let left = v0_1_0::computer::MouseButton::Left;

    // 0.1.0's click count was a u8 and its modifiers key names.
    let mods = vec!["Control_L".to_string(), "shift".to_string()];
    v0_1_0::computer::Host::click(&mut s, at, left, 3, mods)
        .await
        .unwrap();
    assert!(is_invalid(
        v0_1_0::computer::Host::click(&mut s, at, left, 4, vec![]).await
    ));
    assert!(is_invalid(
        v0_1_0::computer::Host::click(&mut s, at, left, 1, vec!["a".into()]).await
    ));
    assert_eq!(
        sandbox.computer.take(),
        ["click left x3 at 7,8 [shift+ctrl]"]
    );

    // The grant gate is the one the newest version uses.
    let mut denied = state(&ALL, &[], sandbox.ctx.clone());
    assert!(is_denied(
        v0_1_0::computer::Host::click(&mut denied, at, left, 1, vec![]).await
    ));

    // A 0.1.0 policy cannot hold thinking or opaque parts: they are left
    // out of what it gets back; its request arrives as a 0.2.0 request.
    let backend = Arc::new(RecordingLlm {
        reply: vec![
            llm::MessagePart::Thinking(llm::Thinking {
                text: "hmm".into(),
                signature: Some("sig".into()),
            }),
            llm::MessagePart::Text("answer".into()),
            llm::MessagePart::Opaque(llm::Opaque {
                provider: "x".into(),
                data: "{}".into(),
            }),
        ],
        ..RecordingLlm::default()
    });
    let mut s = granted_all(with_llm(backend.clone()));
    let old_request = v0_1_0::llm::Request {
        model: None,
        system: Some("be brief".into()),
        messages: vec![v0_1_0::llm::Message {
            role: v0_1_0::llm::Role::User,
            parts: vec![v0_1_0::llm::MessagePart::Text("hi".into())],
        }],
        tools: vec![],
        max_tokens: 64,
        temperature: None,
    };
    let response = v0_1_0::llm::Host::complete(&mut s, old_request)
        .await
        .unwrap();
    assert!(
        matches!(&response.parts[..], [v0_1_0::llm::MessagePart::Text(t)] if t == "answer"),
        "{:?}",
        response.parts
    );
    let seen = backend.requests.lock().unwrap();
    assert_eq!(seen[0].system.as_deref(), Some("be brief"));
    assert!(seen[0].stop_sequences.is_empty());
}
