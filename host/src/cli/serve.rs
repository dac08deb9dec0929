//! `agenthost serve` and `agenthost token`: the server and its credentials.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use agenthost::config::{Overrides, ServeConfig};
use agenthost::server::Server;
use agenthost::store::Store;

/// Where the configuration comes from: a file, then environment and flags.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// TOML configuration file [default: DATA_DIR/config.toml if present].
    #[arg(long, env = "AGENTHOST_CONFIG")]
    config: Option<PathBuf>,
    /// `sqlite:PATH` or `postgres://...` [default: SQLite in the data directory].
    #[arg(long, env = "AGENTHOST_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "AGENTHOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Policy for new sessions.
    #[arg(long, env = "AGENTHOST_DEFAULT_POLICY")]
    default_policy: Option<String>,
    /// Sandbox image [default: agenthost-sandbox:latest].
    #[arg(long, env = "AGENTHOST_SANDBOX_IMAGE")]
    sandbox_image: Option<String>,
    /// Sandboxes kept booted for new sessions.
    #[arg(long, env = "AGENTHOST_WARM")]
    warm: Option<usize>,
    /// Label marking this host's sandbox containers.
    #[arg(long, env = "AGENTHOST_SANDBOX_OWNER")]
    sandbox_owner: Option<String>,
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    anthropic_api_key: Option<String>,
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    anthropic_base_url: Option<String>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    openai_api_key: Option<String>,
    /// An OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1.
    #[arg(long, env = "OPENAI_BASE_URL")]
    openai_base_url: Option<String>,
    /// The chat page's built assets [default: web/dist if present].
    #[arg(long, env = "AGENTHOST_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Join the fleet of hosts sharing the (PostgreSQL) database.
    #[arg(long, env = "AGENTHOST_FLEET")]
    fleet: bool,
    /// This host's name in the fleet [default: hostname:port].
    #[arg(long, env = "AGENTHOST_HOST_ID")]
    host_id: Option<String>,
    /// Where the fleet's other hosts reach this one [default: http://LISTEN].
    #[arg(long, env = "AGENTHOST_ADVERTISE_URL")]
    advertise_url: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for a user and print it (it is stored hashed and
    /// cannot be shown again).
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// The user the token acts as; sessions belong to users.
        #[arg(long)]
        user: String,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Allow installing, granting and removing plugins.
        #[arg(long)]
        admin: bool,
        /// Days until the token expires; it never expires if omitted.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens as JSON: id, user, name, admin, created and expiry
    /// (never the tokens themselves).
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke a token by the id `token list` shows; open WebSockets using
    /// it close within seconds.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        id: String,
    },
}

async fn open_store(config: &ConfigArgs, data_dir: &Path) -> anyhow::Result<Store> {
    let mut cfg = load_config(config, data_dir)?;
    if let Some(url) = &config.database_url {
        cfg.database_url = Some(url.clone());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    Ok(Store::open(&cfg.database_url(data_dir)).await?)
}

fn load_config(args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<ServeConfig> {
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (data_dir.join("config.toml"), false),
    };
    Ok(ServeConfig::load(&path, required)?)
}

pub async fn serve(args: ServeArgs, data_dir: &Path) -> anyhow::Result<()> {
    let mut config = load_config(&args.config, data_dir)?;
    config.apply_overrides(Overrides {
        listen: args.listen,
        database_url: args.config.database_url,
        default_policy: args.default_policy,
        sandbox_image: args.sandbox_image,
        warm: args.warm,
        sandbox_owner: args.sandbox_owner,
        anthropic_api_key: args.anthropic_api_key,
        anthropic_base_url: args.anthropic_base_url,
        openai_api_key: args.openai_api_key,
        openai_base_url: args.openai_base_url,
        web_dir: args.web_dir,
        fleet: args.fleet,
        host_id: args.host_id,
        advertise_url: args.advertise_url,
    })?;
    let server = Server::start(config, data_dir).await?;
    println!("agenthost listening on http://{}", server.addr);
    shutdown_signal().await;
    tracing::info!("stopping");
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

pub async fn token(cmd: TokenCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            config,
            user,
            name,
            admin,
            expires_in_days,
        } => {
            let store = open_store(&config, data_dir).await?;
            let expires_at = expires_in_days.map(|d| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                now + i64::from(d) * 86_400_000
            });
            let token = store.create_token(&user, &name, expires_at, admin).await?;
            store.close().await;
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { config } => {
            let store = open_store(&config, data_dir).await?;
            let tokens = store.tokens().await?;
            store.close().await;
            println!("{}", serde_json::to_string_pretty(&tokens)?);
            Ok(())
        }
        TokenCommand::Revoke { config, id } => {
            let store = open_store(&config, data_dir).await?;
            let result = store.revoke_token(&id).await;
            store.close().await;
            match result {
                Ok(()) => {
                    println!("Revoked token {id}");
                    Ok(())
                }
                Err(agenthost::store::StoreError::NotFound) => Err(anyhow::anyhow!(
                    "no token has the id `{id}` (see `agenthost token list`)"
                )),
                Err(e) => Err(e.into()),
            }
        }
    }
}
