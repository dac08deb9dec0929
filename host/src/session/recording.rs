//! Recording a run's desktop as WebM video (a per-session switch, off by
//! default).
//!
//! The host already mirrors every sandbox's framebuffer over VNC, so a
//! recording needs nothing from the sandbox: a task samples the mirror at
//! most `fps` times a second and pipes a frame to ffmpeg (VP8, realtime)
//! only when the screen changed. Frames carry the wall clock as their
//! timestamps, so a still screen costs neither CPU nor bytes and the video
//! still plays in real time. Recordings live under the data directory,
//! one file per run, and are announced with a `recording_saved` event.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sandbox::RfbComputer;

/// `[recording]`: how runs are recorded when a session switches it on.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// The ffmpeg binary (Debian's `ffmpeg` package has VP8).
    pub ffmpeg: PathBuf,
    /// Most frames per second; fewer when the screen is still.
    pub fps: u32,
    /// A run's recording stops after this many seconds.
    pub max_secs: u64,
    /// VP8 target bitrate, in kbit/s.
    pub bitrate_kbps: u32,
    /// A session's recordings together may take this many MiB of disk;
    /// past it, runs are no longer recorded (an error event says so).
    pub max_session_mib: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            fps: 5,
            max_secs: 3600,
            bitrate_kbps: 800,
            max_session_mib: 2048,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot start {ffmpeg} (install Debian's `ffmpeg` package): {source}")]
    Spawn {
        ffmpeg: String,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ffmpeg failed: {0}")]
    Encoder(String),
    #[error("the session's recordings take {used_mib} MiB, the limit is {limit_mib} MiB; delete the session or record less")]
    Full { used_mib: u64, limit_mib: u64 },
}

/// A finished recording.
#[derive(Debug, Clone)]
pub struct Recording {
    pub file: String,
    pub bytes: u64,
    pub duration_ms: u64,
    pub frames: u64,
    pub width: u16,
    pub height: u16,
}

/// A recording in progress.
pub struct Recorder {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<Recording, RecordingError>>,
}

/// How much of ffmpeg's error output is kept for the error message.
const STDERR_KEEP: usize = 2048;
/// How long ffmpeg gets to write the file's index after its input ends.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

impl Recorder {
    /// Starts recording `computer`'s screen into `dir/file`.
    pub async fn start(
        computer: Arc<RfbComputer>,
        dir: &Path,
        file: String,
        config: &RecordingConfig,
    ) -> Result<Self, RecordingError> {
        std::fs::create_dir_all(dir).map_err(|source| RecordingError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let used_mib = bytes_in(dir) >> 20;
        if used_mib >= config.max_session_mib {
            return Err(RecordingError::Full {
                used_mib,
                limit_mib: config.max_session_mib,
            });
        }
        let (width, height) = computer.mirror().await.size();
        let path = dir.join(&file);
        let child = Command::new(&config.ffmpeg)
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-f", "rawvideo", "-pix_fmt", "bgr0"])
            .args(["-s", &format!("{width}x{height}")])
            .args(["-use_wallclock_as_timestamps", "1", "-i", "pipe:0"])
            .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
            .args(["-b:v", &format!("{}k", config.bitrate_kbps)])
            .args(["-fps_mode", "vfr", "-f", "webm", "-y"])
            .arg(&path)
            // -nostdin only stops ffmpeg reading commands from the
            // terminal; the frames come on stdin as pipe:0.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RecordingError::Spawn {
                ffmpeg: config.ffmpeg.display().to_string(),
                source,
            })?;
        let (stop, stopped) = oneshot::channel();
        let frames = FrameLoop {
            computer,
            size: (width, height),
            interval: Duration::from_millis(1000 / u64::from(config.fps.max(1))),
            max: Duration::from_secs(config.max_secs),
        };
        let task = tokio::spawn(frames.run(child, stopped, file, path));
        Ok(Self { stop, task })
    }

    /// Stops, lets ffmpeg finish the file, and says what was recorded.
    pub async fn finish(self) -> Result<Recording, RecordingError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(RecordingError::Encoder(format!(
                "the recording task stopped: {e}"
            ))),
        }
    }
}

/// Bytes of the files directly in `dir`.
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

struct FrameLoop {
    computer: Arc<RfbComputer>,
    size: (u16, u16),
    interval: Duration,
    max: Duration,
}

impl FrameLoop {
    async fn run(
        self,
        mut child: Child,
        mut stopped: oneshot::Receiver<()>,
        file: String,
        path: PathBuf,
    ) -> Result<Recording, RecordingError> {
        let started = Instant::now();
        let mut stdin = child.stdin.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf).await {
                kept.extend_from_slice(&buf[..n]);
                let over = kept.len().saturating_sub(STDERR_KEEP);
                kept.drain(..over);
            }
            String::from_utf8_lossy(&kept).trim().to_string()
        });
        let mut frames = 0u64;
        let mut shown = None;
        let mut written = self.frame(&mut stdin, &mut shown, true).await;
        frames += u64::from(written == Ok(true));
        while written.is_ok() && started.elapsed() < self.max {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
            written = self.frame(&mut stdin, &mut shown, false).await;
            frames += u64::from(written == Ok(true));
        }
        // The last picture once more, so the video lasts to the end.
        if written.is_ok() {
            frames += u64::from(self.frame(&mut stdin, &mut shown, true).await == Ok(true));
        }
        drop(stdin);
        let status = match tokio::time::timeout(FINISH_TIMEOUT, child.wait()).await {
            Ok(status) => status.map_err(|e| RecordingError::Encoder(e.to_string()))?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(RecordingError::Encoder(
                    "ffmpeg did not finish the file in time".into(),
                ));
            }
        };
        let errors = errors.await.unwrap_or_default();
        if !status.success() {
            return Err(RecordingError::Encoder(if errors.is_empty() {
                status.to_string()
            } else {
                errors
            }));
        }
        let bytes = tokio::fs::metadata(&path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(Recording {
            file,
            bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            frames,
            width: self.size.0,
            height: self.size.1,
        })
    }

    /// Writes the screen if it changed since the last frame (or `always`);
    /// true if a frame was written. A resized screen is skipped: the
    /// video keeps the size it started with.
    async fn frame(
        &self,
        stdin: &mut ChildStdin,
        shown: &mut Option<u64>,
        always: bool,
    ) -> Result<bool, ()> {
        let client = self.computer.mirror().await;
        let generation = client.generation();
        if !always && *shown == Some(generation) {
            return Ok(false);
        }
        let pixels = client
            .with_framebuffer(|fb| ((fb.width, fb.height) == self.size).then(|| fb.pixels.clone()));
        let Some(pixels) = pixels else {
            return Ok(false);
        };
        *shown = Some(generation);
        // ffmpeg gone (it failed): the error comes from its exit status.
        stdin.write_all(&pixels).await.map(|_| true).map_err(drop)
    }
}
