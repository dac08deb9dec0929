//! `/api/v1/plugins` and `/api/v1/policies`: what is installed, and (with an
//! operator token) installing, granting, rolling back and removing.
//! An upload that fails validation changes nothing.

use std::collections::BTreeSet;

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::User;
use super::error::{ApiError, Json, Path};
use super::AppState;
use crate::fleet::PluginChange;
use crate::plugins::{parse_capability_list, Capability, InstalledPlugin, Manifest, PluginKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list).post(install))
        .route("/plugins/{name}", get(read).delete(remove))
        .route("/plugins/{name}/grants", post(grants))
        .route("/plugins/{name}/rollback", post(rollback))
        .route("/plugins/{name}/activate", post(activate))
        .route("/plugins/{name}/logs", get(logs))
        .route("/policies", get(policies))
}

#[derive(Serialize)]
struct PluginList {
    plugins: Vec<InstalledPlugin>,
    mcp_servers: Vec<McpServerView>,
}

async fn list(State(state): State<AppState>, _user: User) -> Json<PluginList> {
    let shared = state.sessions.shared();
    let mcp_servers = shared
        .mcp
        .servers
        .keys()
        .map(|name| McpServerView {
            name: name.clone(),
            transport: "stdio (in the session's sandbox)",
            tool_prefix: format!("{name}{}", crate::mcp::client::SEPARATOR),
            tools: shared.mcp_catalog.tools_of(name),
        })
        .collect();
    Json(PluginList {
        plugins: state.registry.list(),
        mcp_servers,
    })
}

/// A configured MCP server, as listed with the plugins.
#[derive(Serialize)]
struct McpServerView {
    name: String,
    transport: &'static str,
    tool_prefix: String,
    /// The tools it offered when a session last started it; `null` if no
    /// session has yet.
    tools: Option<Vec<String>>,
}

#[derive(Serialize)]
struct PolicyList {
    policies: Vec<InstalledPlugin>,
    default: String,
}

async fn policies(State(state): State<AppState>, _user: User) -> Json<PolicyList> {
    Json(PolicyList {
        policies: state
            .registry
            .list()
            .into_iter()
            .filter(|p| p.summary.kind == PluginKind::Policy)
            .collect(),
        default: state.sessions.default_policy(),
    })
}

/// What the plugin logs while sessions use it, from now on, as NDJSON
/// (one `LogLine` per line) until the client goes away. Operators only:
/// lines can carry what users' sessions did. The plugin need not be
/// installed yet, so `plugin dev` can follow before its first install.
async fn logs(
    State(state): State<AppState>,
    user: User,
    Path(name): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use tokio::sync::broadcast::error::RecvError;
    user.require_admin()?;
    let rx = state.plugin_logs.subscribe();
    let lines = futures_util::stream::unfold((rx, name), |(mut rx, name)| async move {
        loop {
            let line = match rx.recv().await {
                Ok(line) if line.plugin == name => line,
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => crate::plugins::LogLine {
                    plugin: name.clone(),
                    level: "warn",
                    message: format!("{n} lines were dropped: this follower read too slowly"),
                    ts: 0,
                },
                Err(RecvError::Closed) => return None,
            };
            let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
            bytes.push(b'\n');
            return Some((
                Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes)),
                (rx, name),
            ));
        }
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}

fn installed(state: &AppState, name: &str) -> Result<InstalledPlugin, ApiError> {
    state
        .registry
        .list()
        .into_iter()
        .find(|p| p.summary.name == name)
        .ok_or_else(|| ApiError::not_found(&format!("plugin `{name}`")))
}

async fn read(
    State(state): State<AppState>,
    _user: User,
    Path(name): Path<String>,
) -> Result<Json<InstalledPlugin>, ApiError> {
    installed(&state, &name).map(Json)
}

