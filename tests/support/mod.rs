//! Shared test support: where the built components are, runtimes with a
//! shared compiled cache, and in-memory capability backends.
//!
//! The doubles here stand in for the sandbox only in the plugin-runtime
//! and capability tests; the sandbox tests run the same components on a
//! real desktop.

pub mod database;
pub mod fleet;
pub mod mcp;
mod mock_cloud;
pub mod mock_llm;
pub mod server;
pub mod tools;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenthost::capabilities::{
    CallContext, ComputerBackend, EncodedImage, FilesBackend, Region, SandboxBackends, ShellBackend,
};
use agenthost::plugins::bindings::current::{
    computer::{ClickCount, Modifiers, MouseButton, Point, ScrollDirection},
    files::{Entry, EntryKind},
    shell::{Command, Output},
    types::HostError,
};
use agenthost::plugins::{EffectiveGrants, Limits, LoadedPlugin, Manifest, Runtime, RuntimeConfig};
use async_trait::async_trait;

/// `dist/plugins`, built by `scripts/build-plugins.sh`: where the Python
/// and JavaScript examples come from.
fn examples_dir() -> PathBuf {
    std::env::var_os("AGENTHOST_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/plugins"))
}

/// The crate directory of a Rust guest, if `name` is one.
fn rust_guest(name: &str) -> Option<PathBuf> {
    let src = PathBuf::from(env!("AGENTHOST_GUESTS_SRC"));
    [src.join(name), src.join("testing").join(name)]
        .into_iter()
        .find(|dir| dir.join("Cargo.toml").is_file())
}

/// A built component's bytes and manifest. Rust guests come from this
/// crate's build script (always current); the Python and JavaScript
/// examples from `dist/plugins`.
pub fn component(name: &str) -> (Vec<u8>, Manifest) {
    let (wasm, manifest) = match rust_guest(name) {
        Some(dir) => (
            PathBuf::from(env!("AGENTHOST_GUESTS_DIR"))
                .join(format!("{}.wasm", name.replace('-', "_"))),
            dir.join("plugin.toml"),
        ),
        None => {
            let dir = examples_dir();
            (
                dir.join(format!("{name}.wasm")),
                dir.join(format!("{name}.toml")),
            )
        }
    };
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| {
        panic!(
            "component {}: {e} (the Python and JavaScript examples are built by \
             scripts/build-plugins.sh)",
            wasm.display()
        )
    });
    let manifest = Manifest::load(&manifest).expect("component manifest");
    (bytes, manifest)
}

/// A compiled cache shared by the whole test run, so the Python and
/// JavaScript components compile once rather than in every test:
/// `AGENTHOST_CACHE_DIR`, which scripts/run-tests.py sets for every job
/// (so the hosts and commands tests start as processes share it too), else
/// one under the temporary directory.
pub fn shared_cache_dir() -> PathBuf {
    std::env::var_os("AGENTHOST_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("agenthost-test-compiled-cache"))
}

pub fn runtime_with(limits: Limits) -> Arc<Runtime> {
    Arc::new(
        Runtime::new(RuntimeConfig {
            limits,
            cache_dir: Some(shared_cache_dir()),
            ..Default::default()
        })
        .expect("runtime starts"),
    )
}

pub fn runtime() -> Arc<Runtime> {
    runtime_with(Limits::default())
}

pub async fn load(runtime: &Runtime, name: &str) -> LoadedPlugin {
    let (bytes, manifest) = component(name);
    runtime
        .load(bytes, Some(manifest), name)
        .await
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

/// Everything the plugin asked for.
pub fn requested_grants(plugin: &LoadedPlugin) -> EffectiveGrants {
    EffectiveGrants::new(
        &plugin.manifest.name,
        plugin.manifest.capabilities.clone(),
        plugin.manifest.capabilities.clone(),
    )
}

/// Records what the computer was asked to do.
#[derive(Default)]
pub struct FakeComputer {
    pub actions: Mutex<Vec<String>>,
    pub size: (u32, u32),
}

impl FakeComputer {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            actions: Mutex::default(),
            size: (width, height),
        }
    }

    fn record(&self, action: String) {
        self.actions.lock().unwrap().push(action);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.actions.lock().unwrap())
    }
}

