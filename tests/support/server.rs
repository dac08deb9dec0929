//! A real host for end-to-end tests: `Server::start` on a loopback port
//! with a temporary data directory, the built plugins installed, a real
//! sandbox pool on Docker, and SQLite or PostgreSQL. Plus thin HTTP and
//! WebSocket clients.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agenthost::config::ServeConfig;
use agenthost::plugins::{Capability, Registry, Runtime, RuntimeConfig};
use agenthost::server::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::database::Database;
use super::{component, shared_cache_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> String {
    std::env::var("AGENTHOST_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://agenthost:agenthost@127.0.0.1:5432/agenthost_test".into())
}

/// A unique name per call in this process (users, sandbox owners).
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The first-party plugins and the grants `scripts/start.sh` gives them.
const PLUGINS: &[(&str, &[Capability])] = &[
    ("computer", &[Capability::Computer]),
    ("bash", &[Capability::Shell]),
    ("scripted-policy", &[]),
    ("anthropic-policy", &[Capability::Llm]),
    ("openai-policy", &[Capability::Llm]),
];

/// Installs the first-party plugins into `data_dir`.
pub async fn install_plugins(data_dir: &Path) {
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(shared_cache_dir()),
            ..Default::default()
        })
        .unwrap(),
    );
    let registry = Registry::open(runtime, data_dir).await.unwrap();
    for (name, grants) in PLUGINS {
        let (bytes, manifest) = component(name);
        let grants: BTreeSet<Capability> = grants.iter().copied().collect();
        registry
            .install(bytes, Some(manifest), name, &grants)
            .await
            .unwrap();
    }
}

pub struct TestHost {
    pub server: Option<Server>,
    pub data_dir: PathBuf,
    pub config: ServeConfig,
    pub http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
    /// A PostgreSQL host's own database, dropped with the host.
    _database: Option<Database>,
}

impl TestHost {
    /// A config for a test: loopback, an owner of its own, the database at
    /// `database_url`.
    pub fn config(database_url: String) -> ServeConfig {
        let mut config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        // Stable across runs (a counter, no process id), so a test host
        // that died without stopping leaves a network the next run reuses.
        // Processes running side by side differ in their group: the suite
        // scripts/run-tests.py runs (AGENTHOST_TEST_GROUP), else the binary.
        config.sandbox.owner = {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let group = std::env::var("AGENTHOST_TEST_GROUP").unwrap_or_else(|_| {
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .and_then(|stem| stem.split('-').next().map(str::to_string))
                    .unwrap_or_default()
            });
            format!("test-{group}-{}", N.fetch_add(1, Ordering::Relaxed))
        };
        // No desktop kept warm: most tests never open one, and each
        // desktop started costs about a second of CPU (tests that are about
        // the warm pool ask for one).
        config.sandbox.warm = 0;
        config.sandbox.max_running = 4;
        config.database_url = Some(database_url);
        config
    }

    pub async fn start(db: Db) -> Self {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        install_plugins(&data_dir).await;
        let (database_url, database) = match db {
            Db::Sqlite => (
                format!("sqlite:{}", data_dir.join("agenthost.db").display()),
                None,
            ),
            Db::Postgres => {
                let database = Database::create().await;
                (database.url.clone(), Some(database))
            }
        };
        let mut config = Self::config(database_url);
        tweak(&mut config);
        let server = Server::start(config.clone(), &data_dir)
            .await
            .expect("server starts");
        Self {
            server: Some(server),
            data_dir,
            config,
            http: reqwest::Client::new(),
            _dir: Some(dir),
            _database: database,
        }
    }

    /// Stops the server and starts a new one on the same data and database.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.server = Some(
            Server::start(self.config.clone(), &self.data_dir)
                .await
                .expect("server restarts"),
        );
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server().addr)
    }

    pub async fn token(&self, user: &str) -> String {
        self.server()
            .state()
            .store
            .create_token(user, "test", None, false)
            .await
            .unwrap()
    }

    pub async fn admin_token(&self, user: &str) -> String {
        self.server()
            .state()
            .store
            .create_token(user, "test", None, true)
            .await
            .unwrap()
    }

    /// An unauthenticated GET; returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A request with a bearer token; returns the status and JSON body.
    /// A GET whose answer is not JSON: status, content type, body.
    pub async fn get_text(&self, path: &str, token: &str) -> (u16, String, String) {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, res.text().await.unwrap())
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call_json(&self.http, method, &self.url(path), token, body).await
    }

    pub async fn create_session(&self, token: &str, body: Value) -> Value {
        let (status, session) = self
            .call("POST", "/api/v1/sessions", token, Some(body))
            .await;
        assert_eq!(status, 201, "{session}");
        session
    }

    /// A new session with the default policy and a socket past its
    /// snapshot: the usual start of a test.
    pub async fn open_chat(&self, token: &str) -> (String, Ws) {
        let session = self.create_session(token, json!({})).await;
        let id = session["id"].as_str().unwrap().to_string();
        let mut ws = self.ws(token, &id, 0).await;
        assert_eq!(ws.next().await.unwrap()["kind"], "snapshot");
        (id, ws)
    }

    pub async fn ws(&self, token: &str, session: &str, after: i64) -> Ws {
        Ws::connect(&self.url(""), token, session, after).await
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

pub struct Ws {
    pub socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Upper bound on waiting for any one frame; a hang is a failure, not a
/// timing assumption.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

impl Ws {
    /// The session's WebSocket on the host at `base` (`http://...`).
    pub async fn connect(base: &str, token: &str, session: &str, after: i64) -> Ws {
        let base = base.replacen("http://", "ws://", 1);
        let url = format!("{base}/api/v1/sessions/{session}/ws?after={after}");
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connects");
        Ws { socket }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next JSON frame (pings skipped); `None` when the socket closes.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("a frame within the timeout")?;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Frames until one satisfies `done` (included).
    pub async fn until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let frame = self.next().await.expect("socket open");
            let stop = done(&frame);
            out.push(frame);
            if stop {
                return out;
            }
        }
    }

    /// Frames until the session reaches `status`.
    pub async fn until_status(&mut self, status: &str) -> Vec<Value> {
        self.until(|f| is_status(f, status)).await
    }
}

/// A request with a bearer token; returns the status and JSON body
/// (`null` for an empty one).
pub async fn call_json(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

pub fn is_status(frame: &Value, status: &str) -> bool {
    frame["kind"] == "state_changed" && frame["payload"]["status"] == status
}

/// The stored events of a frame list, in order.
pub fn stored(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|f| f["seq"].is_i64()).collect()
}

pub fn user_message(text: &str) -> Value {
    json!({"type": "user_message", "text": text})
}
