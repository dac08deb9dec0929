//! The connection: handshake, a reader task that applies updates to the
//! mirrored framebuffer and immediately asks for the next incremental
//! update, and input events written from any task.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::auth::vnc_auth_response;
use super::Framebuffer;

const ENC_RAW: i32 = 0;
const ENC_COPY_RECT: i32 = 1;
const ENC_DESKTOP_SIZE: i32 = -223;
const ENC_LAST_RECT: i32 = -224;
const ENC_EXTENDED_DESKTOP_SIZE: i32 = -308;
/// Larger than any desktop we run; a bigger size means a broken stream.
const MAX_DIMENSION: u16 = 8192;
const MAX_CUT_TEXT: u32 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    #[error("VNC connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("VNC protocol error: {0}")]
    Protocol(String),
    #[error("VNC authentication failed: {0}")]
    Auth(String),
    #[error("the VNC connection is closed")]
    Closed,
    #[error("VNC handshake did not finish within {0:?}")]
    Timeout(Duration),
}

/// Published after every framebuffer update.
#[derive(Debug, Clone, Copy)]
pub struct UpdateState {
    /// Counts updates that changed pixels.
    pub generation: u64,
    pub last_change: Instant,
    pub alive: bool,
}

pub struct RfbClient {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    framebuffer: Arc<Mutex<Framebuffer>>,
    updates: watch::Receiver<UpdateState>,
    reader: JoinHandle<()>,
}

impl Drop for RfbClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn protocol(msg: impl Into<String>) -> RfbError {
    RfbError::Protocol(msg.into())
}

async fn read_reason(stream: &mut TcpStream) -> String {
    let Ok(len) = stream.read_u32().await else {
        return "(no reason given)".into();
    };
    let mut buf = vec![0; len.min(4096) as usize];
    match stream.read_exact(&mut buf).await {
        Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => "(no reason given)".into(),
    }
}

/// What the server says after authentication (ServerInit).
#[derive(Debug, Clone)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub pixel_format: [u8; 16],
    pub name: Vec<u8>,
}

/// Connects, negotiates RFB 3.8, authenticates (VNC auth with a password,
/// else None) and sends a shared ClientInit. Used by our client and by the
/// browser bridge, which then speaks to the browser on the host's behalf.
pub async fn connect_authenticated(
    addr: SocketAddr,
    password: Option<&str>,
) -> Result<(TcpStream, ServerInit), RfbError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;

    let mut version = [0u8; 12];
    stream.read_exact(&mut version).await?;
    if !version.starts_with(b"RFB 003.") {
        return Err(protocol(format!(
            "not an RFB server (greeting {:?})",
            String::from_utf8_lossy(&version)
        )));
    }
    stream.write_all(b"RFB 003.008\n").await?;

    let count = stream.read_u8().await?;
    if count == 0 {
        return Err(RfbError::Auth(read_reason(&mut stream).await));
    }
    let mut types = vec![0u8; count as usize];
    stream.read_exact(&mut types).await?;
    let chosen = match password {
        Some(_) if types.contains(&2) => 2,
        _ if types.contains(&1) => 1,
        _ => {
            return Err(RfbError::Auth(format!(
                "no supported security type among {types:?}"
            )))
        }
    };
    stream.write_u8(chosen).await?;
    if chosen == 2 {
        let mut challenge = [0u8; 16];
        stream.read_exact(&mut challenge).await?;
        stream
            .write_all(&vnc_auth_response(password.unwrap_or_default(), &challenge))
            .await?;
    }
    if stream.read_u32().await? != 0 {
        return Err(RfbError::Auth(read_reason(&mut stream).await));
    }

    stream.write_u8(1).await?; // ClientInit: shared
    let width = stream.read_u16().await?;
    let height = stream.read_u16().await?;
    let mut pixel_format = [0u8; 16];
    stream.read_exact(&mut pixel_format).await?;
    let name_len = stream.read_u32().await?;
    let mut name = vec![0u8; name_len.min(4096) as usize];
    stream.read_exact(&mut name).await?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(protocol(format!(
            "implausible desktop size {width}x{height}"
        )));
    }
    Ok((
        stream,
        ServerInit {
            width,
            height,
            pixel_format,
            name,
        },
    ))
}