fn button(b: MouseButton) -> &'static str {
    match b {
        MouseButton::Left => "left",
        MouseButton::Middle => "middle",
        MouseButton::Right => "right",
    }
}

#[async_trait]
impl ComputerBackend for FakeComputer {
    async fn screen_size(&self) -> Result<(u32, u32), HostError> {
        Ok(self.size)
    }
    async fn screenshot(&self, region: Option<Region>) -> Result<EncodedImage, HostError> {
        let (width, height) = region
            .map(|r| (r.output_width, r.output_height))
            .unwrap_or(self.size);
        self.record(match region {
            None => "screenshot".into(),
            Some(r) => format!(
                "screenshot {},{} {}x{} -> {}x{}",
                r.x, r.y, r.width, r.height, width, height
            ),
        });
        Ok(EncodedImage {
            bytes: format!("png {width}x{height}").into_bytes(),
            width,
            height,
            media_type: "image/png",
        })
    }
    async fn cursor_position(&self) -> Result<Point, HostError> {
        Ok(Point { x: 10, y: 20 })
    }
    async fn mouse_move(&self, to: Point) -> Result<(), HostError> {
        self.record(format!("move {},{}", to.x, to.y));
        Ok(())
    }
    async fn mouse_button(&self, b: MouseButton, down: bool) -> Result<(), HostError> {
        self.record(format!(
            "{} {}",
            button(b),
            if down { "down" } else { "up" }
        ));
        Ok(())
    }
    async fn click(
        &self,
        at: Point,
        b: MouseButton,
        count: ClickCount,
        modifiers: Modifiers,
    ) -> Result<(), HostError> {
        let count = match count {
            ClickCount::Single => 1,
            ClickCount::Double => 2,
            ClickCount::Triple => 3,
        };
        let held: Vec<&str> = [
            (Modifiers::SHIFT, "shift"),
            (Modifiers::CTRL, "ctrl"),
            (Modifiers::ALT, "alt"),
            (Modifiers::SUPER, "super"),
        ]
        .into_iter()
        .filter(|(flag, _)| modifiers.contains(*flag))
        .map(|(_, name)| name)
        .collect();
        self.record(format!(
            "click {} x{count} at {},{} [{}]",
            button(b),
            at.x,
            at.y,
            held.join("+")
        ));
        Ok(())
    }
    async fn drag(&self, start: Point, end: Point, b: MouseButton) -> Result<(), HostError> {
        self.record(format!(
            "drag {} {},{} -> {},{}",
            button(b),
            start.x,
            start.y,
            end.x,
            end.y
        ));
        Ok(())
    }
    async fn scroll(
        &self,
        at: Point,
        d: ScrollDirection,
        amount: u32,
        _m: Modifiers,
    ) -> Result<(), HostError> {
        let d = match d {
            ScrollDirection::Up => "up",
            ScrollDirection::Down => "down",
            ScrollDirection::Left => "left",
            ScrollDirection::Right => "right",
        };
        self.record(format!("scroll {d} {amount} at {},{}", at.x, at.y));
        Ok(())
    }
    async fn key(&self, combo: &str) -> Result<(), HostError> {
        if combo == "no_such_key" {
            return Err(HostError::Invalid(format!("unknown key name `{combo}`")));
        }
        self.record(format!("key {combo}"));
        Ok(())
    }
    async fn hold_key(&self, combo: &str, d: Duration) -> Result<(), HostError> {
        self.record(format!("hold {combo} {}ms", d.as_millis()));
        Ok(())
    }
    async fn type_text(&self, text: &str) -> Result<(), HostError> {
        self.record(format!("type {text}"));
        Ok(())
    }
    async fn wait_until_settled(
        &self,
        _quiet: Duration,
        _max: Duration,
    ) -> Result<bool, HostError> {
        self.record("settle".into());
        Ok(true)
    }
}

