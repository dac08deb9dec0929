//! `agenthost plugin build [DIR]`: builds a plugin project into
//! `DIR/<name>.wasm` with its language's toolchain and prints that path as
//! the last line of stdout (the toolchain's own output goes to stderr).
//!
//! - Rust (`Cargo.toml`): `cargo build --release --target wasm32-wasip2`,
//!   adding the target with rustup if it is missing. Projects share one
//!   target directory (`$CARGO_TARGET_DIR`, else a cache directory), so
//!   the second project does not compile wit-bindgen and serde again.
//! - Python (`app.py`): componentize-py, from `$AGENTHOST_COMPONENTIZE_PY`,
//!   the `PATH`, or the tools directory `scripts/setup.sh` fills.
//! - JavaScript (`package.json`): `npm install` once, then `npm run build`
//!   (componentize-js).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use agenthost::plugins::{Manifest, PluginKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// What kind of project `dir` is, by the file its toolchain reads.
    pub fn detect(dir: &Path) -> anyhow::Result<Self> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Self::Rust)
        } else if dir.join("package.json").is_file() {
            Ok(Self::Js)
        } else if dir.join("app.py").is_file() {
            Ok(Self::Python)
        } else {
            anyhow::bail!(
                "{} is not a plugin project: it has no Cargo.toml, package.json or app.py \
                 (start one with `agenthost plugin new NAME --lang rust|python|js`)",
                dir.display()
            )
        }
    }
}

/// The project's manifest; every template writes one.
pub fn manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join("plugin.toml");
    Manifest::load(&path).with_context(|| format!("{} needs a plugin.toml", dir.display()))
}

fn world(manifest: &Manifest) -> anyhow::Result<&'static str> {
    match manifest.kind {
        Some(PluginKind::Tool) => Ok("tool-plugin"),
        Some(PluginKind::Policy) => Ok("policy-plugin"),
        None => anyhow::bail!("plugin.toml must say `kind = \"tool\"` or `kind = \"policy\"`"),
    }
}

/// Run a toolchain step; its output goes to our stderr.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// The shared target directory for plugin crates.
pub fn rust_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("agenthost/plugin-target"))
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: cargo says clearly if the target is missing.
        return Ok(());
    };
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        eprintln!("adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
        run(
            Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
            "rustup target add wasm32-wasip2",
        )?;
    }
    Ok(())
}

fn crate_name(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let doc: toml::Table = text.parse().context("Cargo.toml does not parse")?;
    doc.get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| anyhow::anyhow!("Cargo.toml has no package name"))
}

fn build_rust(dir: &Path, out: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    let target = rust_target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target),
        "cargo build",
    )?;
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name(dir)?));
    std::fs::copy(&built, out)
        .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    Ok(())
}

fn componentize_py() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AGENTHOST_COMPONENTIZE_PY") {
        return Ok(p.into());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("componentize-py");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let tools = std::env::var_os("AGENTHOST_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("agenthost-tools"));
    let p = tools.join("venv/bin/componentize-py");
    if p.is_file() {
        return Ok(p);
    }
    anyhow::bail!(
        "componentize-py is not installed: `pip install componentize-py==0.25.1` \
         (or set AGENTHOST_COMPONENTIZE_PY)"
    )
}

fn build_python(dir: &Path, world: &str, out: &Path) -> anyhow::Result<()> {
    run(
        Command::new(componentize_py()?)
            .args(["-d", "wit", "-w", world, "componentize", "app", "-p", "."])
            .arg("-o")
            .arg(out)
            .current_dir(dir),
        "componentize-py",
    )
}

fn build_js(dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        eprintln!("installing componentize-js (npm install, once per project)");
        run(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefer-offline",
                    "--loglevel=error",
                ])
                .current_dir(dir),
            "npm install",
        )?;
    }
    run(
        Command::new("npm")
            .args(["run", "--silent", "build"])
            .current_dir(dir),
        "npm run build",
    )?;
    anyhow::ensure!(
        out.is_file(),
        "npm run build did not write {} (package.json's build script names the output)",
        out.display()
    );
    Ok(())
}

/// Build the project in `dir`; returns the component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let lang = Lang::detect(&dir)?;
    let manifest = manifest(&dir)?;
    let world = world(&manifest)?;
    let out = dir.join(format!("{}.wasm", manifest.name));
    let started = std::time::Instant::now();
    match lang {
        Lang::Rust => build_rust(&dir, &out)?,
        Lang::Python => build_python(&dir, world, &out)?,
        Lang::Js => build_js(&dir, &out)?,
    }
    eprintln!(
        "built {} ({lang:?}, {world}) in {:.1}s",
        manifest.name,
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}
