//! A fleet for end-to-end tests: `agenthost serve --fleet` processes (real
//! processes, so one can be killed with SIGKILL) on a PostgreSQL database
//! of their own, each with its data directory and plugins.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

pub use super::database::Database;
use super::server::install_plugins;

/// The `agenthost` binary next to this test's own (`cargo build -p
/// agenthost` puts it there; scripts/test.sh builds it first).
pub fn agenthost_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps")
        .join("agenthost");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p agenthost` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// One host process of the fleet.
pub struct HostProcess {
    pub id: String,
    pub url: String,
    pub data_dir: PathBuf,
    child: tokio::process::Child,
}

impl HostProcess {
    /// Starts `agenthost serve --fleet` as `id` on `database_url` with the
    /// first-party plugins, `extra` flags appended; returns once it is
    /// ready (`/readyz`).
    pub async fn start(id: &str, database_url: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(id, database_url, data_dir, extra, &[]).await
    }

    /// As [`HostProcess::start`], with `env` added to the process's
    /// environment.
    pub async fn start_with_env(
        id: &str,
        database_url: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        if !data_dir.join("plugins").exists() {
            install_plugins(data_dir).await;
        }
        let log = std::fs::File::create(data_dir.join("host.log")).unwrap();
        let mut child = tokio::process::Command::new(agenthost_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--fleet",
                "--host-id",
                id,
            ])
            .args(["--database-url", database_url])
            .args(["--default-policy", "scripted-policy", "--warm", "1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("agenthost starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(120), lines.next_line())
            .await
            .expect("the host starts within 2 minutes")
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "host {id} exited; its log: {}",
                    std::fs::read_to_string(data_dir.join("host.log")).unwrap_or_default()
                )
            });
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        // Ready: its warm desktop is up (and it has joined the fleet).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let ready = reqwest::get(format!("{url}/readyz"))
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "host {id} never got ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Self {
            id: id.to_string(),
            url,
            data_dir: data_dir.to_path_buf(),
            child,
        }
    }

    /// SIGKILL: no shutdown code runs, leases are left to lapse.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM and wait: the host stops as an operator's would.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait()).await;
    }
}

/// Debian's `docker-registry` on a loopback port of its own, its storage in
/// `dir`: the OCI registry a fleet pushes snapshots to. Stopped on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _child: tokio::process::Child,
}

impl Registry {
    pub async fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("blobs").display()
            ),
        )
        .unwrap();
        let mut child = tokio::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry is installed (scripts/setup.sh test)");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let listening = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("listening on") {
                    return;
                }
            }
            panic!("docker-registry exited before it listened");
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), listening)
            .await
            .expect("docker-registry listens within a minute");
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            addr: format!("127.0.0.1:{port}"),
            _child: child,
        }
    }

    /// Whether the registry still serves the manifest `location`
    /// (`oci://ADDR/REPO@sha256:...`) names.
    pub async fn has_manifest(&self, location: &str) -> bool {
        let rest = location
            .strip_prefix(&format!("oci://{}/", self.addr))
            .unwrap_or_else(|| panic!("{location} is not in this registry"));
        let (repo, digest) = rest.split_once('@').expect("a pinned location");
        let status = reqwest::Client::new()
            .get(format!("http://{}/v2/{repo}/manifests/{digest}", self.addr))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 200 || status == 404, "{location}: {status}");
        status == 200
    }
}

/// Debian's HAProxy on a loopback port of its own, round robin over
/// `hosts` (base URLs); its config in `dir`. Stopped on drop.
pub struct LoadBalancer {
    pub url: String,
    _child: tokio::process::Child,
}

impl LoadBalancer {
    pub async fn start(dir: &Path, hosts: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = hosts
            .iter()
            .enumerate()
            .map(|(i, url)| format!("  server h{i} {}\n", url.trim_start_matches("http://")))
            .collect();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "defaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n  timeout tunnel 1h\n\
                 frontend fleet\n  bind 127.0.0.1:{port}\n  default_backend hosts\n\
                 backend hosts\n  balance roundrobin\n{servers}"
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy is installed (scripts/setup.sh test installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while reqwest::get(format!("{url}/healthz"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(
                std::time::Instant::now() < deadline,
                "HAProxy never answered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self { url, _child: child }
    }
}