impl RfbClient {
    /// Connects and completes the handshake: a successful return means the
    /// server is ready and the first full update has been requested.
    pub async fn connect(
        addr: SocketAddr,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, RfbError> {
        tokio::time::timeout(timeout, Self::handshake(addr, password))
            .await
            .map_err(|_| RfbError::Timeout(timeout))?
    }

    async fn handshake(addr: SocketAddr, password: Option<&str>) -> Result<Self, RfbError> {
        let (mut stream, init) = connect_authenticated(addr, password).await?;
        let (width, height) = (init.width, init.height);

        // SetPixelFormat: 32 bpp, depth 24, little endian, true colour
        // 0x00RRGGBB; SetEncodings; then the first full update request.
        let mut init = vec![
            0u8, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
        ];
        let encodings = [
            ENC_RAW,
            ENC_COPY_RECT,
            ENC_DESKTOP_SIZE,
            ENC_EXTENDED_DESKTOP_SIZE,
            ENC_LAST_RECT,
        ];
        init.extend_from_slice(&[2, 0]);
        init.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
        for e in encodings {
            init.extend_from_slice(&e.to_be_bytes());
        }
        init.extend_from_slice(&update_request(false, width, height));
        stream.write_all(&init).await?;

        let (read, write) = stream.into_split();
        let framebuffer = Arc::new(Mutex::new(Framebuffer::new(width, height)));
        let writer = Arc::new(tokio::sync::Mutex::new(write));
        let (tx, updates) = watch::channel(UpdateState {
            generation: 0,
            last_change: Instant::now(),
            alive: true,
        });
        let reader = tokio::spawn(read_loop(read, framebuffer.clone(), writer.clone(), tx));
        Ok(Self {
            writer,
            framebuffer,
            updates,
            reader,
        })
    }

    pub fn is_alive(&self) -> bool {
        self.updates.borrow().alive
    }

    pub fn size(&self) -> (u16, u16) {
        let fb = self.framebuffer.lock().unwrap_or_else(|p| p.into_inner());
        (fb.width, fb.height)
    }

    /// Runs `f` on the mirrored framebuffer (briefly: updates wait for it).
    pub fn with_framebuffer<T>(&self, f: impl FnOnce(&Framebuffer) -> T) -> T {
        f(&self.framebuffer.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits for the first update after connecting (the full screen).
    pub async fn first_frame(&self, timeout: Duration) -> Result<(), RfbError> {
        let mut rx = self.updates.clone();
        let outcome = tokio::time::timeout(timeout, async {
            let state = rx
                .wait_for(|s| s.generation > 0 || !s.alive)
                .await
                .map(|s| s.alive);
            matches!(state, Ok(true))
        })
        .await;
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(RfbError::Closed),
            Err(_) => Err(RfbError::Timeout(timeout)),
        }
    }

    async fn send(&self, bytes: &[u8]) -> Result<(), RfbError> {
        if !self.is_alive() {
            return Err(RfbError::Closed);
        }
        self.writer
            .lock()
            .await
            .write_all(bytes)
            .await
            .map_err(RfbError::from)
    }

    pub async fn pointer(&self, mask: u8, x: u16, y: u16) -> Result<(), RfbError> {
        let [xh, xl] = x.to_be_bytes();
        let [yh, yl] = y.to_be_bytes();
        self.send(&[5, mask, xh, xl, yh, yl]).await
    }

    /// Several events in one write (a click, a typed string).
    pub async fn batch(&self, events: &[Event]) -> Result<(), RfbError> {
        let mut bytes = Vec::with_capacity(events.len() * 8);
        for e in events {
            match *e {
                Event::Pointer { mask, x, y } => {
                    bytes.extend_from_slice(&[5, mask]);
                    bytes.extend_from_slice(&x.to_be_bytes());
                    bytes.extend_from_slice(&y.to_be_bytes());
                }
                Event::Key { keysym, down } => {
                    bytes.extend_from_slice(&[4, down as u8, 0, 0]);
                    bytes.extend_from_slice(&keysym.to_be_bytes());
                }
            }
        }
        self.send(&bytes).await
    }

    /// Waits until no update has changed the screen for `quiet` (counting
    /// from the call, so a change an action is about to cause is not
    /// missed), or until `max`. Driven by update events, not polling.
    pub async fn wait_until_settled(
        &self,
        quiet: Duration,
        max: Duration,
    ) -> Result<bool, RfbError> {
        let started = Instant::now();
        let deadline = started + max;
        let mut rx = self.updates.clone();
        loop {
            let state = *rx.borrow_and_update();
            if !state.alive {
                return Err(RfbError::Closed);
            }
            let quiet_since = state.last_change.max(started);
            let now = Instant::now();
            if now.duration_since(quiet_since) >= quiet {
                return Ok(true);
            }
            if now >= deadline {
                return Ok(false);
            }
            let wake = (quiet_since + quiet).min(deadline);
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(RfbError::Closed) },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Event {
    Pointer { mask: u8, x: u16, y: u16 },
    Key { keysym: u32, down: bool },
}

fn update_request(incremental: bool, width: u16, height: u16) -> [u8; 10] {
    let [wh, wl] = width.to_be_bytes();
    let [hh, hl] = height.to_be_bytes();
    [3, incremental as u8, 0, 0, 0, 0, wh, wl, hh, hl]
}

async fn read_loop(
    read: OwnedReadHalf,
    framebuffer: Arc<Mutex<Framebuffer>>,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    tx: watch::Sender<UpdateState>,
) {
    let mut reader = BufReader::with_capacity(1 << 16, read);
    let result = async {
        let mut buf = Vec::new();
        loop {
            match reader.read_u8().await? {
                0 => {
                    let (changed, resized) =
                        read_update(&mut reader, &framebuffer, &mut buf).await?;
                    let (w, h) = {
                        let fb = framebuffer.lock().unwrap_or_else(|p| p.into_inner());
                        (fb.width, fb.height)
                    };
                    // Ask for the next update before anything else, so one is
                    // always outstanding.
                    writer
                        .lock()
                        .await
                        .write_all(&update_request(!resized, w, h))
                        .await?;
                    if changed {
                        tx.send_modify(|s| {
                            s.generation += 1;
                            s.last_change = Instant::now();
                        });
                    }
                }
                1 => {
                    let mut head = [0u8; 5];
                    reader.read_exact(&mut head).await?;
                    let n = u16::from_be_bytes([head[3], head[4]]) as usize;
                    let mut skip = vec![0u8; n * 6];
                    reader.read_exact(&mut skip).await?;
                }
                2 => {} // bell
                3 => {
                    let mut pad = [0u8; 3];
                    reader.read_exact(&mut pad).await?;
                    let len = reader.read_u32().await?;
                    if len > MAX_CUT_TEXT {
                        return Err(protocol(format!("clipboard text of {len} bytes")));
                    }
                    let mut text = vec![0u8; len as usize];
                    reader.read_exact(&mut text).await?;
                }
                other => return Err(protocol(format!("unexpected server message type {other}"))),
            }
        }
    }
    .await;
    let reason: Result<(), RfbError> = result;
    if let Err(e) = reason {
        tracing::debug!(error = %e, "VNC connection ended");
    }
    tx.send_modify(|s| s.alive = false);
}

/// Applies one FramebufferUpdate; returns (pixels changed, desktop resized).
async fn read_update(
    reader: &mut BufReader<OwnedReadHalf>,
    framebuffer: &Mutex<Framebuffer>,
    buf: &mut Vec<u8>,
) -> Result<(bool, bool), RfbError> {
    reader.read_u8().await?; // padding
    let rects = reader.read_u16().await?;
    let (mut changed, mut resized) = (false, false);
    for _ in 0..rects {
        let x = reader.read_u16().await?;
        let y = reader.read_u16().await?;
        let w = reader.read_u16().await?;
        let h = reader.read_u16().await?;
        let encoding = reader.read_i32().await?;
        match encoding {
            ENC_RAW => {
                buf.resize(w as usize * h as usize * 4, 0);
                reader.read_exact(buf).await?;
                let mut fb = framebuffer.lock().unwrap_or_else(|p| p.into_inner());
                if !fb.contains(x, y, w, h) {
                    return Err(protocol(format!(
                        "raw rectangle {w}x{h}+{x}+{y} outside the desktop"
                    )));
                }
                fb.put_raw(x, y, w, h, buf);
                changed |= w > 0 && h > 0;
            }
            ENC_COPY_RECT => {
                let sx = reader.read_u16().await?;
                let sy = reader.read_u16().await?;
                let mut fb = framebuffer.lock().unwrap_or_else(|p| p.into_inner());
                if !fb.contains(x, y, w, h) || !fb.contains(sx, sy, w, h) {
                    return Err(protocol("copy rectangle outside the desktop"));
                }
                fb.copy_rect(sx, sy, x, y, w, h);
                changed |= w > 0 && h > 0;
            }
            ENC_DESKTOP_SIZE | ENC_EXTENDED_DESKTOP_SIZE => {
                if encoding == ENC_EXTENDED_DESKTOP_SIZE {
                    let screens = reader.read_u8().await?;
                    let mut skip = vec![0u8; 3 + screens as usize * 16];
                    reader.read_exact(&mut skip).await?;
                }
                if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
                    return Err(protocol(format!("implausible desktop size {w}x{h}")));
                }
                // Servers also send this in answer to every non-incremental
                // request; only a real change of size resets the mirror.
                let mut fb = framebuffer.lock().unwrap_or_else(|p| p.into_inner());
                if (fb.width, fb.height) != (w, h) {
                    *fb = Framebuffer::new(w, h);
                    changed = true;
                    resized = true;
                }
            }
            ENC_LAST_RECT => break,
            other => return Err(protocol(format!("unrequested encoding {other}"))),
        }
    }
    Ok((changed, resized))
}
