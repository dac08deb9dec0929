//! The connection: handshake, a reader task that applies updates to the
//! mirrored framebuffer and immediately asks for the next incremental
//! update, and input events written from any task.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
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
/// Larger than any desktop we run; a bigger size means a broken (or
/// hostile) stream. It also bounds the mirror: 4096x4096x4 is 64 MiB.
const MAX_DIMENSION: u16 = 4096;
/// Clipboard text from the desktop is read and dropped; more than this is
/// a broken stream.
const MAX_CUT_TEXT: u32 = 1 << 20;
/// Raw pixels are read in pieces of at most this many bytes, so a
/// rectangle never needs a buffer of its own size.
const READ_CHUNK: usize = 256 << 10;
/// An update may carry at most this many times the framebuffer's bytes
/// (overlapping rectangles are legal, endless ones are not).
const UPDATE_BUDGET_SCREENS: usize = 4;
/// Once an update has begun, the rest of it must arrive within this time:
/// a server that drips bytes is a broken server.
const UPDATE_DEADLINE: Duration = Duration::from_secs(10);
/// Colour-map entries in one SetColourMapEntries message (the field is u16).
const MAX_COLOUR_ENTRIES: usize = 1 << 16;

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
    let chosen = choose_security(&types, password.is_some())?;
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
    if name_len > 4096 {
        return Err(protocol(format!("a desktop name of {name_len} bytes")));
    }
    let mut name = vec![0u8; name_len as usize];
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

