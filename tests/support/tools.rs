//! The test tools `scripts/setup.sh test` installs into its virtualenv
//! (kubernetes-validate, the OpenTelemetry protobuf bindings, ...).

use std::path::PathBuf;

/// `venv/bin/NAME` in the tools directory; a missing tool fails the test
/// with where it comes from.
pub fn tools_bin(name: &str) -> PathBuf {
    let cache = std::env::var_os("AGENTHOST_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"));
            base.join("agenthost-tools")
        });
    let bin = cache.join("venv/bin").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: scripts/setup.sh test installs it",
        bin.display()
    );
    bin
}
