//! Sandboxes on a real Docker engine and a real Xvnc. A missing engine or
//! image is a failure, never a skip.

use std::time::Duration;

use std::collections::BTreeSet;
use std::time::Instant;

use agenthost::capabilities::{
    CallContext, ComputerBackend, EncodedImage, FilesBackend, Region, ShellBackend,
};
use agenthost::plugins::bindings::current::computer::{
    ClickCount, Modifiers, MouseButton, Point, ScrollDirection,
};
use agenthost::plugins::bindings::current::shell::Command;
use agenthost::plugins::bindings::current::types::ToolUse;
use agenthost::plugins::bindings::current::types::{ContentPart, HostError};
use agenthost::plugins::{Capability, EffectiveGrants};
use agenthost::sandbox::{Docker, PoolConfig, Sandbox, SandboxConfig, SandboxError, WarmPool};
use agenthost_tests::{component, runtime};

fn config(owner: &str) -> SandboxConfig {
    SandboxConfig {
        owner: format!("agenthost-test-{owner}"),
        ..SandboxConfig::default()
    }
}

async fn docker(owner: &str) -> Docker {
    Docker::connect(config(owner))
        .await
        .expect("Docker must be running for these tests (scripts/setup.sh starts it)")
}

async fn sandbox(owner: &str) -> Sandbox {
    let d = docker(owner).await;
    d.reap().await.unwrap();
    d.start()
        .await
        .expect("sandbox starts (build the image with sandbox-image/build.sh)")
}

async fn sh(sb: &Sandbox, command: &str) -> String {
    let out = sb
        .exec
        .run(Command {
            command: command.into(),
            cwd: None,
            env: vec![],
            timeout_ms: Some(30_000),
        })
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        Some(0),
        "{command}: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn decode(image: &EncodedImage) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(&image.bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn encode(img: &(u32, u32, Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, img.0, img.1);
    e.set_color(png::ColorType::Rgb);
    e.write_header().unwrap().write_image_data(&img.2).unwrap();
    out
}

fn pixel(img: &(u32, u32, Vec<u8>), x: u32, y: u32) -> [u8; 3] {
    let i = ((y * img.0 + x) * 3) as usize;
    [img.2[i], img.2[i + 1], img.2[i + 2]]
}

/// The desktop's plain background (`xsetroot` in the entrypoint).
const WALLPAPER: [u8; 3] = [0x3b, 0x5b, 0x7a];
/// The panel along the bottom (`sandbox-image/desktop/tint2rc`).
const PANEL: [u8; 3] = [0x1f, 0x29, 0x33];
const PANEL_HEIGHT: u32 = 36;

async fn screen(sb: &Sandbox) -> (u32, u32, Vec<u8>) {
    decode(&sb.computer.screenshot(None).await.unwrap())
}

async fn settle(sb: &Sandbox) {
    assert!(
        sb.computer
            .wait_until_settled(Duration::from_millis(300), Duration::from_secs(10))
            .await
            .unwrap(),
        "the screen did not settle"
    );
}

/// Polls a condition the sandbox will reach (a file written, a process
/// gone), with a deadline. Not a fixed sleep: it returns as soon as true.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An xterm at a known place (frame at 100,100; title bar y 101-118),
/// running `command`; returns once it is on screen and the screen settled.
async fn xterm(sb: &Sandbox, command: &str) {
    sh(sb, &format!(
        "rm -f /tmp/xterm-ready; nohup xterm -fa 'DejaVu Sans Mono' -fs 11 -geometry 80x24+100+100 \\
         -e bash -c 'touch /tmp/xterm-ready; {command}' >/dev/null 2>&1 &"
    ))
    .await;
    eventually("the xterm to start", async || {
        sb.exec.stat("/tmp/xterm-ready").await.unwrap().is_some()
    })
    .await;
    settle(sb).await;
}