/// Which security type to answer with. Holding a password means the
/// desktop must prove it knows it too: a server that offers only None is
/// not our desktop (something inside the sandbox took its port).
fn choose_security(offered: &[u8], have_password: bool) -> Result<u8, RfbError> {
    match (have_password, offered.contains(&2), offered.contains(&1)) {
        (true, true, _) => Ok(2),
        (true, false, _) => Err(RfbError::Auth(format!(
            "the server does not offer VNC authentication (offered {offered:?}); \
             refusing to connect without it"
        ))),
        (false, _, true) => Ok(1),
        (false, _, false) => Err(RfbError::Auth(format!(
            "no supported security type among {offered:?}"
        ))),
    }
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

    /// Counts updates that changed pixels: equal counts, same picture.
    pub fn generation(&self) -> u64 {
        self.updates.borrow().generation
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
        loop {
            match read_server_message(&mut reader, &framebuffer).await? {
                ServerMessage::Update { changed, resized } => {
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
                ServerMessage::Other => {}
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

/// What one server message did to the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMessage {
    Update {
        changed: bool,
        resized: bool,
    },
    /// Colour map, bell or clipboard: read and dropped.
    Other,
}

/// Reads one server-to-client message and applies it to `framebuffer`.
/// Everything from the server is hostile input: every length is checked
/// against the framebuffer before anything is allocated or read, and an
/// update must finish within [`UPDATE_DEADLINE`].
pub async fn read_server_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    framebuffer: &Mutex<Framebuffer>,
) -> Result<ServerMessage, RfbError> {
    match reader.read_u8().await? {
        0 => tokio::time::timeout(UPDATE_DEADLINE, read_update(reader, framebuffer))
            .await
            .map_err(|_| {
                protocol(format!(
                    "a framebuffer update did not complete within {UPDATE_DEADLINE:?}"
                ))
            })?
            .map(|(changed, resized)| ServerMessage::Update { changed, resized }),
        1 => {
            let mut head = [0u8; 5];
            reader.read_exact(&mut head).await?;
            let n = u16::from_be_bytes([head[3], head[4]]) as usize;
            skip(reader, n.min(MAX_COLOUR_ENTRIES) * 6).await?;
            Ok(ServerMessage::Other)
        }
        2 => Ok(ServerMessage::Other), // bell
        3 => {
            let mut pad = [0u8; 3];
            reader.read_exact(&mut pad).await?;
            let len = reader.read_u32().await?;
            if len > MAX_CUT_TEXT {
                return Err(protocol(format!("clipboard text of {len} bytes")));
            }
            skip(reader, len as usize).await?;
            Ok(ServerMessage::Other)
        }
        other => Err(protocol(format!("unexpected server message type {other}"))),
    }
}

/// Reads and drops `n` bytes through a small buffer.
async fn skip<R: AsyncRead + Unpin>(reader: &mut R, mut n: usize) -> Result<(), RfbError> {
    let mut scratch = [0u8; 4096];
    while n > 0 {
        let take = n.min(scratch.len());
        reader.read_exact(&mut scratch[..take]).await?;
        n -= take;
    }
    Ok(())
}

/// Applies one FramebufferUpdate; returns (pixels changed, desktop resized).
async fn read_update<R: AsyncRead + Unpin>(
    reader: &mut R,
    framebuffer: &Mutex<Framebuffer>,
) -> Result<(bool, bool), RfbError> {
    let lock = || framebuffer.lock().unwrap_or_else(|p| p.into_inner());
    reader.read_u8().await?; // padding
    let rects = reader.read_u16().await?;
    let (mut changed, mut resized) = (false, false);
    let mut budget = lock().pixels.len() * UPDATE_BUDGET_SCREENS;
    let mut chunk = Vec::new();
    for _ in 0..rects {
        let x = reader.read_u16().await?;
        let y = reader.read_u16().await?;
        let w = reader.read_u16().await?;
        let h = reader.read_u16().await?;
        let encoding = reader.read_i32().await?;
        match encoding {
            ENC_RAW => {
                if !lock().contains(x, y, w, h) {
                    return Err(protocol(format!(
                        "raw rectangle {w}x{h}+{x}+{y} outside the desktop"
                    )));
                }
                let row = w as usize * 4;
                let total = row * h as usize;
                budget = budget.checked_sub(total).ok_or_else(|| {
                    protocol("a framebuffer update carries more pixels than the desktop allows")
                })?;
                if row == 0 || h == 0 {
                    continue;
                }
                // Whole rows at a time, at most READ_CHUNK bytes (or one row).
                let rows_per_chunk = (READ_CHUNK / row).max(1);
                let mut done = 0u16;
                while done < h {
                    // In usize: a narrow rectangle allows more rows per
                    // chunk than a u16 holds.
                    let rows = usize::from(h - done).min(rows_per_chunk) as u16;
                    chunk.resize(rows as usize * row, 0);
                    reader.read_exact(&mut chunk).await?;
                    lock().put_raw(x, y + done, w, rows, &chunk);
                    done += rows;
                }
                changed = true;
            }
            ENC_COPY_RECT => {
                let sx = reader.read_u16().await?;
                let sy = reader.read_u16().await?;
                let mut fb = lock();
                if !fb.contains(x, y, w, h) || !fb.contains(sx, sy, w, h) {
                    return Err(protocol("copy rectangle outside the desktop"));
                }
                fb.copy_rect(sx, sy, x, y, w, h);
                changed |= w > 0 && h > 0;
            }
            ENC_DESKTOP_SIZE | ENC_EXTENDED_DESKTOP_SIZE => {
                if encoding == ENC_EXTENDED_DESKTOP_SIZE {
                    let screens = reader.read_u8().await?;
                    skip(reader, 3 + screens as usize * 16).await?;
                }
                if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
                    return Err(protocol(format!("implausible desktop size {w}x{h}")));
                }
                // Servers also send this in answer to every non-incremental
                // request; only a real change of size resets the mirror.
                let mut fb = lock();
                if (fb.width, fb.height) != (w, h) {
                    *fb = Framebuffer::new(w, h);
                    budget = fb.pixels.len() * UPDATE_BUDGET_SCREENS;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_holder_never_accepts_none() {
        assert_eq!(choose_security(&[1, 2], true).unwrap(), 2);
        assert!(matches!(
            choose_security(&[1], true),
            Err(RfbError::Auth(_))
        ));
        assert_eq!(choose_security(&[1], false).unwrap(), 1);
        assert!(choose_security(&[2], false).is_err());
    }

    fn update(rects: &[(u16, u16, u16, u16, i32)], pixels: usize) -> Vec<u8> {
        let mut out = vec![0u8, 0];
        out.extend_from_slice(&(rects.len() as u16).to_be_bytes());
        for &(x, y, w, h, enc) in rects {
            for v in [x, y, w, h] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&enc.to_be_bytes());
        }
        out.resize(out.len() + pixels, 7);
        out
    }

    #[tokio::test]
    async fn a_giant_rectangle_is_refused_before_anything_is_read() {
        let fb = Mutex::new(Framebuffer::new(64, 48));
        let bytes = update(&[(0, 0, 65535, 65535, ENC_RAW)], 0);
        let err = read_server_message(&mut bytes.as_slice(), &fb)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("outside the desktop"), "{err}");
    }

    #[tokio::test]
    async fn raw_rectangles_land_in_the_mirror() {
        let fb = Mutex::new(Framebuffer::new(64, 48));
        let bytes = update(&[(2, 3, 4, 5, ENC_RAW)], 4 * 5 * 4);
        let msg = read_server_message(&mut bytes.as_slice(), &fb)
            .await
            .unwrap();
        assert_eq!(
            msg,
            ServerMessage::Update {
                changed: true,
                resized: false
            }
        );
        let fb = fb.lock().unwrap();
        assert_eq!(fb.rgb(2, 3), [7, 7, 7]);
        assert_eq!(fb.rgb(6, 3), [0, 0, 0]);
    }

    #[tokio::test]
    async fn a_one_pixel_wide_rectangle_is_read_in_full() {
        // 1 px wide: 65536 rows would fit a chunk, more than a u16 counts.
        let fb = Mutex::new(Framebuffer::new(16, 300));
        let bytes = update(&[(3, 0, 1, 300, ENC_RAW)], 300 * 4);
        let msg = read_server_message(&mut bytes.as_slice(), &fb)
            .await
            .unwrap();
        assert!(matches!(msg, ServerMessage::Update { changed: true, .. }));
        assert_eq!(fb.lock().unwrap().rgb(3, 299), [7, 7, 7]);
    }

    #[tokio::test]
    async fn an_update_larger_than_its_budget_is_refused() {
        let fb = Mutex::new(Framebuffer::new(16, 16));
        // Each full-screen rectangle with its pixels, one more than allowed.
        let mut bytes = update(&[], 0);
        bytes[3] = UPDATE_BUDGET_SCREENS as u8 + 1;
        for _ in 0..=UPDATE_BUDGET_SCREENS {
            let rect = update(&[(0, 0, 16, 16, ENC_RAW)], 16 * 16 * 4);
            bytes.extend_from_slice(&rect[4..]);
        }
        let err = read_server_message(&mut bytes.as_slice(), &fb)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more pixels"), "{err}");
    }

    #[tokio::test]
    async fn a_huge_desktop_size_is_refused() {
        let fb = Mutex::new(Framebuffer::new(16, 16));
        let bytes = update(&[(0, 0, 60000, 60000, ENC_DESKTOP_SIZE)], 0);
        assert!(read_server_message(&mut bytes.as_slice(), &fb)
            .await
            .is_err());
        assert_eq!(fb.lock().unwrap().pixels.len(), 16 * 16 * 4);
    }

    #[tokio::test]
    async fn oversized_clipboard_text_is_refused() {
        let mut bytes = vec![3u8, 0, 0, 0];
        bytes.extend_from_slice(&(MAX_CUT_TEXT + 1).to_be_bytes());
        let fb = Mutex::new(Framebuffer::new(16, 16));
        assert!(read_server_message(&mut bytes.as_slice(), &fb)
            .await
            .is_err());
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Reads messages until the stream ends or is refused; the mirror
    /// keeps its bounds throughout.
    fn read_all(bytes: &[u8], fb: &Mutex<Framebuffer>) {
        block_on(async {
            let mut reader = bytes;
            while read_server_message(&mut reader, fb).await.is_ok() {}
        });
        let fb = fb.lock().unwrap();
        assert!(fb.width <= MAX_DIMENSION && fb.height <= MAX_DIMENSION);
        assert_eq!(fb.pixels.len(), fb.width as usize * fb.height as usize * 4);
    }

    proptest::proptest! {
        #[test]
        fn random_streams_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..8192)) {
            read_all(&bytes, &Mutex::new(Framebuffer::new(32, 24)));
        }

        /// Well-formed headers with hostile values: any position, size and
        /// encoding, and fewer (or more) pixels than announced.
        #[test]
        fn adversarial_updates_are_bounded(
            rects in proptest::collection::vec(
                (proptest::num::u16::ANY, proptest::num::u16::ANY, 0u16..64, 0u16..64,
                 proptest::sample::select(vec![ENC_RAW, ENC_COPY_RECT, ENC_DESKTOP_SIZE, ENC_LAST_RECT, 5])),
                0..8),
            pixels in 0usize..20_000,
        ) {
            let rects: Vec<_> = rects.into_iter().map(|(x, y, w, h, e)| (x % 40, y % 30, w, h, e)).collect();
            read_all(&update(&rects, pixels), &Mutex::new(Framebuffer::new(32, 24)));
        }
    }
}
