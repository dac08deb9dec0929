//! The deployment files: the Kubernetes manifests validate against the
//! Kubernetes schemas, strictly (unknown fields are errors), offline;
//! `kubectl apply --dry-run=client` would need a cluster's discovery API.
//! The compose file is what Debian's docker-compose reads, with the
//! services it promises and the password it insists on.

use std::path::{Path, PathBuf};
use std::process::Command;

use agenthost_tests::tools::tools_bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new(tools_bin("kubernetes-validate"))
        .arg("--strict")
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn the_kubernetes_manifests_validate_strictly() {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "configmap.yaml",
            "deployment.yaml",
            "secret.yaml",
            "service.yaml"
        ]
    );
    let out = validate(&files);
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches("passed").count(), 4, "{said}");

    // The check can fail: a misspelt field in the Deployment is caught.
    let work = tempfile::tempdir().unwrap();
    let broken = work.path().join("deployment.yaml");
    let text = std::fs::read_to_string(dir.join("deployment.yaml")).unwrap();
    assert!(text.contains("readinessProbe:"));
    std::fs::write(&broken, text.replace("readinessProbe:", "readynessProbe:")).unwrap();
    let out = validate(&[broken]);
    assert!(!out.status.success(), "a misspelt field passed");
}

#[test]
fn the_compose_file_runs_a_fleet_behind_haproxy() {
    let compose = repo().join("deploy/compose.yaml");
    let config = |password: Option<&str>, args: &[&str]| {
        let mut command = Command::new("docker-compose");
        command.arg("-f").arg(&compose).arg("config").args(args);
        command.env_remove("POSTGRES_PASSWORD");
        if let Some(p) = password {
            command.env("POSTGRES_PASSWORD", p);
        }
        command
            .output()
            .expect("docker-compose is installed (scripts/setup.sh test)")
    };
    let out = config(Some("s3cret"), &["--services"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut services: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    services.sort();
    assert_eq!(
        services,
        ["haproxy", "host-a", "host-b", "host-c", "postgres"]
    );

    let out = config(Some("s3cret"), &[]);
    let resolved = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        resolved.contains("postgres://agenthost:s3cret@127.0.0.1:5433/agenthost"),
        "{resolved}"
    );
    for id in ["host-a", "host-b", "host-c"] {
        assert!(
            resolved.contains(&format!("AGENTHOST_HOST_ID: {id}")),
            "{resolved}"
        );
    }

    let out = config(None, &["-q"]);
    assert!(
        !out.status.success(),
        "a fleet without a database password started"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("set POSTGRES_PASSWORD"));

    // HAProxy balances the three hosts the compose file starts.
    let haproxy = std::fs::read_to_string(repo().join("deploy/haproxy.cfg")).unwrap();
    for port in [8081, 8082, 8083] {
        assert!(
            haproxy.contains(&format!("127.0.0.1:{port} check")),
            "{haproxy}"
        );
    }
}