async fn file_text(sb: &Sandbox, path: &str) -> String {
    match sb.exec.read(path).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_have_the_configured_size_and_decode() {
    let sb = sandbox("screenshot").await;
    let img = screen(&sb).await;
    assert_eq!((img.0, img.1), (1280, 800));
    assert_eq!(sb.computer.screen_size().await.unwrap(), (1280, 800));
    let region = Region {
        x: 100,
        y: 100,
        width: 400,
        height: 200,
        output_width: 800,
        output_height: 400,
    };
    let zoom = decode(&sb.computer.screenshot(Some(region)).await.unwrap());
    assert_eq!((zoom.0, zoom.1), (800, 400));
    let outside = Region {
        x: 1200,
        y: 0,
        width: 200,
        height: 10,
        output_width: 10,
        output_height: 10,
    };
    assert!(matches!(
        sb.computer.screenshot(Some(outside)).await,
        Err(HostError::Invalid(_))
    ));
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_screenshot_shows_a_panel_whose_launchers_work() {
    let sb = sandbox("panel").await;
    // The very first screenshot, as a model gets it: never a black screen.
    let first = screen(&sb).await;
    assert_eq!(pixel(&first, 640, 200), WALLPAPER);
    let (w, h) = (first.0, first.1);
    let panel_colours = |img: &(u32, u32, Vec<u8>)| {
        (h - PANEL_HEIGHT + 2..h - 2)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| pixel(img, x, y))
            .collect::<std::collections::HashSet<[u8; 3]>>()
    };
    // Ready waits for the panel (the page's test checks the first
    // screenshot has it), but only up to 5 s: here a dozen sandboxes boot
    // at once on two cores, so it may come just after.
    eventually("the panel", async || {
        let strip = panel_colours(&screen(&sb).await);
        strip.contains(&PANEL) && strip.len() > 20
    })
    .await;
    let with_panel = screen(&sb).await;
    assert_eq!(pixel(&with_panel, w / 2, h - PANEL_HEIGHT / 2), PANEL);

    // The second launcher is the terminal: clicking it opens one, which
    // openbox places clear of the panel.
    let c = &sb.computer;
    c.click(
        Point {
            x: 52,
            y: (h - PANEL_HEIGHT / 2) as i32,
        },
        MouseButton::Left,
        ClickCount::Single,
        Modifiers::empty(),
    )
    .await
    .unwrap();
    eventually("the terminal to open", async || {
        !sh(&sb, "pgrep -x xterm || true").await.trim().is_empty()
    })
    .await;
    settle(&sb).await;
    let after = screen(&sb).await;
    let changed = (0..h - PANEL_HEIGHT)
        .step_by(8)
        .flat_map(|y| (0..w).step_by(8).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(&after, x, y) != WALLPAPER)
        .count();
    assert!(
        changed > 500,
        "a window is on the desktop ({changed} samples)"
    );
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_and_key_combos_reach_an_xterm() {
    let sb = sandbox("typing").await;
    xterm(&sb, "cat > /tmp/typed.txt").await;
    let c = &sb.computer;
    c.type_text("abc").await.unwrap();
    c.key("ctrl+u").await.unwrap(); // the terminal's line kill: "abc" is gone
    c.type_text("Hello wörld ✓ #1\n").await.unwrap();
    c.key("ctrl+d").await.unwrap();
    eventually("cat to write the typed line", async || {
        file_text(&sb, "/tmp/typed.txt").await.ends_with('\n')
    })
    .await;
    assert_eq!(file_text(&sb, "/tmp/typed.txt").await, "Hello wörld ✓ #1\n");
    // A changed screen settles soon after, and the result says so.
    c.type_text("x").await.unwrap();
    assert!(c
        .wait_until_settled(Duration::from_millis(100), Duration::from_secs(5))
        .await
        .unwrap());
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn clicks_and_drags_move_and_maximize_a_window() {
    let sb = sandbox("mouse").await;
    xterm(&sb, "sleep 600").await;
    let before = screen(&sb).await;
    assert_eq!(
        pixel(&before, 300, 300),
        [255, 255, 255],
        "xterm content is white"
    );
    assert_eq!(pixel(&before, 1100, 700), WALLPAPER, "the desktop shows");

    // Drag the title bar: the window moves 300 px right and down.
    let c = &sb.computer;
    c.drag(
        Point { x: 460, y: 109 },
        Point { x: 760, y: 409 },
        MouseButton::Left,
    )
    .await
    .unwrap();
    settle(&sb).await;
    let moved = screen(&sb).await;
    assert_eq!(
        pixel(&moved, 150, 300),
        WALLPAPER,
        "the old place is desktop now"
    );
    assert_eq!(
        pixel(&moved, 1000, 600),
        [255, 255, 255],
        "the window is at its new place"
    );
    let p = c.cursor_position().await.unwrap();
    assert_eq!((p.x, p.y), (760, 409));

    // Double-click the title bar at its new place: the window maximizes.
    c.click(
        Point { x: 760, y: 409 },
        MouseButton::Left,
        ClickCount::Double,
        Modifiers::empty(),
    )
    .await
    .unwrap();
    settle(&sb).await;
    let max = screen(&sb).await;
    assert_eq!(
        pixel(&max, 60, 700),
        [255, 255, 255],
        "maximized over the whole desktop"
    );
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn scrolling_moves_through_the_scrollback() {
    let sb = sandbox("scroll").await;
    xterm(&sb, "seq 1 200; sleep 600").await;
    let content = |img: &(u32, u32, Vec<u8>)| -> Vec<u8> {
        (130..500)
            .flat_map(|y| (102..400).map(move |x| (x, y)))
            .flat_map(|(x, y)| pixel(img, x, y))
            .collect()
    };
    // The pointer is drawn into the framebuffer: park it outside the area compared.
    let park = async || {
        sb.computer
            .mouse_move(Point { x: 1200, y: 700 })
            .await
            .unwrap();
        settle(&sb).await;
    };
    park().await;
    let first = screen(&sb).await;
    let bottom = content(&first);
    let at = Point { x: 400, y: 300 };
    sb.computer
        .scroll(at, ScrollDirection::Up, 5, Modifiers::empty())
        .await
        .unwrap();
    park().await;
    let up = content(&screen(&sb).await);
    assert!(up != bottom, "scrolling up shows earlier lines");
    sb.computer
        .scroll(at, ScrollDirection::Down, 5, Modifiers::empty())
        .await
        .unwrap();
    park().await;
    let last = screen(&sb).await;
    if content(&last) != bottom {
        std::fs::write("/tmp/scroll-a.png", encode(&first)).unwrap();
        std::fs::write("/tmp/scroll-b.png", encode(&last)).unwrap();
    }
    assert!(
        content(&last) == bottom,
        "scrolling down returns to the end"
    );
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors() {
    let sb = sandbox("bad-input").await;
    let c = &sb.computer;
    let off = c
        .click(
            Point { x: 1280, y: 10 },
            MouseButton::Left,
            ClickCount::Single,
            Modifiers::empty(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&off, HostError::Invalid(m) if m.contains("off screen")),
        "{off:?}"
    );
    assert!(matches!(
        c.mouse_move(Point { x: -1, y: 0 }).await,
        Err(HostError::Invalid(_))
    ));
    let key = c.key("ctrl+banana").await.unwrap_err();
    assert!(
        matches!(&key, HostError::Invalid(m) if m.contains("banana")),
        "{key:?}"
    );

    let run = |command: &str, timeout_ms: u32| {
        let command = Command {
            command: command.into(),
            cwd: None,
            env: vec![],
            timeout_ms: Some(timeout_ms),
        };
        sb.exec.run(command)
    };
    let forever = run("sleep 1000", 500).await.unwrap();
    assert!(
        forever.timed_out && forever.exit_code.is_none(),
        "{forever:?}"
    );
    let flood = run("head -c 200000000 /dev/zero | tr '\\0' x", 60_000)
        .await
        .unwrap();
    assert!(flood.truncated, "200 MB of output is cut");
    assert_eq!(flood.stdout.len(), 1 << 20);
    let env = Command {
        command: "echo $GREETING; pwd".into(),
        cwd: Some("/tmp".into()),
        env: vec![("GREETING".into(), "hi".into())],
        timeout_ms: None,
    };
    assert_eq!(sb.exec.run(env).await.unwrap().stdout, "hi\n/tmp\n");

    let outside = sb.exec.read("/etc/passwd").await.unwrap_err();
    assert!(
        matches!(&outside, HostError::Invalid(m) if m.contains("outside the allowed folders")),
        "{outside:?}"
    );
    sh(&sb, "ln -s /etc /home/agent/etc-link").await;
    let escape = sb
        .exec
        .read("/home/agent/etc-link/passwd")
        .await
        .unwrap_err();
    assert!(
        matches!(&escape, HostError::Invalid(m) if m.contains("resolves to /etc/passwd")),
        "{escape:?}"
    );
    assert!(matches!(
        sb.exec.write("relative.txt", b"x").await,
        Err(HostError::Invalid(_))
    ));

    sb.exec
        .write("/home/agent/deep/er/file.bin", &[0, 159, 255])
        .await
        .unwrap();
    assert_eq!(
        sb.exec.read("/home/agent/deep/er/file.bin").await.unwrap(),
        [0, 159, 255]
    );
    let listing = sb.exec.list_dir("/home/agent/deep").await.unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].name, "er");
    assert!(sb.exec.stat("/home/agent/nothing").await.unwrap().is_none());
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_are_confined_and_limited() {
    let d = docker("confined").await;
    let sb = d.start().await.unwrap();
    let (memory, cpus, pids) = d.limits(&sb.id).await.unwrap();
    let cfg = SandboxConfig::default();
    assert_eq!(
        (memory, cpus, pids),
        (cfg.memory_bytes, cfg.nano_cpus, cfg.pids_limit)
    );
    assert_eq!(sb.vnc_addr.ip().to_string(), "127.0.0.1");
    assert_eq!(sb.exec_addr.ip().to_string(), "127.0.0.1");
    // What listens on the host for those ports listens on loopback only.
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for port in [sb.vnc_addr.port(), sb.exec_addr.port()] {
        let hex = format!(":{port:04X}");
        let locals: Vec<&str> = listening
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|local| local.ends_with(&hex))
            .collect();
        assert!(!locals.is_empty(), "port {port} is listening");
        assert!(
            locals.iter().all(|l| l.starts_with("0100007F")),
            "port {port} bound beyond loopback: {locals:?}"
        );
    }
    sh(
        &sb,
        "test ! -e /var/run/docker.sock && test \"$(id -u)\" != 0",
    )
    .await;
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn leftovers_are_reaped() {
    let d = docker("reap").await;
    d.reap().await.unwrap();
    let orphan = d.start().await.unwrap();
    let id = orphan.id.clone();
    drop(orphan); // as a crashed host leaves it: running, unowned
    assert!(d.is_running(&id).await.unwrap());
    let restarted = docker("reap").await; // a new host process
    assert_eq!(restarted.reap().await.unwrap(), 1);
    assert!(!restarted.is_running(&id).await.unwrap());
    assert!(restarted.list_owned().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_sandbox_is_a_clear_error_and_the_pool_replaces_it() {
    let d = docker("pool").await;
    let pool = WarmPool::start(
        d.clone(),
        PoolConfig {
            warm: 1,
            max_running: 3,
            idle_timeout: None,
        },
    )
    .await
    .unwrap();
    pool.wait_warm(1, Duration::from_secs(60)).await.unwrap();

    let claimed = pool.claim().await.unwrap();
    assert!(claimed.is_alive());
    pool.wait_warm(1, Duration::from_secs(60)).await.unwrap(); // refilled in the background
    assert_eq!(pool.stats().running, 2);

    d.kill(&claimed.id).await.unwrap();
    let shell = claimed
        .exec
        .run(Command {
            command: "true".into(),
            cwd: None,
            env: vec![],
            timeout_ms: None,
        })
        .await;
    assert!(
        matches!(&shell, Err(HostError::Failed(m)) if m.contains("sandbox")),
        "{shell:?}"
    );
    eventually("the display connection to drop", async || {
        !claimed.is_alive()
    })
    .await;
    let screen = claimed.computer.screenshot(None).await;
    assert!(
        matches!(&screen, Err(HostError::Failed(m)) if m.contains("display is not reachable")),
        "{screen:?}"
    );
    pool.release(claimed).await;

    // Kill the warm one too: the next claim discards it and still succeeds.
    for id in d.list_owned().await.unwrap() {
        d.kill(&id).await.unwrap();
    }
    let fresh = pool.claim().await.unwrap();
    assert!(fresh.is_alive());
    assert!(d.is_running(&fresh.id).await.unwrap());

    // The cap holds.
    let second = pool.claim().await.unwrap();
    let third = pool.claim().await;
    let stats = pool.stats();
    assert!(
        third.is_ok() || matches!(third, Err(SandboxError::PoolExhausted(3))),
        "{stats:?}"
    );
    if let Ok(t) = third {
        assert!(matches!(
            pool.claim().await,
            Err(SandboxError::PoolExhausted(3))
        ));
        pool.release(t).await;
    }
    pool.release(second).await;
    pool.release(fresh).await;
    pool.drain().await;
    d.reap().await.unwrap();
}

/// The first-party components on a real desktop: bash, editor, computer.
#[tokio::test(flavor = "multi_thread")]
async fn first_party_components_work_on_a_real_sandbox() {
    let sb = sandbox("components").await;
    let rt = runtime();
    let ctx = CallContext {
        sandbox: Some(sb.backends()),
        ..CallContext::default()
    };
    let call = async |plugin: &str, tool: &str, input: serde_json::Value| {
        let (bytes, manifest) = component(plugin);
        let p = rt.load(bytes, Some(manifest), plugin).await.unwrap();
        let grants = EffectiveGrants::new(
            plugin,
            p.manifest.capabilities.clone(),
            Capability::ALL.into_iter().collect::<BTreeSet<_>>(),
        );
        let call = ToolUse {
            id: "1".into(),
            name: tool.into(),
            input: input.to_string(),
        };
        rt.invoke_tool(&p, grants, ctx.clone(), call)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{tool}: {e:?}"))
    };
    let text = |out: &agenthost::plugins::bindings::current::tool::ToolOutput| -> String {
        out.content
            .iter()
            .filter_map(|p| {
                if let ContentPart::Text(t) = p {
                    Some(t.clone())
                } else {
                    None
                }
            })
            .collect()
    };

    let out = call(
        "bash",
        "bash",
        serde_json::json!({"command": "echo $((6*7)) && whoami"}),
    )
    .await;
    assert_eq!(text(&out), "42\nagent\n");
    call("editor", "str_replace_based_edit_tool", serde_json::json!({"command": "create", "path": "/home/agent/notes.txt", "file_text": "alpha\nbeta\n"})).await;
    call("editor", "str_replace_based_edit_tool", serde_json::json!({"command": "str_replace", "path": "/home/agent/notes.txt", "old_str": "beta", "new_str": "gamma"})).await;
    assert_eq!(
        file_text(&sb, "/home/agent/notes.txt").await,
        "alpha\ngamma\n"
    );

    let out = call(
        "computer",
        "computer",
        serde_json::json!({"action": "screenshot"}),
    )
    .await;
    let ContentPart::Image(image) = &out.content[0] else {
        panic!("expected a screenshot")
    };
    assert_eq!((image.width, image.height), (1280, 800));
    let stored = ctx.images.get(&image.handle).unwrap();
    let decoded = decode(&EncodedImage {
        bytes: stored.bytes.to_vec(),
        width: 0,
        height: 0,
        media_type: "image/png",
    });
    assert_eq!((decoded.0, decoded.1), (1280, 800));

    // A tool built against WIT 0.1.0 on the same desktop: its shell call
    // and its click (numeric count, named modifiers) go through the shims.
    let out = call(
        "v0-1-tool",
        "v01_shell",
        serde_json::json!({"command": "echo old-contract && whoami"}),
    )
    .await;
    assert_eq!(text(&out), "old-contract\nagent\n");
    let out = call(
        "v0-1-tool",
        "v01_click",
        serde_json::json!({"x": 640, "y": 400, "count": 2, "modifiers": ["shift"]}),
    )
    .await;
    assert_eq!(text(&out), "clicked 2 time(s) at 640, 400");
    sb.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_claimed_sandboxes_are_stopped() {
    let d = docker("idle").await;
    let config = PoolConfig {
        warm: 0,
        max_running: 2,
        idle_timeout: Some(Duration::from_millis(1500)),
    };
    let pool = WarmPool::start(d.clone(), config).await.unwrap();
    let sb = pool.claim().await.unwrap();
    // Used, so not idle yet.
    sh(&sb, "true").await;
    assert!(d.is_running(&sb.id).await.unwrap());
    eventually("the idle sandbox to be stopped", async || {
        !d.is_running(&sb.id).await.unwrap()
    })
    .await;
    let err = sb
        .exec
        .run(Command {
            command: "true".into(),
            cwd: None,
            env: vec![],
            timeout_ms: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HostError::Failed(m) if m.contains("stopped after being idle")),
        "{err:?}"
    );
    let err = sb.computer.screenshot(None).await.unwrap_err();
    assert!(
        matches!(&err, HostError::Failed(m) if m.contains("stopped after being idle")),
        "{err:?}"
    );
    eventually("the pool to count it gone", async || {
        pool.stats().running == 0
    })
    .await;
    pool.release(sb).await; // already reaped: counted once
    assert_eq!(pool.stats().running, 0);
}

/// A stop while the pool is refilling leaves no container behind: drain
/// waits for the sandbox being booted and removes it too.
#[tokio::test(flavor = "multi_thread")]
async fn draining_during_a_refill_leaves_no_container() {
    let d = docker("drain").await;
    let pool = WarmPool::start(
        d.clone(),
        PoolConfig {
            warm: 1,
            max_running: 3,
            idle_timeout: None,
        },
    )
    .await
    .unwrap();
    pool.wait_warm(1, Duration::from_secs(60)).await.unwrap();
    // Claiming the warm sandbox sets the refill booting its replacement.
    let claimed = pool.claim().await.unwrap();
    pool.release(claimed).await;
    pool.drain().await;
    assert_eq!(d.list_owned().await.unwrap(), Vec::<String>::new());
}
