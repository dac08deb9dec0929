//! The one way the plugin runtime replaces a file it owns.

use std::path::Path;

/// Writes `bytes` beside `path` and renames it over `path`, so a reader (or
/// a host that crashed mid-write) sees the old file or the new one, never a
/// torn one. The temporary name carries the process id and a counter: two
/// hosts sharing a data directory, or two threads of one host compiling the
/// same component, never write the same temporary file.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
