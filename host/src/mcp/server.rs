//! Agent Host as an MCP server: the protocol side of `/mcp`.
//!
//! An MCP client drives one Agent Host session as its agent: the tools it
//! lists are the session's tools (computer, bash, editor and the installed
//! third-party components) with their schemas, each call is stored as the
//! session's `tool_call` and `tool_result` events (so the chat page shows
//! an MCP-driven session live, and a person can take the desktop over),
//! images come back as image content, and the session's screenshots are
//! resources.
//!
//! Which session a request drives ([`Binding`]):
//! - the one named by the `Agenthost-Session` header, if the caller owns it;
//! - else, on a connection with an MCP session (an `initialize` handshake,
//!   protocol versions up to 2025-11-25), a new Agent Host session made at
//!   the handshake and kept for the connection;
//! - a stateless request (2026-07-28) without the header lists tools but
//!   cannot call them: there is no connection to hang a session on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, InitializeRequestParams, InitializeResult, JsonObject, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::ServerHandler;

use crate::event::{EventBody, StoredPart};
use crate::plugins::bindings::current::types::ToolUse;
use crate::session::{SessionError, SessionHandle, Sessions};
use crate::store::SessionSettings;

/// The header that names the session a request drives.
pub const SESSION_HEADER: &str = "agenthost-session";

/// How often a long call tells a client that asked for progress that it
/// is still going.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The authenticated caller, put on the request by the HTTP layer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
}

/// Which session a connection drives, once decided.
#[derive(Debug, Clone)]
struct Binding {
    user_id: String,
    session_id: String,
}

/// One MCP connection's handler (or one request's, when stateless).
#[derive(Clone)]
pub struct McpServer {
    sessions: Arc<Sessions>,
    /// Set at the handshake: the session made for this connection.
    bound: Arc<Mutex<Option<Binding>>>,
}

impl McpServer {
    pub fn new(sessions: Arc<Sessions>) -> Self {
        Self {
            sessions,
            bound: Arc::default(),
        }
    }

    fn bound(&self) -> Option<Binding> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The caller and the session they named with the header, if any.
    fn request_parts(
        context: &RequestContext<RoleServer>,
    ) -> Result<(Caller, Option<String>), ErrorData> {
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| {
                ErrorData::internal_error("the request reached MCP without HTTP", None)
            })?;
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))?;
        let named = match parts.headers.get(SESSION_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| {
                        ErrorData::invalid_params("the Agenthost-Session header is not text", None)
                    })?
                    .trim()
                    .to_string(),
            ),
        };
        Ok((caller, named))
    }

    /// The session this request drives, its actor started.
    async fn session(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<(String, SessionHandle), ErrorData> {
        let (caller, named) = Self::request_parts(context)?;
        let id = match (named, self.bound()) {
            (Some(id), _) => id,
            (None, Some(b)) if b.user_id == caller.user_id => b.session_id,
            (None, Some(_)) => {
                return Err(ErrorData::invalid_request(
                    "this MCP session belongs to another user",
                    None,
                ))
            }
            (None, None) => {
                return Err(ErrorData::invalid_params(
                    "no Agent Host session: name one with the Agenthost-Session header \
                     (POST /api/v1/sessions makes one), or connect with an initialize \
                     handshake to get a new one",
                    None,
                ))
            }
        };
        let (_, handle) = self
            .sessions
            .open(&caller.user_id, &id)
            .await
            .map_err(|e| session_error(&e))?;
        Ok((id, handle))
    }

    /// Runs a tool call on the session and turns its stored result into
    /// MCP content.
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (session_id, handle) = self.session(context).await?;
        let input = serde_json::Value::Object(request.arguments.unwrap_or_default()).to_string();
        let name = request.name.to_string();
        let call = ToolUse {
            id: crate::store::new_id("mcp"),
            name: name.clone(),
            input,
        };
        let external = match handle.external_call(call, "mcp").await {
            Ok(external) => external,
            // The session cannot take a call now: the client's model should
            // read why, as it would a tool's own error.
            Err(e @ (SessionError::InvalidState(_) | SessionError::NoSandbox(_))) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    e.to_string(),
                )]))
            }
            Err(e) => return Err(session_error(&e)),
        };
        let progress = context.meta.get_progress_token().map(|token| {
            let peer = context.peer.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(PROGRESS_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let secs = started.elapsed().as_secs();
                    let note = ProgressNotificationParam::new(token.clone(), secs as f64)
                        .with_message(format!("`{name}` running for {secs} s"));
                    if peer.notify_progress(note).await.is_err() {
                        return;
                    }
                }
            })
        });
        let result = external.run(context.ct.cancelled()).await;
        if let Some(task) = progress {
            task.abort();
        }
        let event = result.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let EventBody::ToolResult(result) = event.body else {
            return Err(ErrorData::internal_error("the call stored no result", None));
        };
        let store = &self.sessions.shared().store;
        let mut content = Vec::with_capacity(result.content.len());
        for part in result.content {
            content.push(match part {
                StoredPart::Text { text } => ContentBlock::text(text),
                StoredPart::Image { sha256, .. } => {
                    let image = store
                        .image(&session_id, &sha256)
                        .await
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                    ContentBlock::image(
                        base64::engine::general_purpose::STANDARD.encode(&image.bytes),
                        image.media_type,
                    )
                }
            });
        }
        Ok(if result.is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        })
    }

    /// The session's screenshots (every image a tool returned), newest
    /// first.
    async fn screenshots(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Vec<Resource>, ErrorData> {
        let (session_id, handle) = self.session(context).await?;
        let events = handle
            .log
            .after(0)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for event in events.iter().rev() {
            let EventBody::ToolResult(r) = &event.body else {
                continue;
            };
            for part in &r.content {
                if let StoredPart::Image {
                    sha256,
                    width,
                    height,
                    media_type,
                } = part
                {
                    if seen.insert(sha256.clone()) {
                        let mut res = Resource::new(
                            image_uri(&session_id, sha256),
                            format!("{} {width}x{height} (step {})", r.name, event.seq),
                        )
                        .with_description(format!(
                            "What `{}` returned at event {} of session {session_id}",
                            r.name, event.seq
                        ));
                        res.mime_type = Some(media_type.clone());
                        out.push(res);
                    }
                }
            }
        }
        Ok(out)
    }
}

