//! The `agenthost plugin` commands as an author runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn agenthost(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("agenthost runs")
}

fn plugins_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/plugins");
    assert!(
        dir.join("bash.wasm").is_file(),
        "run scripts/build-plugins.sh first"
    );
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_prints_the_component_as_json() {
    let data = tempfile::tempdir().unwrap();
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "check",
            plugins_dir().join("bash.wasm").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["world"], "tool-plugin");
    assert_eq!(v["wit_version"], "0.2.0");
    assert_eq!(v["capabilities_requested"], serde_json::json!(["shell"]));
    assert_eq!(v["tools"][0]["name"], "bash");
    assert_eq!(v["manifest"], "found");

    // A component built against the frozen 0.1.0 checks the same way.
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "check",
            plugins_dir().join("v0-1-tool.wasm").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["wit_version"], "0.1.0");
    assert_eq!(v["tools"][0]["name"], "v01_shell");
}

#[test]
fn bad_files_fail_with_a_message_and_nonzero_exit() {
    let data = tempfile::tempdir().unwrap();
    let junk = data.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    let out = agenthost(data.path(), &["plugin", "check", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a WebAssembly file"),
        "{}",
        stderr(&out)
    );

    let out = agenthost(data.path(), &["plugin", "check", "/no/such/file.wasm"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read /no/such/file.wasm"),
        "{}",
        stderr(&out)
    );

    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "install",
            junk.to_str().unwrap(),
            "--grant",
            "root",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn invoke_runs_a_call_and_reports_tool_errors() {
    let data = tempfile::tempdir().unwrap();
    let wasm = plugins_dir().join("text-stats.wasm");
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "invoke",
            wasm.to_str().unwrap(),
            "text_stats",
            r#"{"text":"a b a"}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let stats: serde_json::Value =
        serde_json::from_str(v["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(stats["words"], 3);

    let bash = plugins_dir().join("bash.wasm");
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "invoke",
            bash.to_str().unwrap(),
            "bash",
            r#"{"command":"ls"}"#,
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("agenthost plugin grant bash shell"),
        "{}",
        stderr(&out)
    );
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "invoke",
            bash.to_str().unwrap(),
            "bash",
            r#"{"command":"ls"}"#,
            "--grant",
            "shell",
        ],
    );
    assert!(
        stderr(&out).contains("no sandbox is attached"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn install_list_rollback_remove() {
    let data = tempfile::tempdir().unwrap();
    let wasm = plugins_dir().join("bash.wasm");
    let out = agenthost(data.path(), &["plugin", "install", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Grant with: agenthost plugin grant bash shell"),
        "{}",
        stdout(&out)
    );
    let out = agenthost(data.path(), &["plugin", "grant", "bash", "shell"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&agenthost(data.path(), &["plugin", "list"]))).unwrap();
    assert_eq!(list[0]["name"], "bash");
    assert_eq!(list[0]["granted"], serde_json::json!(["shell"]));

    let out = agenthost(data.path(), &["plugin", "rollback", "bash"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no earlier version"),
        "{}",
        stderr(&out)
    );
    let out = agenthost(data.path(), &["plugin", "activate", "bash@0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = agenthost(data.path(), &["plugin", "activate", "bash@9.9.9"]);
    assert!(
        stderr(&out).contains("not installed (installed: 0.1.0)"),
        "{}",
        stderr(&out)
    );
    let out = agenthost(data.path(), &["plugin", "remove", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = agenthost(data.path(), &["plugin", "remove", "bash"]);
    assert!(
        stderr(&out).contains("no plugin named `bash`"),
        "{}",
        stderr(&out)
    );
}

/// The scaffold is what a new author starts from: it must build as it is.
#[test]
fn new_scaffolds_crates_that_build_and_check() {
    let work = tempfile::tempdir().unwrap();
    // A stable target dir keeps wit-bindgen compiled across runs.
    let target = std::env::temp_dir().join("agenthost-scaffold-target");
    for (name, kind, world) in [
        ("hello-tool", "tool", "tool-plugin"),
        ("hello-policy", "policy", "policy-plugin"),
    ] {
        let out = agenthost(
            work.path(),
            &[
                "plugin",
                "new",
                name,
                "--kind",
                kind,
                "--dir",
                work.path().to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let crate_dir = work.path().join(name);
        let build = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(build.status.success(), "{}", stderr(&build));
        let wasm = target.join(format!(
            "wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ));
        let manifest = crate_dir.join("plugin.toml");
        let out = agenthost(
            work.path(),
            &[
                "plugin",
                "check",
                wasm.to_str().unwrap(),
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["world"], world);
        assert_eq!(v["name"], name);
    }
    let out = agenthost(
        work.path(),
        &[
            "plugin",
            "new",
            "hello-tool",
            "--dir",
            work.path().to_str().unwrap(),
        ],
    );
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn invoke_with_a_sandbox_runs_on_a_real_desktop() {
    let data = tempfile::tempdir().unwrap();
    let bash = plugins_dir().join("bash.wasm");
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "invoke",
            bash.to_str().unwrap(),
            "bash",
            r#"{"command":"uname -s; whoami"}"#,
            "--grant",
            "shell",
            "--sandbox",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["content"][0]["text"], "Linux\nagent\n");

    let images = data.path().join("shots");
    let computer = plugins_dir().join("computer.wasm");
    let out = agenthost(
        data.path(),
        &[
            "plugin",
            "invoke",
            computer.to_str().unwrap(),
            "computer",
            r#"{"action":"screenshot"}"#,
            "--grant",
            "computer",
            "--sandbox",
            "--images-dir",
            images.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let saved: Vec<_> = std::fs::read_dir(&images).unwrap().collect();
    assert_eq!(saved.len(), 1);
}

#[test]
fn token_create_prints_a_token_once_and_stores_its_hash() {
    let data = tempfile::tempdir().unwrap();
    let out = agenthost(
        data.path(),
        &["token", "create", "--user", "alice", "--admin"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("aht_") && token.len() > 40, "{token}");
    let db = std::fs::read(data.path().join("agenthost.db")).unwrap();
    let wal = std::fs::read(data.path().join("agenthost.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the token itself is never stored"
        );
    }
}

#[test]
fn token_list_shows_ids_and_revoke_removes_one() {
    let data = tempfile::tempdir().unwrap();
    let out = agenthost(data.path(), &["token", "create", "--user", "bob"]);
    let token = stdout(&out).trim().to_string();
    let out = agenthost(data.path(), &["token", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["user_id"], "bob");
    assert!(
        !stdout(&out).contains(&token),
        "the token is never shown again"
    );
    let out = agenthost(data.path(), &["token", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = agenthost(data.path(), &["token", "list"]);
    assert_eq!(stdout(&out).trim(), "[]");
    let out = agenthost(data.path(), &["token", "revoke", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("token list"), "{}", stderr(&out));
}

#[test]
fn serve_rejects_a_bad_config_file_clearly() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[agent]\nmax_stepz = 3\n",
    )
    .unwrap();
    let out = agenthost(
        data.path(),
        &["serve", "--config", config.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("config.toml") && err.contains("max_stepz"),
        "{err}"
    );

    let out = agenthost(
        data.path(),
        &["serve", "--config", "/nonexistent/agenthost.toml"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read config file"),
        "{}",
        stderr(&out)
    );
}

/// `agenthost plugin invoke` of the misbehaving fixture's `tool`, with flags.
fn invoke_fixture(data: &Path, tool: &str, flags: &[&str]) -> String {
    let wasm = plugins_dir().join("misbehaving-tool.wasm");
    let mut args = vec!["plugin", "invoke", wasm.to_str().unwrap(), tool, "{}"];
    args.extend_from_slice(flags);
    let out = agenthost(data, &args);
    assert!(!out.status.success(), "{tool} {flags:?} fails");
    stderr(&out)
}

#[test]
fn invoke_honours_the_configs_limits_and_its_own_flags() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    // The data directory's config.toml, as the server would read it.
    std::fs::write(data.join("config.toml"), "[limits]\ncpu = 300\n").unwrap();
    let err = invoke_fixture(data, "spin", &[]);
    assert!(err.contains("CPU time limit of 300ms"), "{err}");
    // Flags win over the file.
    let err = invoke_fixture(data, "spin", &["--cpu-ms", "100"]);
    assert!(err.contains("CPU time limit of 100ms"), "{err}");
    let err = invoke_fixture(data, "allocate", &["--memory-mb", "8"]);
    assert!(
        err.contains(&format!("memory limit of {} bytes", 8 << 20)),
        "{err}"
    );
    let err = invoke_fixture(data, "spin", &["--cpu-ms", "60000", "--wall-ms", "200"]);
    assert!(err.contains("time limit of 200ms"), "{err}");
}

#[test]
fn invoke_shows_what_the_plugin_printed_and_logged() {
    let data = tempfile::tempdir().unwrap();
    let wasm = plugins_dir().join("misbehaving-tool.wasm");
    let out = agenthost(
        data.path(),
        &["plugin", "invoke", wasm.to_str().unwrap(), "chatty", "{}"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["content"][0]["text"], "done",
        "stdout carries only the result"
    );
    let err = stderr(&out);
    assert!(err.contains("[misbehaving-tool] info: a log line"), "{err}");
    assert!(
        err.contains("printed to stdout") && err.contains("printed to stderr"),
        "{err}"
    );
}
