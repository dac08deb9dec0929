//! What recording a sandbox's desktop costs, measured in one run:
//! `cargo bench -p agenthost-tests --bench recording`.
//!
//! One sandbox, a maximised xterm printing a file listing without pause
//! (the screen changes all the time: the worst case a run meets), then the
//! same with the screen still. Each phase lasts `PHASE` and is measured
//! with and without a recording, interleaved (off, on, off, on), so the
//! baseline is the host mirroring the same screen without ffmpeg. CPU is
//! this process's time (the mirror, copying frames to ffmpeg) plus
//! ffmpeg's (read from the kernel once it has been waited for), as a share
//! of one core.
//!
//! Writes `bench-results/recording.json` and prints a Markdown table.

use std::time::{Duration, Instant};

use agenthost::capabilities::{ComputerBackend, ShellBackend};
use agenthost::plugins::bindings::current::shell::Command;
use agenthost::sandbox::{Docker, SandboxConfig};
use agenthost::session::{Recorder, RecordingConfig};
use serde_json::json;

const PHASE: Duration = Duration::from_secs(20);

/// CPU time of this process and of its waited-for children, from
/// /proc/self/stat (utime, stime, cutime, cstime; in clock ticks).
fn cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    let tick = |t: u64| Duration::from_millis(t * 10); // USER_HZ = 100
    (tick(f[0] + f[1]), tick(f[2] + f[3]))
}

struct Sample {
    screen: &'static str,
    recording: bool,
    host: f64,
    ffmpeg: f64,
    bytes_per_sec: f64,
    frames_per_sec: f64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let config = SandboxConfig {
        owner: "agenthost-bench-rec".into(),
        ..SandboxConfig::default()
    };
    let docker = Docker::connect(config).await.expect("Docker is running");
    docker.reap().await.unwrap();
    let sb = docker.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shell = |command: &str| Command {
        command: command.into(),
        cwd: None,
        env: vec![],
        timeout_ms: None,
    };
    let recording = RecordingConfig::default();
    let mut samples = Vec::new();
    for screen in ["busy", "still"] {
        if screen == "busy" {
            sb.exec
                .run(shell(
                    "nohup xterm -maximized -e 'while :; do ls -lR /usr; done' >/dev/null 2>&1 &",
                ))
                .await
                .unwrap();
        } else {
            sb.exec.run(shell("pkill xterm; true")).await.unwrap();
            sb.computer
                .wait_until_settled(Duration::from_millis(500), Duration::from_secs(10))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for round in 0..4 {
            let on = round % 2 == 1;
            let (host0, children0) = cpu();
            let started = Instant::now();
            let recorder = if on {
                Some(
                    Recorder::start(
                        sb.computer.clone(),
                        dir.path(),
                        format!("{screen}-{round}.webm"),
                        &recording,
                    )
                    .await
                    .expect("ffmpeg starts"),
                )
            } else {
                None
            };
            tokio::time::sleep(PHASE).await;
            let saved = match recorder {
                Some(r) => Some(r.finish().await.expect("the recording finishes")),
                None => None,
            };
            let wall = started.elapsed().as_secs_f64();
            let (host1, children1) = cpu();
            let share = |d: Duration| 100.0 * d.as_secs_f64() / wall;
            samples.push(Sample {
                screen,
                recording: on,
                host: share(host1 - host0),
                ffmpeg: share(children1 - children0),
                bytes_per_sec: saved.as_ref().map_or(0.0, |s| s.bytes as f64 / wall),
                frames_per_sec: saved.as_ref().map_or(0.0, |s| s.frames as f64 / wall),
            });
        }
    }
    sb.destroy().await.unwrap();

    println!(
        "| screen | recording | host CPU | ffmpeg CPU | total (% of one core) | video | frames/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for s in &samples {
        println!(
            "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.0} KB/s | {:.1} |",
            s.screen,
            if s.recording { "on" } else { "off" },
            s.host,
            s.ffmpeg,
            s.host + s.ffmpeg,
            s.bytes_per_sec / 1024.0,
            s.frames_per_sec
        );
    }
    let rows: Vec<_> = samples
        .iter()
        .map(|s| {
            json!({"screen": s.screen, "recording": s.recording, "host_cpu_pct": s.host,
                   "ffmpeg_cpu_pct": s.ffmpeg, "video_bytes_per_sec": s.bytes_per_sec,
                   "frames_per_sec": s.frames_per_sec})
        })
        .collect();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&out).unwrap();
    let doc = json!({"benchmark": "recording", "phase_secs": PHASE.as_secs(), "fps": recording.fps,
                     "bitrate_kbps": recording.bitrate_kbps, "results": rows});
    std::fs::write(
        out.join("recording.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    println!("\nwritten to bench-results/recording.json");
}
