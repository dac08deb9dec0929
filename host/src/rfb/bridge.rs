//! The browser's view of a sandbox desktop: RFB over a WebSocket, through
//! the host.
//!
//! The host authenticates to the sandbox's VNC server itself (the password
//! never leaves the host) and speaks RFB to the browser with security type
//! None, behind the API's own authentication. After the handshake, server
//! messages pass through unchanged; client messages are parsed so that
//! input (keys, pointer, clipboard) is forwarded only while the person has
//! control, and anything unrecognised ends the connection.
//!
//! The browser is untrusted: a message may announce at most
//! [`MAX_CLIPBOARD`] bytes of clipboard (more closes the viewer, before
//! anything is buffered), resizing the desktop is never forwarded (the
//! host fixes the desktop's size), and a browser that stops reading is
//! disconnected after [`SEND_TIMEOUT`].

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ServerInit;

/// The most clipboard text a browser may send in one message.
pub const MAX_CLIPBOARD: usize = 1 << 20;
/// A browser that does not take a frame within this time is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the browser closed the connection")]
    BrowserClosed,
    #[error("the desktop closed the connection")]
    DesktopClosed,
    #[error("the browser sent an RFB message this bridge does not accept (type {0})")]
    Unsupported(u8),
    #[error("the browser's RFB handshake is invalid: {0}")]
    Handshake(String),
    #[error("the browser sent {0} bytes of clipboard; the limit is {MAX_CLIPBOARD}")]
    ClipboardTooLarge(usize),
    #[error("the browser did not read for {SEND_TIMEOUT:?}")]
    SendTimeout,
    #[error("desktop connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes from a message stream, read as a byte stream.
struct Incoming<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Stream<Item = Vec<u8>> + Unpin> Incoming<S> {
    async fn fill(&mut self) -> Result<(), BridgeError> {
        match self.stream.next().await {
            Some(bytes) => {
                self.buf.extend_from_slice(&bytes);
                Ok(())
            }
            None => Err(BridgeError::BrowserClosed),
        }
    }

    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, BridgeError> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }
}

/// Message types a browser client may send, and what the bridge does
/// with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Forwarded always (pixel format, encodings, update requests, fences).
    Other,
    /// Forwarded only while the person has control (keys, pointer, clipboard).
    Input,
    /// Never forwarded (SetDesktopSize: the host fixes the desktop's size).
    Dropped,
}

/// The length of the complete client message at the start of `buf`, if
/// it is all there.
fn message_len(buf: &[u8]) -> Result<Option<(usize, Kind)>, BridgeError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let at = |i: usize| buf.get(i).copied();
    let u16_at = |i: usize| Some(u16::from_be_bytes([at(i)?, at(i + 1)?]) as usize);
    let u32_at = |i: usize| {
        Some(u32::from_be_bytes([
            at(i)?,
            at(i + 1)?,
            at(i + 2)?,
            at(i + 3)?,
        ]))
    };
    let len = match kind {
        0 => Some((20, Kind::Other)),                     // SetPixelFormat
        2 => u16_at(2).map(|n| (4 + 4 * n, Kind::Other)), // SetEncodings
        3 => Some((10, Kind::Other)),                     // FramebufferUpdateRequest
        4 => Some((8, Kind::Input)),                      // KeyEvent
        5 => Some((6, Kind::Input)),                      // PointerEvent
        // ClientCutText; a negative length is the extended-clipboard form.
        // Its size is checked as soon as the header is in, before the text.
        6 => match u32_at(4).map(|n| (n as i32).unsigned_abs() as usize) {
            Some(n) if n > MAX_CLIPBOARD => return Err(BridgeError::ClipboardTooLarge(n)),
            n => n.map(|n| (8 + n, Kind::Input)),
        },
        150 => Some((10, Kind::Other)), // EnableContinuousUpdates
        248 => at(8).map(|n| (9 + n as usize, Kind::Other)), // ClientFence
        251 => at(6).map(|n| (8 + 16 * n as usize, Kind::Dropped)), // SetDesktopSize
        255 => Some((12, Kind::Input)), // QEMU extended key event
        other => return Err(BridgeError::Unsupported(other)),
    };
    Ok(len.filter(|(n, _)| buf.len() >= *n))
}

