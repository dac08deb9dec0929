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

/// `AGENTHOST_CACHE_DIR` moves the compiled cache out of the data
/// directory, so hosts and commands on one machine can share it.
#[test]
fn the_compiled_cache_goes_where_agenthost_cache_dir_says() {
    let data = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let cwasm_in = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    let bash = plugins_dir().join("bash.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["plugin", "check", bash.to_str().unwrap()])
        .env("AGENTHOST_CACHE_DIR", shared.path())
        .output()
        .expect("agenthost runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cwasm_in(shared.path()), 1);
    assert_eq!(cwasm_in(&data.path().join("cache")), 0);

    // Unset (or empty), the cache is the data directory's.
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["plugin", "check", bash.to_str().unwrap()])
        .env("AGENTHOST_CACHE_DIR", "")
        .output()
        .expect("agenthost runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cwasm_in(&data.path().join("cache")), 1);
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
/// Where generated Rust plugin projects compile: one directory for all of
/// them (and across runs), as `plugin build` shares one by default.
fn plugin_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("plugin-kit"))
        .unwrap_or_else(|| std::env::temp_dir().join("agenthost-plugin-kit"))
}

fn kit(work: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--data-dir")
        .arg(work.join("data"))
        .args(args)
        .env("CARGO_TARGET_DIR", plugin_target_dir())
        // A provider configured on the machine must not answer for the recording.
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .expect("agenthost runs")
}

fn json_out(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A fresh template draws no warning (Python and JavaScript components get
/// a note that they import the whole world).
fn assert_no_warnings(check: &serde_json::Value) {
    let advice = check["advice"].as_array().unwrap();
    assert!(advice.iter().all(|a| a["level"] != "warning"), "{advice:?}");
}

/// `plugin new` (tool and policy), `plugin build`, `plugin check`, `plugin
/// invoke` and `plugin step` for one language, in a directory outside this
/// repository, as an author starting from nothing would.
fn templates_build_check_and_run(lang: &str) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let dir = w.to_str().unwrap();

    // The tool.
    let tool = format!("{lang}-echo");
    let out = kit(w, &["plugin", "new", &tool, "--lang", lang, "--dir", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kit(w, &["plugin", "build", w.join(&tool).to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wasm = stdout(&out).lines().last().unwrap().to_string();
    assert_eq!(
        PathBuf::from(&wasm),
        w.join(&tool)
            .join(format!("{tool}.wasm"))
            .canonicalize()
            .unwrap()
    );

    let out = kit(w, &["plugin", "check", &wasm]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_out(&out);
    assert_eq!(v["world"], "tool-plugin");
    assert_eq!(v["name"], tool.as_str());
    assert_no_warnings(&v);
    let tool_name = tool.replace('-', "_");
    assert_eq!(v["tools"][0]["name"], tool_name.as_str());

    let out = kit(
        w,
        &[
            "plugin",
            "invoke",
            &wasm,
            &tool_name,
            r#"{"text": "hi", "times": 3}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["content"][0]["text"], "hi hi hi");
    assert!(
        stderr(&out).contains("info: echoing 2 characters"),
        "{}",
        stderr(&out)
    );
    // The schema the template declares holds before the plugin runs.
    let out = kit(
        w,
        &[
            "plugin",
            "invoke",
            &wasm,
            &tool_name,
            r#"{"text": "hi", "loud": true}"#,
        ],
    );
    assert!(!out.status.success());
    assert_eq!(json_out(&out)["error"]["kind"], "invalid_input");
    assert!(
        !stderr(&out).contains("echoing"),
        "the plugin must not run: {}",
        stderr(&out)
    );

    // The policy, its model answered from a recording.
    let policy = format!("{lang}-agent");
    let out = kit(
        w,
        &[
            "plugin", "new", &policy, "--kind", "policy", "--lang", lang, "--dir", dir,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kit(w, &["plugin", "build", w.join(&policy).to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wasm = stdout(&out).lines().last().unwrap().to_string();
    let out = kit(w, &["plugin", "check", &wasm]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_out(&out);
    assert_eq!(v["world"], "policy-plugin");
    assert_eq!(v["name"], policy.as_str());
    assert_no_warnings(&v);

    let answers = w.join("answers.json");
    std::fs::write(
        &answers,
        r#"{"llm": [{"text": "Looking.", "tool_uses": [{"name": "bash", "input": {"command": "ls"}}]}]}"#,
    )
    .unwrap();
    let out = kit(
        w,
        &[
            "plugin",
            "step",
            &wasm,
            "--message",
            "list my files",
            "--replay",
            answers.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_out(&out);
    assert_eq!(v["decision"]["type"], "act", "{v}");
    assert_eq!(v["decision"]["text"], "Looking.");
    assert_eq!(v["decision"]["calls"][0]["name"], "bash");
    assert_eq!(v["decision"]["calls"][0]["input"]["command"], "ls");
    assert_eq!(v["replayed_answers"], 1);

    // A history file of session events, as the API returns them, then a reply.
    let history = w.join("history.json");
    std::fs::write(
        &history,
        serde_json::json!({"events": [
            {"id": "e1", "seq": 1, "session_id": "s", "kind": "user_message", "source": "user", "ts": 0, "payload": {"text": "hi"}},
            {"id": "e2", "seq": 2, "session_id": "s", "kind": "assistant_message", "source": "agent", "ts": 0, "payload": {"text": "Hello."}},
        ]})
        .to_string(),
    )
    .unwrap();
    std::fs::write(&answers, r#"{"llm": [{"text": "Nothing to do."}]}"#).unwrap();
    let out = kit(
        w,
        &[
            "plugin",
            "step",
            &wasm,
            "--history",
            history.to_str().unwrap(),
            "--message",
            "thanks",
            "--replay",
            answers.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_out(&out);
    assert_eq!(
        v["decision"],
        serde_json::json!({"type": "reply", "text": "Nothing to do."})
    );
    assert_eq!(v["context"]["messages"], 3);
    assert_eq!(v["context"]["step"], 1);

    // Out of recorded answers: the host error reaches the policy, which passes it on.
    std::fs::write(&answers, r#"{"llm": []}"#).unwrap();
    let out = kit(
        w,
        &[
            "plugin",
            "step",
            &wasm,
            "--message",
            "hi",
            "--replay",
            answers.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let v = json_out(&out);
    assert_eq!(v["error"]["kind"], "failed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no answer left"),
        "{v}"
    );
}

#[test]
fn rust_templates_build_check_and_run() {
    templates_build_check_and_run("rust");
}

#[test]
fn python_templates_build_check_and_run() {
    templates_build_check_and_run("python");
}

#[test]
fn js_templates_build_check_and_run() {
    templates_build_check_and_run("js");
}

#[test]
fn new_refuses_an_existing_directory_and_build_a_non_project() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_str().unwrap();
    let out = kit(work.path(), &["plugin", "new", "twice", "--dir", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kit(work.path(), &["plugin", "new", "twice", "--dir", dir]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = kit(work.path(), &["plugin", "new", "Bad Name", "--dir", dir]);
    assert!(!out.status.success());
    let out = kit(work.path(), &["plugin", "build", dir]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a plugin project"),
        "{}",
        stderr(&out)
    );
    let out = kit(work.path(), &["plugin", "step", "nothing.wasm"]);
    assert!(stderr(&out).contains("--message"), "{}", stderr(&out));
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

/// The policy examples read the operator's config and keep state between
/// steps: `step-limit` (Python) stops a run after `max_steps`, `tool-filter`
/// (JavaScript) refuses a config it cannot use.
#[test]
fn policy_examples_use_config_and_state() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let answers = w.join("answers.json");
    std::fs::write(&answers, r#"{"llm": [{"text": "Hi."}]}"#).unwrap();
    let answers = answers.to_str().unwrap();
    let step_limit = plugins_dir().join("step-limit.wasm");
    let step_limit = step_limit.to_str().unwrap();

    let out = kit(
        w,
        &[
            "plugin",
            "step",
            step_limit,
            "--message",
            "hi",
            "--replay",
            answers,
            "--config",
            r#"{"max_steps": 1}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_out(&out);
    assert_eq!(v["decision"]["type"], "reply");
    let state = v["state"].as_str().unwrap().to_string();

    // The step after a tool result, with the state the first step returned: the limit is reached.
    let history = w.join("history.json");
    std::fs::write(
        &history,
        serde_json::json!([
            {"id": "e1", "seq": 1, "session_id": "s", "kind": "user_message", "source": "user", "ts": 0, "payload": {"text": "hi"}},
            {"id": "e2", "seq": 2, "session_id": "s", "kind": "tool_call", "source": "agent", "ts": 0,
             "payload": {"id": "c1", "name": "bash", "input": "{\"command\":\"ls\"}"}},
            {"id": "e3", "seq": 3, "session_id": "s", "kind": "tool_result", "source": "tool", "ts": 0,
             "payload": {"tool_use_id": "c1", "name": "bash", "content": [{"type": "text", "text": "a b"}], "is_error": false}},
        ])
        .to_string(),
    )
    .unwrap();
    let out = kit(
        w,
        &[
            "plugin",
            "step",
            step_limit,
            "--history",
            history.to_str().unwrap(),
            "--state",
            &state,
            "--replay",
            answers,
            "--config",
            r#"{"max_steps": 1}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_out(&out);
    assert_eq!(v["decision"]["type"], "finish", "{v}");
    assert_eq!(
        v["replayed_answers"], 0,
        "the model is not asked once the limit is reached"
    );

    let tool_filter = plugins_dir().join("tool-filter.wasm");
    let out = kit(
        w,
        &[
            "plugin",
            "step",
            tool_filter.to_str().unwrap(),
            "--message",
            "hi",
            "--replay",
            answers,
            "--config",
            r#"{"tools": "bash"}"#,
        ],
    );
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("must be a list of tool names"),
        "{}",
        stdout(&out)
    );
}

/// A line from a child's output, waiting at most `within` (a bound, not a
/// pause: it returns as soon as the line is there).
fn line_matching(
    lines: &std::sync::mpsc::Receiver<String>,
    within: std::time::Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no matching line within {within:?}: {e}"),
        }
    }
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Kills a child process when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `plugin dev --server` installs a project into a running server, then
/// installs again when a source file changes: the server's active version
/// and the tool's description follow, with nothing restarted. `plugin
/// install --server` reaches the same server.
#[test]
fn dev_installs_into_a_running_server_and_swaps_on_change() {
    use std::process::Stdio;
    use std::time::Duration;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let data = w.join("server");
    let out = agenthost(&data, &["token", "create", "--admin", "--user", "author"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).lines().last().unwrap().trim().to_string();

    let mut server = Child(
        Command::new(env!("CARGO_BIN_EXE_agenthost"))
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", "127.0.0.1:0", "--warm", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server_lines = lines_of(server.0.stdout.take().unwrap());
    let ready = line_matching(&server_lines, Duration::from_secs(120), |l| {
        l.contains("listening on")
    });
    let url = ready.rsplit(' ').next().unwrap().to_string();

    let out = kit(
        w,
        &["plugin", "new", "live-tool", "--dir", w.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let project = w.join("live-tool");
    let mut dev = Child(
        Command::new(env!("CARGO_BIN_EXE_agenthost"))
            .arg("--data-dir")
            .arg(w.join("author"))
            .args([
                "plugin",
                "dev",
                project.to_str().unwrap(),
                "--server",
                &url,
                "--token",
                &token,
            ])
            .env("CARGO_TARGET_DIR", plugin_target_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dev_lines = lines_of(dev.0.stdout.take().unwrap());
    let first = line_matching(&dev_lines, Duration::from_secs(300), |l| {
        l.starts_with("installed live-tool 0.1.0-dev.")
    });

    let http = reqwest::blocking::Client::new();
    let plugin = |http: &reqwest::blocking::Client| -> serde_json::Value {
        http.get(format!("{url}/api/v1/plugins/live-tool"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let v = plugin(&http);
    assert_eq!(
        first,
        format!("installed live-tool {}", v["version"].as_str().unwrap())
    );
    assert_eq!(
        v["tools"][0]["description"],
        "Sends `text` back, repeated `times` times."
    );

    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        source.replace("Sends `text` back", "Says `text` again"),
    )
    .unwrap();
    let second = line_matching(&dev_lines, Duration::from_secs(300), |l| {
        l.starts_with("installed live-tool")
    });
    assert_ne!(first, second);
    let v = plugin(&http);
    assert_eq!(
        second,
        format!("installed live-tool {}", v["version"].as_str().unwrap())
    );
    assert_eq!(
        v["tools"][0]["description"],
        "Says `text` again, repeated `times` times."
    );
    assert_eq!(v["versions"].as_array().unwrap().len(), 2, "{v}");
    drop(dev);

    // A CLI install with --server reaches the running server at once.
    let bash = plugins_dir().join("bash.wasm");
    let out = agenthost(
        w,
        &[
            "plugin",
            "install",
            bash.to_str().unwrap(),
            "--server",
            &url,
            "--token",
            &token,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = http
        .get(format!("{url}/api/v1/plugins/bash"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["name"], "bash");
    // Without a token it says what is missing.
    let out = agenthost(
        w,
        &[
            "plugin",
            "install",
            bash.to_str().unwrap(),
            "--server",
            &url,
        ],
    );
    assert!(stderr(&out).contains("--token"), "{}", stderr(&out));
}

/// A registry of Debian's `docker-registry` package on a loopback port of
/// its own, its storage in `dir`.
fn start_registry(dir: &Path) -> (Child, String) {
    use std::process::Stdio;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("blobs").display()
        ),
    )
    .unwrap();
    let mut child = Child(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry is installed (scripts/setup.sh)"),
    );
    let lines = lines_of(child.0.stderr.take().unwrap());
    line_matching(&lines, std::time::Duration::from_secs(60), |l| {
        l.contains("listening on")
    });
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    (child, format!("127.0.0.1:{port}"))
}

/// `plugin publish` pushes a component as a Wasm OCI artifact to a real
/// registry; `plugin install oci://...` pulls it by tag or by digest, with
/// its manifest (capabilities) carried along; a digest pin that does not
/// match is refused.
#[test]
fn publish_and_install_through_a_local_registry() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (_registry, host) = start_registry(w);
    let bash = plugins_dir().join("bash.wasm");
    let tag = format!("oci://{host}/agenthost/bash:0.1.0");
    let out = agenthost(
        &w.join("author"),
        &["plugin", "publish", bash.to_str().unwrap(), &tag],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pinned = stdout(&out).trim().to_string();
    assert!(
        pinned.starts_with(&format!("oci://{host}/agenthost/bash@sha256:")),
        "{pinned}"
    );

    // The artifact follows the Wasm OCI layout.
    let digest = pinned.rsplit('@').next().unwrap();
    let manifest: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!(
            "http://{host}/v2/agenthost/bash/manifests/{digest}"
        ))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        manifest["layers"][0]["size"],
        std::fs::metadata(&bash).unwrap().len()
    );

    for (reference, data) in [(&tag, "by-tag"), (&pinned, "by-digest")] {
        let data = w.join(data);
        let out = agenthost(&data, &["plugin", "install", reference, "--grant", "shell"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = agenthost(&data, &["plugin", "list"]);
        let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(list[0]["name"], "bash");
        assert_eq!(list[0]["version"], "0.1.0");
        assert_eq!(
            list[0]["capabilities_requested"],
            serde_json::json!(["shell"])
        );
        assert_eq!(list[0]["granted"], serde_json::json!(["shell"]));
        assert_eq!(
            list[0]["sha256"],
            serde_json::json!(hex_sha256(&std::fs::read(&bash).unwrap()))
        );
    }

    let wrong = format!("oci://{host}/agenthost/bash@sha256:{}", "0".repeat(64));
    let out = agenthost(&w.join("wrong"), &["plugin", "install", &wrong]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    let out = agenthost(&w.join("wrong"), &["plugin", "list"]);
    assert_eq!(stdout(&out).trim(), "[]");
    let out = agenthost(&w.join("wrong"), &["plugin", "install", "oci://nowhere"]);
    assert!(
        stderr(&out).contains("not an OCI reference"),
        "{}",
        stderr(&out)
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A component whose WIT was edited without a new version (here a field
/// added to `tool-output` of 0.2.0) is named as drift by `plugin check`,
/// not reported as a crash.
#[test]
fn check_names_wit_drift_under_the_same_version() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let out = kit(
        w,
        &["plugin", "new", "drifted", "--dir", w.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let project = w.join("drifted");
    let edit = |file: &str, from: &str, to: &str| {
        let path = project.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        "wit/tool.wit",
        "content: list<content-part>,",
        "content: list<content-part>,\n        note: string,",
    );
    edit(
        "src/lib.rs",
        "content: vec![text(reply)]",
        "content: vec![text(reply)], note: String::new()",
    );
    let out = kit(w, &["plugin", "build", project.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wasm = stdout(&out).lines().last().unwrap().to_string();
    let out = kit(w, &["plugin", "check", &wasm]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("changed under the same version"), "{err}");
    assert!(!err.contains("crashed"), "{err}");
}

/// `AGENTHOST_LOG_FORMAT=json` makes every log line one JSON object (for a
/// log collector); an unknown format is refused with the choices.
#[test]
fn logs_are_json_lines_on_request() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--warm", "0"])
        .env("AGENTHOST_LOG", "agenthost=info")
        .env("AGENTHOST_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agenthost runs");
    let lines = std::io::BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut listening = None;
    for line in lines {
        let line = line.unwrap();
        let parsed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if parsed["message"] == "listening" {
            listening = Some(parsed);
            break;
        }
        seen.push(line);
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let listening = listening.unwrap_or_else(|| panic!("no `listening` line in {seen:?}"));
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{listening}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["token", "list"])
        .env("AGENTHOST_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("use `text` (the default) or `json`"),
        "{}",
        stderr(&out)
    );
}

/// A bad OpenTelemetry setting stops the binary with the variable's name
/// before it does anything, and a header's value (a collector credential)
/// is never echoed.
#[test]
fn a_bad_otlp_setting_is_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    let run = |vars: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_agenthost"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["token", "list"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("OTEL_EXPORTER_OTLP_PROTOCOL is `grpc`"),
        "{}",
        stderr(&out)
    );
    let out = run(&[("OTEL_EXPORTER_OTLP_HEADERS", "no equals sign s3cret")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("OTEL_EXPORTER_OTLP_HEADERS"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("s3cret"), "{}", stderr(&out));
    // Switched off, the same bad settings are not read at all.
    let out = run(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}