fn image_uri(session_id: &str, sha256: &str) -> String {
    format!("agenthost://sessions/{session_id}/images/{sha256}")
}

/// A session error as the MCP error a client should see.
fn session_error(e: &SessionError) -> ErrorData {
    match e {
        SessionError::NotFound => {
            ErrorData::invalid_params("no such session (or it is not yours)", None)
        }
        SessionError::Store(_) | SessionError::Stopped => {
            tracing::error!(error = %e, "MCP request failed inside");
            ErrorData::internal_error("the host failed; see its log", None)
        }
        e => ErrorData::invalid_request(e.to_string(), None),
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        );
        let mut implementation = Implementation::new("agenthost", env!("CARGO_PKG_VERSION"));
        implementation.title = Some("Agent Host".into());
        info.server_info = implementation;
        info.instructions = Some(
            "Drives one Agent Host session: a Linux desktop in a sandbox. The tools act on \
             that desktop (screenshots, mouse, keyboard, shell, files); every call is stored \
             in the session and shown live on its chat page. Screenshots are resources."
                .into(),
        );
        info
    }

    /// The handshake of a connection with an MCP session: the connection
    /// gets its Agent Host session now (or the one the header names), so
    /// the page can show it from the first call.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        let (caller, named) = Self::request_parts(&context)?;
        let session_id = match named {
            Some(id) => {
                self.sessions
                    .open(&caller.user_id, &id)
                    .await
                    .map_err(|e| session_error(&e))?;
                id
            }
            None => {
                let title = format!("MCP: {}", request.client_info.name);
                let title: String = title.chars().take(60).collect();
                let (session, _) = self
                    .sessions
                    .create(&caller.user_id, &title, None, SessionSettings::default())
                    .await
                    .map_err(|e| session_error(&e))?;
                session.id
            }
        };
        let mut meta = rmcp::model::MetaObject::default();
        meta.0.insert(
            "dev.agenthost/session".into(),
            serde_json::Value::String(session_id.clone()),
        );
        result.meta = Some(meta);
        if let Some(text) = &mut result.instructions {
            text.push_str(&format!(" This connection drives session {session_id}."));
        }
        *self.bound.lock().unwrap_or_else(|p| p.into_inner()) = Some(Binding {
            user_id: caller.user_id,
            session_id,
        });
        Ok(result)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .sessions
            .shared()
            .registry
            .tool_specs()
            .into_iter()
            .map(|spec| {
                // MCP wants an object schema; one that is not is offered
                // as taking any object.
                let schema = match serde_json::from_str(&spec.input_schema) {
                    Ok(serde_json::Value::Object(o)) => o,
                    _ => JsonObject::from_iter([("type".into(), "object".into())]),
                };
                Tool::new(spec.name, spec.description, Arc::new(schema))
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("mcp_call", tool = %request.name);
        self.call(request, &context)
            .instrument(span)
            .await
            .map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            self.screenshots(&context).await?,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (session_id, _) = self.session(&context).await?;
        let prefix = format!("agenthost://sessions/{session_id}/images/");
        let sha = request
            .uri
            .strip_prefix(&prefix)
            .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("no resource {} in this session", request.uri),
                    None,
                )
            })?;
        let image = self
            .sessions
            .shared()
            .store
            .image(&session_id, sha)
            .await
            .map_err(|_| ErrorData::resource_not_found("no such image in this session", None))?;
        let contents = ResourceContents::blob(
            base64::engine::general_purpose::STANDARD.encode(&image.bytes),
            request.uri.clone(),
        )
        .with_mime_type(image.media_type);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
