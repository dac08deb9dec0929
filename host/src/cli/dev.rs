//! `agenthost plugin dev [DIR]`: the author's loop. Build the project,
//! check the component, install it (into a running server through its API
//! with `--server`, else into the data directory), then wait for a source
//! file to change and go again. Each install is a new development version
//! (`<version>-dev.<millis>`), made active at once: a server swaps it in
//! for the next tool call or policy step. With `--server`, the plugin's
//! log lines from the server's sessions are shown as they happen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use agenthost::plugins::{advise, parse_capability_list, Registry, Runtime};

use super::builder;
use super::plugin::runtime;
use super::remote::{Remote, ServerArgs};

/// How often the sources are looked at.
const POLL: Duration = Duration::from_millis(300);
/// Bound on the files a project may hold for watching (a stray
/// node_modules elsewhere should not make every poll walk the disk).
const MAX_WATCHED_FILES: usize = 10_000;

#[derive(Args)]
pub struct DevArgs {
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Capabilities to grant with each install, e.g. `shell`.
    #[arg(long, default_value = "")]
    grant: String,
    /// Build, check and install once, then stop.
    #[arg(long)]
    once: bool,
}

/// What the watcher compares: every source file's path, size and mtime.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if matches!(
                name.as_ref(),
                "target" | "node_modules" | "__pycache__" | ".git"
            ) || name.ends_with(".wasm")
            {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if out.len() < MAX_WATCHED_FILES {
                out.push((path, meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)));
            }
        }
    }
    out.sort();
    out
}

/// One round: build, check, install. Errors are the author's to fix; the
/// loop reports them and waits for the next change.
async fn round(
    dir: &Path,
    data_dir: &Path,
    runtime: &Arc<Runtime>,
    remote: Option<&Remote>,
    grant: &str,
) -> anyhow::Result<String> {
    let wasm = builder::build(dir)?;
    let mut manifest = builder::manifest(dir)?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    manifest.version = format!("{}-dev.{millis}", manifest.version);
    let bytes = std::fs::read(&wasm)?;
    let check = async {
        let plugin = runtime
            .load(bytes.clone(), Some(manifest.clone()), &manifest.name)
            .await?;
        for a in advise(&plugin, true) {
            eprintln!("{}: {}", a.level, a.message);
        }
        anyhow::Ok(())
    };
    match remote {
        // The server validates what it installs; the local check only adds
        // advice, so both compile side by side.
        Some(remote) => {
            let install = remote.install(
                bytes.clone(),
                Some(manifest.to_toml()),
                &manifest.name,
                grant,
            );
            let (checked, installed) = tokio::join!(check, install);
            checked?;
            installed?;
        }
        None => {
            check.await?;
            Registry::open(runtime.clone(), data_dir)
                .await?
                .install(
                    bytes.clone(),
                    Some(manifest.clone()),
                    &manifest.name,
                    &parse_capability_list(grant)?,
                )
                .await?;
        }
    }
    Ok(format!("{} {}", manifest.name, manifest.version))
}

pub async fn dev(args: DevArgs, data_dir: &Path) -> anyhow::Result<()> {
    let dir = args.dir.canonicalize()?;
    builder::Lang::detect(&dir)?;
    parse_capability_list(&args.grant)?;
    let remote = Remote::from_args(&args.server)?;
    let name = builder::manifest(&dir)?.name;
    match &remote {
        Some(r) => {
            eprintln!(
                "installing into {} on every change; the plugin's log lines follow",
                r.base()
            );
            let follower = r.clone();
            let plugin = name.clone();
            tokio::spawn(async move {
                if let Err(e) = follower.follow_logs(&plugin).await {
                    eprintln!("log lines stopped: {e:#}");
                }
            });
        }
        None => eprintln!(
            "installing into {} on every change (a running server does not see this: \
             pass --server URL --token TOKEN to install into it)",
            data_dir.display()
        ),
    }
    // One runtime (engine, compiled cache) for every round.
    let runtime = runtime(data_dir)?;
    loop {
        let seen = fingerprint(&dir);
        match round(&dir, data_dir, &runtime, remote.as_ref(), &args.grant).await {
            Ok(installed) => println!("installed {installed}"),
            Err(e) if args.once => return Err(e),
            Err(e) => eprintln!("error: {e:#}"),
        }
        if args.once {
            return Ok(());
        }
        eprintln!("watching {} for changes (Ctrl-C stops)", dir.display());
        while fingerprint(&dir) == seen {
            tokio::time::sleep(POLL).await;
        }
    }
}