/// Sends one frame to the browser, giving up after [`SEND_TIMEOUT`].
async fn send_to<Out: Sink<Vec<u8>> + Unpin>(
    to_browser: &mut Out,
    bytes: Vec<u8>,
) -> Result<(), BridgeError> {
    match tokio::time::timeout(SEND_TIMEOUT, to_browser.send(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(BridgeError::BrowserClosed),
        Err(_) => Err(BridgeError::SendTimeout),
    }
}

/// Runs the bridge until either side closes. `input_allowed` is asked for
/// every input message; `on_input` is told of every input forwarded (the
/// person's use keeps the sandbox from being stopped as idle).
pub async fn run<In, Out>(
    from_browser: In,
    mut to_browser: Out,
    desktop: TcpStream,
    init: &ServerInit,
    input_allowed: impl Fn() -> bool,
    on_input: impl Fn(),
) -> Result<(), BridgeError>
where
    In: Stream<Item = Vec<u8>> + Unpin,
    Out: Sink<Vec<u8>> + Unpin,
{
    let mut incoming = Incoming {
        stream: from_browser,
        buf: Vec::new(),
    };
    // Handshake with the browser, as a server offering security type None.
    send_to(&mut to_browser, b"RFB 003.008\n".to_vec()).await?;
    let version = incoming.read_exact(12).await?;
    if !version.starts_with(b"RFB 003.") {
        return Err(BridgeError::Handshake("not an RFB client".into()));
    }
    send_to(&mut to_browser, vec![1, 1]).await?;
    if incoming.read_exact(1).await? != [1] {
        return Err(BridgeError::Handshake("security type must be None".into()));
    }
    send_to(&mut to_browser, vec![0, 0, 0, 0]).await?;
    incoming.read_exact(1).await?; // ClientInit (shared flag): always shared
    let mut server_init = Vec::with_capacity(24 + init.name.len());
    server_init.extend_from_slice(&init.width.to_be_bytes());
    server_init.extend_from_slice(&init.height.to_be_bytes());
    server_init.extend_from_slice(&init.pixel_format);
    server_init.extend_from_slice(&(init.name.len() as u32).to_be_bytes());
    server_init.extend_from_slice(&init.name);
    send_to(&mut to_browser, server_init).await?;

    let (mut desktop_read, mut desktop_write) = desktop.into_split();
    let downstream = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = desktop_read.read(&mut buf).await?;
            if n == 0 {
                return Err::<(), _>(BridgeError::DesktopClosed);
            }
            send_to(&mut to_browser, buf[..n].to_vec()).await?;
        }
    };
    let upstream = async {
        loop {
            while let Some((len, kind)) = message_len(&incoming.buf)? {
                let message: Vec<u8> = incoming.buf.drain(..len).collect();
                match kind {
                    Kind::Dropped => continue,
                    Kind::Input if !input_allowed() => continue,
                    Kind::Input => on_input(),
                    Kind::Other => {}
                }
                desktop_write.write_all(&message).await?;
            }
            incoming.fill().await?;
        }
    };
    tokio::select! {
        r = downstream => r,
        r = upstream => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_client_messages_and_marks_input() {
        assert!(message_len(&[5, 0, 0]).unwrap().is_none(), "incomplete");
        let (n, kind) = message_len(&[5, 1, 0, 10, 0, 20, 99]).unwrap().unwrap();
        assert_eq!(n, 6);
        assert!(matches!(kind, Kind::Input));
        let enc = [2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(message_len(&enc).unwrap().unwrap().0, 12);
        let cut = [6, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c'];
        assert_eq!(message_len(&cut).unwrap().unwrap().0, 11);
        assert!(matches!(
            message_len(&[77]),
            Err(BridgeError::Unsupported(77))
        ));
    }

    #[test]
    fn a_huge_clipboard_is_refused_from_its_header() {
        // 2 GiB announced; only the 8-byte header is there.
        let cut = [6, 0, 0, 0, 0x80, 0, 0, 0];
        assert!(matches!(
            message_len(&cut),
            Err(BridgeError::ClipboardTooLarge(_))
        ));
        let mut ok = vec![6, 0, 0, 0];
        ok.extend_from_slice(&(MAX_CLIPBOARD as u32).to_be_bytes());
        assert!(message_len(&ok).unwrap().is_none(), "waits for the text");
    }

    #[test]
    fn resizing_is_never_forwarded() {
        let resize = [
            251, 0, 4, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let (n, kind) = message_len(&resize).unwrap().unwrap();
        assert_eq!((n, kind), (24, Kind::Dropped));
    }

    proptest::proptest! {
        /// Any byte stream frames without panicking, every complete message
        /// is no longer than the buffer, and none is larger than the
        /// clipboard limit plus its header.
        #[test]
        fn framing_random_streams_is_bounded(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let mut buf = bytes.as_slice();
            while let Ok(Some((n, _))) = message_len(buf) {
                proptest::prop_assert!(n <= buf.len() && n > 0);
                proptest::prop_assert!(n <= 8 + MAX_CLIPBOARD);
                buf = &buf[n..];
            }
        }
    }
}
