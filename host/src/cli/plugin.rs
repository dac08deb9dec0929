//! `agenthost plugin ...`: the plugin author's and operator's commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use agenthost::capabilities::{CallContext, LogSink};
use agenthost::config::ServeConfig;
use agenthost::plugins::bindings::current::log::Level;
use agenthost::plugins::bindings::current::tool::ToolError;
use agenthost::plugins::bindings::current::types::ContentPart;
use agenthost::plugins::bindings::current::types::ToolUse;
use agenthost::plugins::{
    advise, check_header, level_name, parse_capability_list, Capability, EffectiveGrants, Manifest,
    Registry, Runtime, RuntimeConfig,
};
use agenthost::sandbox::{Docker, SandboxConfig};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Start a plugin project (WIT, helpers and build set-up included) that `plugin build` builds.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "tool")]
        kind: super::scaffold::Kind,
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::scaffold::Lang,
        /// Parent directory of the new project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin project into DIR/NAME.wasm and print that path last.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print what a component is as JSON: world, WIT version, capabilities, tools.
    Check {
        file: PathBuf,
        /// The manifest; default: `<stem>.toml` or `plugin.toml` beside the file.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Run one tool call of a component file and print the result as JSON.
    Invoke {
        file: PathBuf,
        tool: String,
        /// The tool's input object as JSON.
        input: String,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Capabilities to grant for this call, e.g. `shell,files`. Nothing is granted by default.
        #[arg(long, default_value = "")]
        grant: String,
        /// Attach a fresh sandbox (a Docker container with the desktop) for the call.
        #[arg(long)]
        sandbox: bool,
        /// Write images the tool returns (screenshots) here as PNG files.
        #[arg(long)]
        images_dir: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitFlags,
    },
    /// Build, check and install on every source change (into a running server with --server).
    Dev(super::dev::DevArgs),
    /// Run one step of a policy component and print its decision as JSON.
    Step(super::step::StepArgs),
    /// Push a component to an OCI registry: `agenthost plugin publish echo.wasm oci://HOST/echo:0.1.0`.
    Publish {
        file: PathBuf,
        /// oci://HOST[:PORT]/NAME:TAG
        reference: String,
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Install a component file or an OCI artifact (oci://HOST/NAME:TAG or @sha256:DIGEST); a
    /// new version becomes active at once, the old one is kept for rollback.
    Install {
        file: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Capabilities to grant, e.g. `shell,files`.
        #[arg(long, default_value = "")]
        grant: String,
        #[command(flatten)]
        server: super::remote::ServerArgs,
    },
    /// List installed plugins as JSON.
    List,
    /// Uninstall a plugin and all its versions.
    Remove { name: String },
    /// Make the previously installed version active again (the newer one stays installed).
    Rollback { name: String },
    /// Make any installed version active: `agenthost plugin activate bash@0.2.0`.
    Activate {
        /// NAME@VERSION
        target: String,
    },
    /// Grant capabilities to an installed plugin, e.g. `agenthost plugin grant bash shell`.
    Grant { name: String, capabilities: String },
    /// Take capabilities back.
    Revoke { name: String, capabilities: String },
}

/// One call's limits over the configuration's `[limits]`.
#[derive(Args, Default)]
pub(super) struct LimitFlags {
    /// Guest CPU time per call, in milliseconds.
    #[arg(long)]
    cpu_ms: Option<u64>,
    /// Linear memory per instance, in MiB.
    #[arg(long)]
    memory_mb: Option<usize>,
    /// Total time per call (host calls included), in milliseconds.
    #[arg(long)]
    wall_ms: Option<u64>,
}

/// The server's configuration: `AGENTHOST_CONFIG`, or `config.toml` in the
/// data directory.
pub(super) fn load_config(data_dir: &Path) -> anyhow::Result<ServeConfig> {
    let (path, required) = match std::env::var_os("AGENTHOST_CONFIG") {
        Some(p) => (PathBuf::from(p), true),
        None => (data_dir.join("config.toml"), false),
    };
    Ok(ServeConfig::load(&path, required)?)
}

/// The runtime the server would have: `[limits]` and `[plugins]` from the
/// configuration, then `flags`.
fn runtime_with(data_dir: &Path, flags: &LimitFlags) -> anyhow::Result<Arc<Runtime>> {
    runtime_from(&load_config(data_dir)?, data_dir, flags)
}

pub(super) fn runtime_from(
    config: &ServeConfig,
    data_dir: &Path,
    flags: &LimitFlags,
) -> anyhow::Result<Arc<Runtime>> {
    let mut limits = config.limits;
    if let Some(ms) = flags.cpu_ms {
        limits.cpu = Duration::from_millis(ms);
    }
    if let Some(mb) = flags.memory_mb {
        limits.memory_bytes = mb << 20;
    }
    if let Some(ms) = flags.wall_ms {
        limits.wall_clock = Duration::from_millis(ms);
    }
    Ok(Arc::new(Runtime::new(RuntimeConfig {
        limits,
        cache_dir: Some(agenthost::plugins::compiled_cache_dir(data_dir)),
        allow_unreleased_wit: config.plugins.allow_unreleased_wit,
    })?))
}

pub(super) fn runtime(data_dir: &Path) -> anyhow::Result<Arc<Runtime>> {
    runtime_with(data_dir, &LimitFlags::default())
}

/// Plugin log lines and output on stderr, for the author at the terminal.
pub(super) struct PrintLog;

impl LogSink for PrintLog {
    fn log(&self, plugin: &str, level: Level, message: &str) {
        eprintln!("[{plugin}] {}: {message}", level_name(level));
    }

    fn output(&self, plugin: &str, text: &str) {
        eprintln!("[{plugin}] stdout/stderr:\n{}", text.trim_end());
    }
}

pub(super) fn read_component(
    file: &Path,
    manifest: Option<&Path>,
) -> anyhow::Result<(Vec<u8>, Option<Manifest>, String)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    check_header(&bytes).with_context(|| file.display().to_string())?;
    let manifest_path = manifest
        .map(Path::to_path_buf)
        .or_else(|| Manifest::find_beside(file));
    let manifest = manifest_path.as_deref().map(Manifest::load).transpose()?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let default_name = stem
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    Ok((bytes, manifest, default_name))
}

/// A component from an OCI registry, with the plugin.toml published beside
/// it unless `manifest` names another.
async fn pull_component(
    reference: &str,
    manifest: Option<&Path>,
) -> anyhow::Result<(Vec<u8>, Option<Manifest>, String)> {
    let parsed = agenthost::oci::Reference::parse(reference)?;
    let pulled = super::oci::pull(&parsed).await?;
    check_header(&pulled.component).with_context(|| reference.to_string())?;
    eprintln!("pulled {reference} ({})", pulled.digest);
    let manifest = match (manifest, &pulled.plugin_manifest) {
        (Some(path), _) => Some(Manifest::load(path)?),
        (None, Some(text)) => Some(Manifest::parse(text)?),
        (None, None) => None,
    };
    let default_name = parsed
        .repository
        .rsplit('/')
        .next()
        .unwrap_or("plugin")
        .to_string();
    Ok((pulled.component, manifest, default_name))
}

pub(super) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn content_json(parts: &[ContentPart]) -> Vec<Value> {
    parts
        .iter()
        .map(|p| match p {
            ContentPart::Text(t) => json!({"type": "text", "text": t}),
            ContentPart::Image(i) => json!({
                "type": "image", "handle": i.handle, "width": i.width, "height": i.height, "media_type": i.media_type
            }),
        })
        .collect()
}

fn save_images(dir: &Path, parts: &[ContentPart], ctx: &CallContext) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for part in parts {
        if let ContentPart::Image(image) = part {
            if let Some(stored) = ctx.images.get(&image.handle) {
                let path = dir.join(format!("{}.png", image.handle));
                std::fs::write(&path, &stored.bytes)?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

pub async fn run(cmd: PluginCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
        } => {
            let path = super::scaffold::create(&dir, &name, kind, lang)?;
            println!("Created {}. Build it with:", path.display());
            println!("  cd {} && agenthost plugin build", path.display());
            Ok(())
        }
        PluginCommand::Build { dir } => {
            let wasm = super::builder::build(&dir)?;
            println!("{}", wasm.display());
            Ok(())
        }
        PluginCommand::Step(args) => super::step::step(args, data_dir).await,
        PluginCommand::Dev(args) => super::dev::dev(args, data_dir).await,
        PluginCommand::Check { file, manifest } => {
            let (bytes, manifest, default_name) = read_component(&file, manifest.as_deref())?;
            let had_manifest = manifest.is_some();
            let plugin = runtime(data_dir)?
                .load(bytes, manifest, &default_name)
                .await?;
            let mut out = serde_json::to_value(plugin.summary())?;
            out["world"] = json!(format!("{}-plugin", plugin.kind()));
            out["manifest"] = json!(if had_manifest {
                "found"
            } else {
                "none: capabilities derived from imports"
            });
            out["imported_capabilities"] = json!(plugin.shape.imported_capabilities);
            let advice = advise(&plugin, had_manifest);
            for a in &advice {
                eprintln!("{}: {}", a.level, a.message);
            }
            out["advice"] = json!(advice);
            print_json(&out)
        }
        PluginCommand::Invoke {
            file,
            tool,
            input,
            manifest,
            grant,
            sandbox,
            images_dir,
            limits,
        } => {
            let (bytes, manifest, default_name) = read_component(&file, manifest.as_deref())?;
            let granted: BTreeSet<Capability> = parse_capability_list(&grant)?;
            let runtime = runtime_with(data_dir, &limits)?;
            let plugin = runtime.load(bytes, manifest, &default_name).await?;
            let grants = EffectiveGrants::new(
                &plugin.manifest.name,
                plugin.manifest.capabilities.clone(),
                granted,
            );
            // The author sees everything the plugin says, whatever AGENTHOST_LOG is.
            let mut ctx = CallContext {
                log: Arc::new(PrintLog),
                ..CallContext::default()
            };
            let attached = if sandbox {
                let docker = Docker::connect(SandboxConfig::default()).await?;
                let sb = docker.start().await?;
                eprintln!("sandbox {} ready in {:?}", sb.name, sb.boot_time);
                ctx.sandbox = Some(sb.backends());
                Some(sb)
            } else {
                None
            };
            let call = ToolUse {
                id: "cli".into(),
                name: tool,
                input,
            };
            let result = runtime
                .invoke_tool(&plugin, grants, ctx.clone(), call)
                .await;
            if let Some(sb) = attached {
                sb.destroy().await?;
            }
            match result? {
                Ok(out) => {
                    if let Some(dir) = images_dir {
                        save_images(&dir, &out.content, &ctx)?;
                    }
                    print_json(&json!({"content": content_json(&out.content)}))
                }
                Err(ToolError::InvalidInput(m)) => {
                    print_json(&json!({"error": {"kind": "invalid_input", "message": m}}))?;
                    anyhow::bail!("the tool rejected its input: {m}")
                }
                Err(ToolError::Failed(m)) => {
                    print_json(&json!({"error": {"kind": "failed", "message": m}}))?;
                    anyhow::bail!("the tool failed: {m}")
                }
            }
        }
        PluginCommand::Install {
            file,
            manifest,
            grant,
            server,
        } => {
            let (bytes, manifest, default_name) =
                match file.to_str().filter(|f| f.starts_with("oci://")) {
                    Some(reference) => pull_component(reference, manifest.as_deref()).await?,
                    None => read_component(&file, manifest.as_deref())?,
                };
            let granted = parse_capability_list(&grant)?;
            if let Some(remote) = super::remote::Remote::from_args(&server)? {
                let name = manifest
                    .as_ref()
                    .map_or(default_name.clone(), |m| m.name.clone());
                let v = remote
                    .install(bytes, manifest.map(|m| m.to_toml()), &name, &grant)
                    .await?;
                println!(
                    "Installed {} {} into {}; granted: {}",
                    v["name"].as_str().unwrap_or(&name),
                    v["version"].as_str().unwrap_or("?"),
                    remote.base(),
                    v["granted"]
                );
                return Ok(());
            }
            let registry = Registry::open(runtime(data_dir)?, data_dir).await?;
            let plugin = registry
                .install(bytes, manifest, &default_name, &granted)
                .await?;
            let grants = registry.effective_grants(&plugin);
            println!(
                "Installed {} {} ({}); granted: [{}]",
                plugin.manifest.name,
                plugin.manifest.version,
                plugin.kind(),
                grants
                    .granted
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let missing: Vec<_> = grants
                .requested
                .difference(&grants.granted)
                .map(|c| c.as_str())
                .collect();
            if !missing.is_empty() {
                println!(
                    "Not granted (requested): {}. Grant with: agenthost plugin grant {} {}",
                    missing.join(", "),
                    plugin.manifest.name,
                    missing.join(",")
                );
            }
            Ok(())
        }
        PluginCommand::Publish {
            file,
            reference,
            manifest,
        } => {
            let reference = agenthost::oci::Reference::parse(&reference)?;
            let (bytes, manifest, default_name) = read_component(&file, manifest.as_deref())?;
            // What install will see: the component must load, and its
            // manifest travels with it.
            let plugin = runtime(data_dir)?
                .load(bytes.clone(), manifest, &default_name)
                .await?;
            let digest = super::oci::publish(&reference, bytes, &plugin.manifest).await?;
            eprintln!(
                "published {} {} to oci://{}/{}:{}",
                plugin.manifest.name,
                plugin.manifest.version,
                reference.registry,
                reference.repository,
                reference.tag.as_deref().unwrap_or_default()
            );
            println!(
                "oci://{}/{}@{digest}",
                reference.registry, reference.repository
            );
            Ok(())
        }
        PluginCommand::List => {
            print_json(&Registry::open(runtime(data_dir)?, data_dir).await?.list())
        }
        PluginCommand::Remove { name } => {
            Registry::open(runtime(data_dir)?, data_dir)
                .await?
                .remove(&name)?;
            println!("Removed {name}");
            Ok(())
        }
        PluginCommand::Rollback { name } => {
            let plugin = Registry::open(runtime(data_dir)?, data_dir)
                .await?
                .rollback(&name)
                .await?;
            println!("{name} is now at version {}", plugin.manifest.version);
            Ok(())
        }
        PluginCommand::Activate { target } => {
            let (name, version) = target.split_once('@').ok_or_else(|| {
                anyhow::anyhow!("say which version: `agenthost plugin activate NAME@VERSION`")
            })?;
            let plugin = Registry::open(runtime(data_dir)?, data_dir)
                .await?
                .activate(name, version)
                .await?;
            println!("{name} is now at version {}", plugin.manifest.version);
            Ok(())
        }
        PluginCommand::Grant { name, capabilities } => {
            let registry = Registry::open(runtime(data_dir)?, data_dir).await?;
            registry.get(&name)?;
            registry.grant(&name, &parse_capability_list(&capabilities)?)?;
            println!("Granted {capabilities} to {name}");
            Ok(())
        }
        PluginCommand::Revoke { name, capabilities } => {
            let registry = Registry::open(runtime(data_dir)?, data_dir).await?;
            registry.revoke(&name, &parse_capability_list(&capabilities)?)?;
            println!("Revoked {capabilities} from {name}");
            Ok(())
        }
    }
}
