//! A sandbox's files, saved and put back.
//!
//! The sandbox's root filesystem is read-only and the agent runs without
//! privileges, so everything a session can change on its desktop lives in
//! the agent's home, a tmpfs. `docker commit` would save the container's
//! writable layer, which holds none of it, and Docker's archive API
//! (`docker cp`) reads the image's directory under a tmpfs mount, not the
//! mount. A snapshot is therefore the home itself: a tar archive made by
//! `tar` inside the sandbox, streamed out through the exec service, kept as
//! a file, and unpacked into a new sandbox's home (a warm one: restoring
//! costs the unpack, not a boot). Processes and windows are not part of it.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Sandbox, SandboxError};

/// Printed after the archive when `tar` succeeded: the exec service does
/// not report exit codes, and a truncated archive must not pass as whole.
const SAVED: &[u8] = b"\nAGENTHOST-SNAPSHOT-OK\n";
const RESTORED: &str = "AGENTHOST-RESTORE-OK";

/// tar's exit code 1 means a file changed while it was read (the agent's
/// programs run on); the archive is still whole.
const SAVE_SCRIPT: &str = "tar -C /home/agent --warning=no-file-changed --warning=no-file-ignored \
     -cf - . 2>/dev/null; [ $? -le 1 ] && printf '\\nAGENTHOST-SNAPSHOT-OK\\n'";
/// tar stops at the archive's end marker, so it finishes without the
/// connection closing (closing it would stop the process, see execd.py).
const RESTORE_SCRIPT: &str = "said=$(tar -C /home/agent -xf - 2>&1) && echo AGENTHOST-RESTORE-OK \
     || printf '%.2000s' \"$said\"";
/// How long an unpack may take.
const RESTORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

fn failed(detail: impl std::fmt::Display) -> SandboxError {
    SandboxError::Snapshot(detail.to_string())
}

impl Sandbox {
    /// Writes this sandbox's home as a tar archive to `to` and returns its
    /// size. An archive larger than the home's tmpfs could hold (plus tar's
    /// headers) is refused while it streams: a sandbox is hostile input.
    pub async fn save_home(&self, to: &Path) -> Result<u64, SandboxError> {
        let max = (u64::from(self.docker.config().home_mb) + 64) << 20;
        let argv = ["sh".to_string(), "-c".into(), SAVE_SCRIPT.into()];
        // The connection's sending half stays open until the archive is
        // read: closing it stops the process.
        let (mut out, _input) = self
            .exec
            .spawn("snapshot", &argv, &[], None)
            .await
            .map_err(|e| failed(format!("{e:?}")))?;
        let partial = to.with_extension("partial");
        let result = async {
            let mut file = tokio::fs::File::create(&partial).await?;
            let mut size = 0u64;
            // The last bytes seen, to find the marker once the stream ends.
            let mut tail: Vec<u8> = Vec::with_capacity(SAVED.len() * 2);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = out.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > max {
                    return Err(failed(format!("the home is larger than {max} bytes")));
                }
                file.write_all(&buf[..n]).await?;
                tail.extend_from_slice(&buf[..n]);
                let keep = tail.len().saturating_sub(SAVED.len());
                tail.drain(..keep);
            }
            if tail != SAVED {
                return Err(failed("tar did not finish (the sandbox may have stopped)"));
            }
            let size = size - SAVED.len() as u64;
            file.set_len(size).await?;
            file.sync_all().await?;
            Ok(size)
        }
        .await;
        match result {
            Ok(size) => {
                tokio::fs::rename(&partial, to).await?;
                self.activity.touch();
                Ok(size)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// Unpacks an archive made by [`Sandbox::save_home`] into this
    /// sandbox's home.
    pub async fn restore_home(&self, from: &Path) -> Result<(), SandboxError> {
        let mut file = tokio::fs::File::open(from).await?;
        let argv = ["sh".to_string(), "-c".into(), RESTORE_SCRIPT.into()];
        let (mut out, mut input) = self
            .exec
            .spawn("restore", &argv, &[], None)
            .await
            .map_err(|e| failed(format!("{e:?}")))?;
        // Feed the archive while reading what tar says, so neither side
        // waits on a full pipe; the answer ends when the process does.
        let feed = tokio::io::copy(&mut file, &mut input);
        let read = async {
            let mut said = Vec::new();
            (&mut out).take(4096).read_to_end(&mut said).await?;
            Ok::<_, std::io::Error>(said)
        };
        let (fed, said) = tokio::time::timeout(RESTORE_TIMEOUT, async { tokio::join!(feed, read) })
            .await
            .map_err(|_| failed("unpacking the snapshot took too long"))?;
        drop(input);
        let said = String::from_utf8_lossy(&said?).into_owned();
        if !said.contains(RESTORED) {
            let why = match fed {
                Err(e) if said.trim().is_empty() => e.to_string(),
                _ => said.trim().to_string(),
            };
            return Err(failed(format!("tar could not unpack the snapshot: {why}")));
        }
        self.activity.touch();
        Ok(())
    }
}
