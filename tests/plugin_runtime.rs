//! The plugin runtime on real components: loading, validation, grants,
//! limits, the compiled cache, the registry and hot swap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use agenthost::capabilities::CallContext;
use agenthost::plugins::bindings::current::tool::ToolError;
use agenthost::plugins::bindings::current::types::ContentPart;
use agenthost::plugins::bindings::current::types::ToolUse;
use agenthost::plugins::{
    CacheOutcome, Capability, EffectiveGrants, InvokeError, Limits, LoadError, Manifest,
    PluginError, PluginKind, Registry, RegistryError, Runtime, RuntimeConfig,
};
use agenthost_tests::{
    component, load, requested_grants, runtime, runtime_with, FakeSandbox, FakeShell,
};

fn call(name: &str, input: &str) -> ToolUse {
    ToolUse {
        id: "t".into(),
        name: name.into(),
        input: input.into(),
    }
}

fn text(
    result: &Result<agenthost::plugins::bindings::current::tool::ToolOutput, ToolError>,
) -> String {
    match result {
        Ok(out) => out
            .content
            .iter()
            .map(|p| match p {
                ContentPart::Text(t) => t.clone(),
                ContentPart::Image(i) => format!("<image {}x{}>", i.width, i.height),
            })
            .collect(),
        Err(ToolError::InvalidInput(m)) => format!("invalid: {m}"),
        Err(ToolError::Failed(m)) => format!("failed: {m}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_component_loads_and_describes_itself() {
    let rt = runtime();
    let expect = [
        ("computer", PluginKind::Tool, "computer"),
        ("bash", PluginKind::Tool, "bash"),
        ("editor", PluginKind::Tool, "str_replace_based_edit_tool"),
        ("text-stats", PluginKind::Tool, "text_stats"),
        ("convert-case", PluginKind::Tool, "convert_case"),
        ("scripted-policy", PluginKind::Policy, ""),
    ];
    for (name, kind, tool) in expect {
        let plugin = load(&rt, name).await;
        assert_eq!(plugin.kind(), kind, "{name}");
        assert_eq!(plugin.shape.wit_version, "0.2.0");
        if kind == PluginKind::Tool {
            let names: Vec<_> = plugin.tools().iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, [tool], "{name}");
            let schema: serde_json::Value =
                serde_json::from_str(&plugin.tools()[0].input_schema).unwrap();
            assert_eq!(schema["type"], "object", "{name}");
        } else {
            assert!(plugin
                .summary()
                .policy
                .unwrap()
                .description
                .contains("scripted policy"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_are_read_from_imports_and_manifest() {
    let rt = runtime();
    let bash = load(&rt, "bash").await;
    assert_eq!(
        bash.shape.imported_capabilities,
        BTreeSet::from([Capability::Shell])
    );
    assert_eq!(
        bash.manifest.capabilities,
        BTreeSet::from([Capability::Shell])
    );
    // Without a manifest, what the component imports is what it asks for.
    let (bytes, _) = component("computer");
    let bare = rt.load(bytes, None, "computer").await.unwrap();
    assert_eq!(
        bare.manifest.capabilities,
        BTreeSet::from([Capability::Computer])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ungranted_capability_is_denied_naming_the_grant() {
    let rt = runtime();
    let plugin = load(&rt, "misbehaving-tool").await;
    let sandbox = FakeSandbox::new();

    let none = EffectiveGrants::new(
        "misbehaving-tool",
        plugin.manifest.capabilities.clone(),
        BTreeSet::new(),
    );
    let denied = rt
        .invoke_tool(&plugin, none, sandbox.ctx.clone(), call("use_shell", "{}"))
        .await
        .unwrap();
    let msg = text(&denied);
    assert!(
        msg.contains("denied") && msg.contains("agenthost plugin grant misbehaving-tool shell"),
        "{msg}"
    );
    assert!(
        sandbox.shell.commands.lock().unwrap().is_empty(),
        "a denied call must not reach the backend"
    );

    let granted = rt
        .invoke_tool(
            &plugin,
            requested_grants(&plugin),
            sandbox.ctx.clone(),
            call("use_shell", "{}"),
        )
        .await;
    assert_eq!(text(&granted.unwrap()), "ran: true");

    // Granting what the manifest did not ask for grants nothing.
    let (bytes, mut manifest) = component("misbehaving-tool");
    manifest.capabilities.clear();
    let unasked = rt.load(bytes, Some(manifest), "x").await.unwrap();
    let all = EffectiveGrants::new(
        "misbehaving-tool",
        BTreeSet::new(),
        Capability::ALL.into_iter().collect(),
    );
    let msg = text(
        &rt.invoke_tool(&unasked, all, sandbox.ctx, call("use_shell", "{}"))
            .await
            .unwrap(),
    );
    assert!(msg.contains("does not list `shell`"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_capability_without_sandbox_is_a_clear_error() {
    let rt = runtime();
    let plugin = load(&rt, "misbehaving-tool").await;
    let out = rt
        .invoke_tool(
            &plugin,
            requested_grants(&plugin),
            CallContext::default(),
            call("use_shell", "{}"),
        )
        .await;
    let msg = text(&out.unwrap());
    assert!(msg.contains("no sandbox is attached"), "{msg}");
}

async fn expect_load_error(bytes: Vec<u8>) -> PluginError {
    match runtime().load(bytes, None, "bad").await {
        Ok(_) => panic!("bad input loaded"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_files_are_rejected_with_a_clear_error() {
    let e = expect_load_error(b"#!/bin/sh\necho not wasm\n".to_vec()).await;
    assert!(matches!(e, PluginError::Load(LoadError::NotWasm(_))), "{e}");

    let core = wat::parse_str("(module (func (export \"f\")))").unwrap();
    let e = expect_load_error(core).await;
    assert!(matches!(e, PluginError::Load(LoadError::CoreModule)), "{e}");
    assert!(e.to_string().contains("wasm32-wasip2"));

    let (bash, _) = component("bash");
    let e = expect_load_error(bash[..bash.len() / 3].to_vec()).await;
    assert!(
        matches!(e, PluginError::Load(LoadError::InvalidComponent(_))),
        "{e}"
    );
    // wasmtime's own reason is kept as the source and shown in the report.
    let cause = std::error::Error::source(&e).expect("the compiler's error is the source");
    assert!(e.report().contains(&cause.to_string()), "{}", e.report());

    let empty = wat::parse_str("(component)").unwrap();
    let e = expect_load_error(empty).await;
    assert!(
        matches!(e, PluginError::Load(LoadError::UnknownWorld { .. })),
        "{e}"
    );

    let future = wat::parse_str(
        r#"(component
             (core module $m)
             (instance $i)
             (export "agenthost:plugin/tool@0.9.0" (instance $i)))"#,
    )
    .unwrap();
    let e = expect_load_error(future).await;
    assert!(
        matches!(&e, PluginError::Load(LoadError::UnsupportedVersion { found, .. }) if found == "0.9.0"),
        "{e}"
    );

    let foreign_import = wat::parse_str(
        r#"(component
             (import "acme:evil/backdoor@1.0.0" (instance))
             (instance $i)
             (export "agenthost:plugin/tool@0.2.0" (instance $i)))"#,
    )
    .unwrap();
    let e = expect_load_error(foreign_import).await;
    assert!(
        matches!(e, PluginError::Load(LoadError::UnsatisfiedImport(_))),
        "{e}"
    );
    assert!(e.to_string().contains("acme:evil/backdoor"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_problems_are_rejected() {
    let err = Manifest::parse("name = \"x\"\nversion = \"1.0.0\"\ncapabilities = [\"docker\"]\n")
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::UnknownCapability { .. }),
        "{err}"
    );

    let (bytes, mut manifest) = component("bash");
    manifest.kind = Some(PluginKind::Policy);
    let err = runtime()
        .load(bytes, Some(manifest), "bash")
        .await
        .expect_err("kind mismatch is an error");
    assert!(
        matches!(err, PluginError::Load(LoadError::KindMismatch { .. })),
        "{err}"
    );
}

/// Each misbehaviour gets its own error, and the runtime keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn faulty_guests_are_stopped_and_the_host_keeps_serving() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        cpu: Duration::from_millis(300),
        wall_clock: Duration::from_secs(20),
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    let rt = runtime_with(limits);
    let plugin = load(&rt, "misbehaving-tool").await;
    let grants = requested_grants(&plugin);
    let invoke = |name: &'static str, input: &'static str| {
        let (rt, grants) = (rt.clone(), grants.clone());
        let plugin = &plugin;
        async move {
            rt.invoke_tool(plugin, grants, CallContext::default(), call(name, input))
                .await
        }
    };

    let err = invoke("spin", "{}").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Invoke(InvokeError::CpuLimit { .. })),
        "{err}"
    );
    let err = invoke("allocate", "{}").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Invoke(InvokeError::MemoryLimit { limit_bytes, .. }) if limit_bytes == 64 << 20),
        "{err}"
    );
    let err = invoke("panic", "{}").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Invoke(InvokeError::Trap { .. })),
        "{err}"
    );
    assert!(
        std::error::Error::source(&err).is_some_and(|t| t.to_string().contains("unreachable")),
        "the trap is kept as the source: {}",
        err.report()
    );
    assert!(
        err.to_string().contains("panicked on purpose"),
        "the guest's panic message is reported: {err}"
    );
    let err = invoke("flood", "{}").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Invoke(InvokeError::OutputTooLarge { actual_bytes, .. }) if actual_bytes == 16 << 20),
        "{err}"
    );
    let err = invoke("echo", "{not json").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Invoke(InvokeError::InvalidInput(_))),
        "{err}"
    );
    let err = invoke("echo", "[1, 2]").await.unwrap_err();
    assert!(
        err.to_string().contains("JSON object, not an array"),
        "{err}"
    );
    let err = invoke("no_such_tool", "{}").await.unwrap_err();
    assert!(
        matches!(err, PluginError::Registry(RegistryError::UnknownTool(_))),
        "{err}"
    );

    // After all of that, the same plugin and runtime still answer.
    let ok = invoke("echo", r#"{"still":"here"}"#).await.unwrap();
    assert_eq!(text(&ok), r#"{"still":"here"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn wall_clock_timeout_covers_slow_host_calls() {
    let limits = Limits {
        wall_clock: Duration::from_millis(300),
        ..Limits::default()
    };
    let rt = runtime_with(limits);
    let plugin = load(&rt, "misbehaving-tool").await;
    // A shell that never answers: the gate has no permits.
    let sandbox = FakeSandbox::with_shell(FakeShell {
        gate: Some(Arc::new(tokio::sync::Semaphore::new(0))),
        ..FakeShell::default()
    });
    let err = rt
        .invoke_tool(
            &plugin,
            requested_grants(&plugin),
            sandbox.ctx,
            call("use_shell", "{}"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Invoke(InvokeError::WallClockTimeout { .. })
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compiled_cache_is_hit_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        limits: Limits::default(),
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    };
    let (bytes, manifest) = component("editor");
    let first = Runtime::new(config())
        .unwrap()
        .load(bytes.clone(), Some(manifest.clone()), "editor")
        .await
        .unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    // A new runtime is what a restarted host has.
    let second = Runtime::new(config())
        .unwrap()
        .load(bytes, Some(manifest), "editor")
        .await
        .unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert_eq!(first.sha256, second.sha256);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        limits: Limits::default(),
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let (bytes, manifest) = component("bash");
    Runtime::new(config())
        .unwrap()
        .load(bytes.clone(), Some(manifest.clone()), "bash")
        .await
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let again = Runtime::new(config())
        .unwrap()
        .load(bytes, Some(manifest), "bash")
        .await
        .unwrap();
    assert_eq!(again.cache, CacheOutcome::Compiled);
}

async fn registry(dir: &std::path::Path) -> Registry {
    Registry::open(runtime(), dir).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_installs_lists_grants_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    let (bytes, manifest) = component("bash");
    reg.install(
        bytes,
        Some(manifest),
        "bash",
        &BTreeSet::from([Capability::Shell]),
    )
    .await
    .unwrap();
    let (bytes, manifest) = component("scripted-policy");
    reg.install(bytes, Some(manifest), "scripted-policy", &BTreeSet::new())
        .await
        .unwrap();

    let sandbox = FakeSandbox::new();
    let out = reg
        .invoke_tool(
            call("bash", r#"{"command":"echo hi"}"#),
            sandbox.ctx.clone(),
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "ran: echo hi");
    assert!(reg.policy("scripted-policy").is_ok());
    let err = reg.policy("bash").err().unwrap();
    assert!(matches!(err, RegistryError::WrongKind { .. }), "{err}");

    reg.revoke("bash", &BTreeSet::from([Capability::Shell]))
        .unwrap();
    let out = reg
        .invoke_tool(
            call("bash", r#"{"command":"echo hi"}"#),
            sandbox.ctx.clone(),
        )
        .await
        .unwrap();
    assert!(
        text(&out).contains("has not been granted the `shell` capability"),
        "{}",
        text(&out)
    );
    reg.grant("bash", &BTreeSet::from([Capability::Shell]))
        .unwrap();
    drop(reg);

    // A restarted host finds the same plugins and grants.
    let reg = registry(dir.path()).await;
    let names: Vec<_> = reg
        .list()
        .into_iter()
        .map(|p| (p.summary.name, p.granted))
        .collect();
    assert_eq!(
        names,
        [
            ("bash".to_string(), BTreeSet::from([Capability::Shell])),
            ("scripted-policy".to_string(), BTreeSet::new())
        ]
    );
    let out = reg
        .invoke_tool(call("bash", r#"{"command":"echo again"}"#), sandbox.ctx)
        .await
        .unwrap();
    assert_eq!(text(&out), "ran: echo again");

    reg.remove("bash").unwrap();
    assert!(matches!(
        reg.get("bash"),
        Err(RegistryError::NotInstalled(_))
    ));
    assert!(matches!(
        reg.remove("bash"),
        Err(RegistryError::NotInstalled(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_install_changes_nothing_and_tool_names_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    let (bytes, manifest) = component("bash");
    reg.install(
        bytes.clone(),
        Some(manifest.clone()),
        "bash",
        &BTreeSet::new(),
    )
    .await
    .unwrap();

    let mut v2 = manifest.clone();
    v2.version = "0.2.0".into();
    let err = reg
        .install(bytes[..1000].to_vec(), Some(v2), "bash", &BTreeSet::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Load(LoadError::InvalidComponent(_))),
        "{err}"
    );
    assert_eq!(reg.get("bash").unwrap().manifest.version, "0.1.0");

    let mut other = manifest;
    other.name = "another-bash".into();
    let err = reg
        .install(bytes, Some(other), "another-bash", &BTreeSet::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Registry(RegistryError::DuplicateTool { .. })
        ),
        "{err}"
    );
    assert_eq!(reg.list().len(), 1);
}

/// Installs misbehaving-tool at `version`; `shell` says whether that
/// version's manifest asks for the shell capability.
async fn install_version(reg: &Registry, version: &str, shell: bool) {
    let (bytes, mut manifest) = component("misbehaving-tool");
    manifest.version = version.into();
    if !shell {
        manifest.capabilities.clear();
    }
    reg.install(
        bytes,
        Some(manifest),
        "misbehaving-tool",
        &BTreeSet::from([Capability::Shell]),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_swap_under_concurrent_calls_fails_none() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(registry(dir.path()).await);
    install_version(&reg, "1.0.0", true).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for worker in 0..4 {
        let (reg, stop) = (reg.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || ok < 20 {
                let input = format!(r#"{{"worker":{worker},"n":{ok}}}"#);
                match reg
                    .invoke_tool(call("echo", &input), CallContext::default())
                    .await
                {
                    Ok(Ok(out)) if text(&Ok(out.clone())) == input => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    for round in 0..5 {
        install_version(&reg, &format!("2.0.{round}"), true).await;
        reg.rollback("misbehaving-tool").await.unwrap();
    }
    install_version(&reg, "3.0.0", true).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in callers {
        let (ok, failed) = c.await.unwrap();
        assert_eq!(failed, 0, "no call may fail during a swap");
        total += ok;
    }
    assert!(total >= 80);
    assert_eq!(
        reg.get("misbehaving-tool").unwrap().manifest.version,
        "3.0.0"
    );
    // Rollbacks keep the newer versions; the five newest are kept.
    assert_eq!(
        reg.list()[0].versions,
        ["2.0.1", "2.0.2", "2.0.3", "2.0.4", "3.0.0"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_versions_are_semver_and_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    let (bytes, manifest) = component("misbehaving-tool");
    for bad in [
        "..",
        "../../etc",
        "/abs",
        "1.0",
        "1.0.0/..",
        "１.0.0",
        "1.0.0\u{202e}",
    ] {
        let mut m = manifest.clone();
        m.version = bad.into();
        let err = reg
            .install(bytes.clone(), Some(m), "misbehaving-tool", &BTreeSet::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PluginError::Registry(RegistryError::BadManifest(_))),
            "{bad:?}: {err}"
        );
    }
    for bad in ["..", "a/b", "/abs"] {
        assert!(reg.activate(bad, "1.0.0").await.is_err());
        assert!(reg.remove(bad).is_err());
    }
    assert!(dir.path().join("plugins").is_dir());

    install_version(&reg, "1.0.0", true).await;
    install_version(&reg, "1.0.0", true).await; // the same bytes: a no-op
    let mut other = manifest.clone();
    other.version = "1.0.0".into();
    let mut changed = bytes.clone();
    // A custom section "abc": a valid component with other bytes.
    changed.extend_from_slice(&[0, 4, 3, b'a', b'b', b'c']);
    let err = reg
        .install(changed, Some(other), "misbehaving-tool", &BTreeSet::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Registry(RegistryError::VersionExists { .. })
        ),
        "{err}"
    );

    install_version(&reg, "1.1.0", true).await;
    reg.rollback("misbehaving-tool").await.unwrap();
    let listed = &reg.list()[0];
    assert_eq!(listed.summary.version, "1.0.0");
    assert_eq!(listed.versions, ["1.0.0", "1.1.0"], "the newer one stays");
    reg.activate("misbehaving-tool", "1.1.0").await.unwrap();
    assert_eq!(
        reg.get("misbehaving-tool").unwrap().manifest.version,
        "1.1.0"
    );
    let err = reg.activate("misbehaving-tool", "9.9.9").await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Registry(RegistryError::VersionNotInstalled { .. })
        ),
        "{err}"
    );
    // And after a restart, the active version is still the chosen one.
    drop(reg);
    let reg = registry(dir.path()).await;
    assert_eq!(
        reg.get("misbehaving-tool").unwrap().manifest.version,
        "1.1.0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_calls_finish_on_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(registry(dir.path()).await);
    // v1 asks for shell; v2 does not, so a call that reaches v2 is denied.
    install_version(&reg, "1.0.0", true).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let sandbox = FakeSandbox::with_shell(FakeShell {
        gate: Some(gate.clone()),
        entered: Some(entered.clone()),
        ..FakeShell::default()
    });

    let in_flight = {
        let (reg, ctx) = (reg.clone(), sandbox.ctx.clone());
        tokio::spawn(async move { reg.invoke_tool(call("use_shell", "{}"), ctx).await })
    };
    entered.notified().await; // the v1 call is inside the shell now
    install_version(&reg, "2.0.0", false).await;

    let after = reg
        .invoke_tool(call("use_shell", "{}"), sandbox.ctx.clone())
        .await
        .unwrap();
    assert!(
        text(&after).contains("does not list `shell`"),
        "new calls run on v2: {}",
        text(&after)
    );
    gate.add_permits(1);
    let before = in_flight.await.unwrap().unwrap();
    assert_eq!(
        text(&before),
        "ran: true",
        "the in-flight call completed on v1"
    );

    let rolled = reg.rollback("misbehaving-tool").await.unwrap();
    assert_eq!(rolled.manifest.version, "1.0.0");
    gate.add_permits(1);
    let back = reg
        .invoke_tool(call("use_shell", "{}"), sandbox.ctx)
        .await
        .unwrap();
    assert_eq!(text(&back), "ran: true");
    let err = reg.rollback("misbehaving-tool").await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Registry(RegistryError::NoPreviousVersion(_))
        ),
        "{err}"
    );
}
