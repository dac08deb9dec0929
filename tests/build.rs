//! Builds the Rust guest components the tests load (the first-party
//! plugins and the fixtures in `plugins/testing`), so `cargo test` works on
//! its own rather than trusting whatever `dist/plugins` holds.
//!
//! The guests are a workspace of their own (`plugins/`), built for
//! wasm32-wasip2 by a nested cargo into `<target>/wasm-guests`: a directory
//! of its own, because the outer cargo holds the lock on its build
//! directory while this script runs. `scripts/build-plugins.sh` builds into
//! the same directory, so after it this step is a no-op check. The Python
//! and JavaScript examples need their own toolchains and still come from
//! `scripts/build-plugins.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ is inside the repository");
    let plugins = root.join("plugins");
    // Everything in the guests' workspace but its own build output and the
    // Python/JavaScript examples (their node_modules churn would rerun this).
    let entries = std::fs::read_dir(&plugins).expect("plugins/ is readable");
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name != "target" && name != "examples" {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let target_dir = guest_target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--locked"])
        .args(["--target", "wasm32-wasip2", "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer build's flags are for the host, not for wasm guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the guest components failed ({s}); is the wasm32-wasip2 target \
             installed? (`rustup target add wasm32-wasip2`, which scripts/setup.sh runs)"
        ),
        Err(e) => panic!("cannot run cargo to build the guest components: {e}"),
    }
    let out = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=AGENTHOST_GUESTS_DIR={}", out.display());
    println!("cargo:rustc-env=AGENTHOST_GUESTS_SRC={}", plugins.display());
}

/// `<target>/wasm-guests`, where `<target>` is the outer build's target
/// directory: OUT_DIR is `<target>/<profile>/build/<package>-<hash>/out`.
fn guest_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let target = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .expect("OUT_DIR has the layout cargo gives it");
    target.join("wasm-guests")
}