/// Multipart fields: `component` (the .wasm), `manifest` (plugin.toml text,
/// optional when the name comes from `name`), `grant` (comma-separated
/// capabilities to grant, optional), `name` (optional).
async fn install(
    State(state): State<AppState>,
    user: User,
    mut form: Multipart,
) -> Result<(StatusCode, Json<InstalledPlugin>), ApiError> {
    user.require_admin()?;
    let bad = |m: String| ApiError::bad_request("invalid_upload", m);
    let (mut component, mut manifest, mut grant, mut name) = (None, None, BTreeSet::new(), None);
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "component" => {
                component = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| bad(e.body_text()))?
                        .to_vec(),
                )
            }
            "manifest" => {
                let text = field.text().await.map_err(|e| bad(e.body_text()))?;
                manifest = Some(Manifest::parse(&text)?);
            }
            "grant" => {
                let text = field.text().await.map_err(|e| bad(e.body_text()))?;
                grant.extend(parse_capability_list(&text)?);
            }
            "name" => name = Some(field.text().await.map_err(|e| bad(e.body_text()))?),
            other => return Err(bad(format!("unknown field `{other}`"))),
        }
    }
    let component = component.ok_or_else(|| bad("the `component` field is missing".into()))?;
    let default_name = manifest
        .as_ref()
        .map(|m| m.name.clone())
        .or(name)
        .ok_or_else(|| bad("send a `manifest` or a `name`".into()))?;
    let fleet = state.sessions.shared().fleet.clone();
    // The fleet's other hosts get the same bytes.
    let shared_bytes = fleet.as_ref().map(|_| component.clone());
    let plugin = state
        .registry
        .install(component, manifest, &default_name, &grant)
        .await?;
    if let (Some(fleet), Some(bytes)) = (fleet, shared_bytes) {
        fleet
            .share_install(&plugin, &bytes, state.registry.grant_table())
            .await;
    }
    let view = installed(&state, &plugin.manifest.name)?;
    tracing::info!(plugin = %view.summary.name, version = %view.summary.version, "installed");
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    revoke: Vec<String>,
}

fn capabilities(names: &[String]) -> Result<BTreeSet<Capability>, ApiError> {
    names
        .iter()
        .map(|n| n.parse::<Capability>().map_err(ApiError::from))
        .collect()
}

async fn grants(
    State(state): State<AppState>,
    user: User,
    Path(name): Path<String>,
    Json(body): Json<GrantBody>,
) -> Result<Json<InstalledPlugin>, ApiError> {
    user.require_admin()?;
    installed(&state, &name)?;
    let (grant, revoke) = (capabilities(&body.grant)?, capabilities(&body.revoke)?);
    if !grant.is_empty() {
        state.registry.grant(&name, &grant)?;
    }
    if !revoke.is_empty() {
        state.registry.revoke(&name, &revoke)?;
    }
    share(&state, || PluginChange::Grants {
        table: state.registry.grant_table(),
    })
    .await;
    installed(&state, &name).map(Json)
}

async fn rollback(
    State(state): State<AppState>,
    user: User,
    Path(name): Path<String>,
) -> Result<Json<InstalledPlugin>, ApiError> {
    user.require_admin()?;
    let plugin = state.registry.rollback(&name).await?;
    share(&state, || PluginChange::Activate {
        name: name.clone(),
        version: plugin.manifest.version.clone(),
    })
    .await;
    installed(&state, &name).map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    version: String,
}

async fn activate(
    State(state): State<AppState>,
    user: User,
    Path(name): Path<String>,
    Json(body): Json<ActivateBody>,
) -> Result<Json<InstalledPlugin>, ApiError> {
    user.require_admin()?;
    state.registry.activate(&name, &body.version).await?;
    share(&state, || PluginChange::Activate {
        name: name.clone(),
        version: body.version.clone(),
    })
    .await;
    installed(&state, &name).map(Json)
}

async fn remove(
    State(state): State<AppState>,
    user: User,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    user.require_admin()?;
    state.registry.remove(&name)?;
    share(&state, || PluginChange::Remove { name: name.clone() }).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes a change made here to the fleet's log, if this host is in one.
async fn share(state: &AppState, change: impl FnOnce() -> PluginChange) {
    if let Some(fleet) = &state.sessions.shared().fleet {
        fleet.share(change()).await;
    }
}