/// Answers every command with "ran: <command>"; can be made to block until
/// released, to hold a call in flight.
#[derive(Default)]
pub struct FakeShell {
    pub commands: Mutex<Vec<String>>,
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    pub entered: Option<Arc<tokio::sync::Notify>>,
}

#[async_trait]
impl ShellBackend for FakeShell {
    async fn run(&self, command: Command) -> Result<Output, HostError> {
        self.commands.lock().unwrap().push(command.command.clone());
        if let Some(entered) = &self.entered {
            entered.notify_one();
        }
        if let Some(gate) = &self.gate {
            let _permit = gate
                .acquire()
                .await
                .map_err(|e| HostError::Failed(e.to_string()))?;
        }
        let exit_code = if command.command.starts_with("exit ") {
            Some(3)
        } else {
            Some(0)
        };
        Ok(Output {
            stdout: format!("ran: {}", command.command),
            stderr: String::new(),
            exit_code,
            truncated: false,
            timed_out: false,
        })
    }
}

/// A file system in a map: path -> bytes; directories are implied.
#[derive(Default)]
pub struct MemFiles {
    pub files: Mutex<BTreeMap<String, Vec<u8>>>,
}

#[async_trait]
impl FilesBackend for MemFiles {
    async fn read(&self, path: &str) -> Result<Vec<u8>, HostError> {
        self.files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| HostError::Failed(format!("{path}: no such file")))
    }
    async fn write(&self, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), contents.to_vec());
        Ok(())
    }
    async fn list_dir(&self, path: &str) -> Result<Vec<Entry>, HostError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let files = self.files.lock().unwrap();
        let mut names: BTreeMap<String, Entry> = BTreeMap::new();
        for (p, bytes) in files.iter().filter(|(p, _)| p.starts_with(&prefix)) {
            let rest = &p[prefix.len()..];
            let entry = match rest.split_once('/') {
                Some((dir, _)) => Entry {
                    name: dir.to_string(),
                    kind: EntryKind::Directory,
                    size: 0,
                },
                None => Entry {
                    name: rest.to_string(),
                    kind: EntryKind::File,
                    size: bytes.len() as u64,
                },
            };
            names.insert(entry.name.clone(), entry);
        }
        Ok(names.into_values().collect())
    }
    async fn stat(&self, path: &str) -> Result<Option<Entry>, HostError> {
        let files = self.files.lock().unwrap();
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        if let Some(bytes) = files.get(path) {
            return Ok(Some(Entry {
                name,
                kind: EntryKind::File,
                size: bytes.len() as u64,
            }));
        }
        let prefix = format!("{}/", path.trim_end_matches('/'));
        Ok(files
            .keys()
            .any(|p| p.starts_with(&prefix))
            .then_some(Entry {
                name,
                kind: EntryKind::Directory,
                size: 0,
            }))
    }
}

/// A call context with all three doubles attached.
pub struct FakeSandbox {
    pub computer: Arc<FakeComputer>,
    pub shell: Arc<FakeShell>,
    pub files: Arc<MemFiles>,
    pub ctx: CallContext,
}

impl FakeSandbox {
    pub fn new() -> Self {
        Self::with_shell(FakeShell::default())
    }

    pub fn with_shell(shell: FakeShell) -> Self {
        Self::build(shell, (1280, 800))
    }

    pub fn with_screen(width: u32, height: u32) -> Self {
        Self::build(FakeShell::default(), (width, height))
    }

    fn build(shell: FakeShell, (width, height): (u32, u32)) -> Self {
        let computer = Arc::new(FakeComputer::new(width, height));
        let shell = Arc::new(shell);
        let files = Arc::new(MemFiles::default());
        let ctx = CallContext {
            sandbox: Some(SandboxBackends {
                computer: computer.clone(),
                shell: shell.clone(),
                files: files.clone(),
            }),
            ..CallContext::default()
        };
        Self {
            computer,
            shell,
            files,
            ctx,
        }
    }
}

impl Default for FakeSandbox {
    fn default() -> Self {
        Self::new()
    }
}
