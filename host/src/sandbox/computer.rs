//! The `computer` interface on a sandbox: input through our RFB client,
//! screenshots encoded from its mirrored framebuffer. Reconnects when the
//! VNC connection dropped but the sandbox lives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::Activity;
use crate::capabilities::{ComputerBackend, EncodedImage, Region};
use crate::plugins::bindings::current::computer::{
    ClickCount, Modifiers, MouseButton, Point, ScrollDirection,
};
use crate::plugins::bindings::current::types::HostError;
use crate::rfb::{buttons, encode_png, parse_combo, scale_region, Event, RfbClient, RfbError, Rgb};

/// Chunk size for typing, so one huge string is not one huge write.
const TYPE_CHUNK: usize = 256;
const DRAG_STEPS: i32 = 8;
const DRAG_STEP_INTERVAL: Duration = Duration::from_millis(15);
/// The pause after a drag's first step, before the rest. A window manager
/// starts a move on the first motion past its threshold, measured from
/// where the pointer is when it handles that motion. With every step 15 ms
/// apart, a test run on a busy machine once saw the title-bar drag move the
/// window nowhere: openbox handled the motions only once all of them had
/// arrived. The pause lets the move start near where the drag did.
const DRAG_START_PAUSE: Duration = Duration::from_millis(150);
/// A dropped display connection is reconnected at most this often...
const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// ...and after this many reconnects within [`RECONNECT_WINDOW`] the
/// sandbox is declared failed: its display keeps misbehaving (crashing,
/// or something inside the sandbox answering on its port).
const MAX_RECONNECTS: usize = 5;
const RECONNECT_WINDOW: Duration = Duration::from_secs(60);

/// Recent reconnects, and the verdict once they were too many.
#[derive(Default)]
struct Reconnects {
    recent: std::collections::VecDeque<std::time::Instant>,
    failed: Option<String>,
}

pub struct RfbComputer {
    client: tokio::sync::RwLock<Arc<RfbClient>>,
    addr: SocketAddr,
    password: String,
    /// Pointer position and pressed buttons, as we last set them.
    pointer: Mutex<(Point, u8)>,
    activity: Arc<Activity>,
    reconnects: Mutex<Reconnects>,
}

fn rfb_error(e: RfbError) -> HostError {
    HostError::Failed(format!("the sandbox's display is not reachable: {e}"))
}

fn mask(button: MouseButton) -> u8 {
    match button {
        MouseButton::Left => buttons::LEFT,
        MouseButton::Middle => buttons::MIDDLE,
        MouseButton::Right => buttons::RIGHT,
    }
}

impl RfbComputer {
    pub fn new(
        client: RfbClient,
        addr: SocketAddr,
        password: String,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            activity,
            client: tokio::sync::RwLock::new(Arc::new(client)),
            addr,
            password,
            pointer: Mutex::new((Point { x: 0, y: 0 }, 0)),
            reconnects: Mutex::default(),
        }
    }

    /// False once the connection dropped, or the sandbox was declared
    /// failed; the session then replaces the sandbox.
    pub fn is_alive(&self) -> bool {
        self.failure().is_none() && self.client.try_read().map(|c| c.is_alive()).unwrap_or(true)
    }

    /// Why the display was declared failed, if it was.
    pub fn failure(&self) -> Option<String> {
        self.reconnects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .clone()
    }

    /// Counts a reconnect attempt; refuses it if the last was too recent
    /// or there were too many (which also declares the sandbox failed).
    fn allow_reconnect(&self) -> Result<(), HostError> {
        let mut r = self.reconnects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(failed) = &r.failed {
            return Err(HostError::Failed(failed.clone()));
        }
        let now = std::time::Instant::now();
        while r
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RECONNECT_WINDOW)
        {
            r.recent.pop_front();
        }
        if r.recent.len() >= MAX_RECONNECTS {
            let failed = format!(
                "the sandbox's display dropped {MAX_RECONNECTS} times within {RECONNECT_WINDOW:?}; \
                 the sandbox is declared failed"
            );
            tracing::warn!(addr = %self.addr, "{failed}");
            r.failed = Some(failed.clone());
            return Err(HostError::Failed(failed));
        }
        if r.recent
            .back()
            .is_some_and(|t| now.duration_since(*t) < RECONNECT_INTERVAL)
        {
            return Err(HostError::Failed(
                "the sandbox's display dropped again just after a reconnect; try again shortly"
                    .into(),
            ));
        }
        r.recent.push_back(now);
        Ok(())
    }

    /// The connection as it is, for watching the screen (a recording):
    /// no reconnect, and not counted as use of the sandbox.
    pub async fn mirror(&self) -> Arc<RfbClient> {
        self.client.read().await.clone()
    }

    /// The live connection, reconnecting once if it dropped.
    pub async fn client(&self) -> Result<Arc<RfbClient>, HostError> {
        if let Some(stopped) = self.activity.stopped_error() {
            return Err(HostError::Failed(stopped));
        }
        self.activity.touch();
        let current = self.client.read().await.clone();
        if current.is_alive() {
            return Ok(current);
        }
        let mut slot = self.client.write().await;
        if slot.is_alive() {
            return Ok(slot.clone());
        }
        self.allow_reconnect()?;
        let fresh = RfbClient::connect(self.addr, Some(&self.password), Duration::from_secs(5))
            .await
            .map_err(rfb_error)?;
        fresh
            .first_frame(Duration::from_secs(5))
            .await
            .map_err(rfb_error)?;
        tracing::info!(addr = %self.addr, "reconnected to the sandbox display");
        *slot = Arc::new(fresh);
        Ok(slot.clone())
    }

    fn on_screen(client: &RfbClient, p: Point) -> Result<(u16, u16), HostError> {
        let (w, h) = client.size();
        if p.x < 0 || p.y < 0 || p.x >= w as i32 || p.y >= h as i32 {
            return Err(HostError::Invalid(format!(
                "({}, {}) is off screen: the screen is {w}x{h}",
                p.x, p.y
            )));
        }
        Ok((p.x as u16, p.y as u16))
    }

    fn pointer(&self) -> (Point, u8) {
        *self.pointer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_pointer(&self, at: Point, pressed: u8) {
        *self.pointer.lock().unwrap_or_else(|p| p.into_inner()) = (at, pressed);
    }

    fn keys(combo: &str) -> Result<Vec<u32>, HostError> {
        parse_combo(combo).map_err(|e| HostError::Invalid(e.to_string()))
    }

    /// Presses (in the order shift, ctrl, alt, super) or releases (in
    /// reverse) the held modifiers.
    fn modifier_events(modifiers: Modifiers, down: bool) -> Vec<Event> {
        use xkeysym::key;
        let mut keysyms: Vec<u32> = [
            (Modifiers::SHIFT, key::Shift_L),
            (Modifiers::CTRL, key::Control_L),
            (Modifiers::ALT, key::Alt_L),
            (Modifiers::SUPER, key::Super_L),
        ]
        .into_iter()
        .filter(|(flag, _)| modifiers.contains(*flag))
        .map(|(_, keysym)| keysym)
        .collect();
        if !down {
            keysyms.reverse();
        }
        keysyms
            .into_iter()
            .map(|keysym| Event::Key { keysym, down })
            .collect()
    }
}

#[async_trait]
impl ComputerBackend for RfbComputer {
    async fn screen_size(&self) -> Result<(u32, u32), HostError> {
        let (w, h) = self.client().await?.size();
        Ok((w as u32, h as u32))
    }

    async fn screenshot(&self, region: Option<Region>) -> Result<EncodedImage, HostError> {
        let client = self.client().await?;
        let image = client.with_framebuffer(|fb| match region {
            None => Ok(Rgb::from_framebuffer(fb)),
            Some(r) => {
                let inside = r.x >= 0
                    && r.y >= 0
                    && r.x as u32 + r.width <= fb.width as u32
                    && r.y as u32 + r.height <= fb.height as u32;
                if !inside {
                    return Err(HostError::Invalid(format!(
                        "region {}x{} at ({}, {}) is not inside the {}x{} screen",
                        r.width, r.height, r.x, r.y, fb.width, fb.height
                    )));
                }
                Ok(scale_region(
                    fb,
                    (r.x as u32, r.y as u32, r.width, r.height),
                    r.output_width,
                    r.output_height,
                ))
            }
        })?;
        let bytes = encode_png(&image)
            .map_err(|e| HostError::Failed(format!("PNG encoding failed: {e}")))?;
        Ok(EncodedImage {
            bytes,
            width: image.width,
            height: image.height,
            media_type: "image/png",
        })
    }

    async fn cursor_position(&self) -> Result<Point, HostError> {
        Ok(self.pointer().0)
    }

    async fn mouse_move(&self, to: Point) -> Result<(), HostError> {
        let client = self.client().await?;
        let (x, y) = Self::on_screen(&client, to)?;
        let pressed = self.pointer().1;
        client.pointer(pressed, x, y).await.map_err(rfb_error)?;
        self.set_pointer(to, pressed);
        Ok(())
    }

    async fn mouse_button(&self, button: MouseButton, down: bool) -> Result<(), HostError> {
        let client = self.client().await?;
        let (at, pressed) = self.pointer();
        let (x, y) = Self::on_screen(&client, at)?;
        let pressed = if down {
            pressed | mask(button)
        } else {
            pressed & !mask(button)
        };
        client.pointer(pressed, x, y).await.map_err(rfb_error)?;
        self.set_pointer(at, pressed);
        Ok(())
    }

    async fn click(
        &self,
        at: Point,
        button: MouseButton,
        count: ClickCount,
        modifiers: Modifiers,
    ) -> Result<(), HostError> {
        let client = self.client().await?;
        let (x, y) = Self::on_screen(&client, at)?;
        let mut events = vec![Event::Pointer { mask: 0, x, y }];
        events.extend(Self::modifier_events(modifiers, true));
        let count = match count {
            ClickCount::Single => 1,
            ClickCount::Double => 2,
            ClickCount::Triple => 3,
        };
        for _ in 0..count {
            events.push(Event::Pointer {
                mask: mask(button),
                x,
                y,
            });
            events.push(Event::Pointer { mask: 0, x, y });
        }
        events.extend(Self::modifier_events(modifiers, false));
        client.batch(&events).await.map_err(rfb_error)?;
        self.set_pointer(at, 0);
        Ok(())
    }

    async fn drag(&self, start: Point, end: Point, button: MouseButton) -> Result<(), HostError> {
        let client = self.client().await?;
        let (sx, sy) = Self::on_screen(&client, start)?;
        let (ex, ey) = Self::on_screen(&client, end)?;
        let m = mask(button);
        client
            .batch(&[
                Event::Pointer {
                    mask: 0,
                    x: sx,
                    y: sy,
                },
                Event::Pointer {
                    mask: m,
                    x: sx,
                    y: sy,
                },
            ])
            .await
            .map_err(rfb_error)?;
        // A drag is a movement over time: window managers and toolkits
        // grab the pointer on press and ignore motion that arrives before
        // the grab, so the steps are paced as a hand would move, with a
        // pause after the first (DRAG_START_PAUSE says why).
        for i in 1..=DRAG_STEPS {
            let pause = if i == 2 {
                DRAG_START_PAUSE
            } else {
                DRAG_STEP_INTERVAL
            };
            tokio::time::sleep(pause).await;
            let x = start.x + (end.x - start.x) * i / DRAG_STEPS;
            let y = start.y + (end.y - start.y) * i / DRAG_STEPS;
            client
                .pointer(m, x as u16, y as u16)
                .await
                .map_err(rfb_error)?;
        }
        tokio::time::sleep(DRAG_STEP_INTERVAL).await;
        client.pointer(0, ex, ey).await.map_err(rfb_error)?;
        self.set_pointer(end, 0);
        Ok(())
    }

    async fn scroll(
        &self,
        at: Point,
        direction: ScrollDirection,
        amount: u32,
        modifiers: Modifiers,
    ) -> Result<(), HostError> {
        let client = self.client().await?;
        let (x, y) = Self::on_screen(&client, at)?;
        let wheel = match direction {
            ScrollDirection::Up => buttons::WHEEL_UP,
            ScrollDirection::Down => buttons::WHEEL_DOWN,
            ScrollDirection::Left => buttons::WHEEL_LEFT,
            ScrollDirection::Right => buttons::WHEEL_RIGHT,
        };
        let mut events = vec![Event::Pointer { mask: 0, x, y }];
        events.extend(Self::modifier_events(modifiers, true));
        for _ in 0..amount {
            events.push(Event::Pointer { mask: wheel, x, y });
            events.push(Event::Pointer { mask: 0, x, y });
        }
        events.extend(Self::modifier_events(modifiers, false));
        client.batch(&events).await.map_err(rfb_error)?;
        self.set_pointer(at, 0);
        Ok(())
    }

    async fn key(&self, combo: &str) -> Result<(), HostError> {
        let keysyms = Self::keys(combo)?;
        let client = self.client().await?;
        let mut events: Vec<Event> = keysyms
            .iter()
            .map(|&keysym| Event::Key { keysym, down: true })
            .collect();
        events.extend(keysyms.iter().rev().map(|&keysym| Event::Key {
            keysym,
            down: false,
        }));
        client.batch(&events).await.map_err(rfb_error)
    }

    async fn hold_key(&self, combo: &str, duration: Duration) -> Result<(), HostError> {
        let keysyms = Self::keys(combo)?;
        let client = self.client().await?;
        let down: Vec<Event> = keysyms
            .iter()
            .map(|&keysym| Event::Key { keysym, down: true })
            .collect();
        client.batch(&down).await.map_err(rfb_error)?;
        // The caller asked for the key to be held this long.
        tokio::time::sleep(duration).await;
        let up: Vec<Event> = keysyms
            .iter()
            .rev()
            .map(|&keysym| Event::Key {
                keysym,
                down: false,
            })
            .collect();
        client.batch(&up).await.map_err(rfb_error)
    }

    /// Xvnc maps any keysym, adding it to a spare keycode when the keyboard
    /// map lacks it, so every character (accents, CJK, emoji) is typed as a
    /// keysym; no clipboard round trip is needed.
    async fn type_text(&self, text: &str) -> Result<(), HostError> {
        let client = self.client().await?;
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(TYPE_CHUNK) {
            let events: Vec<Event> = chunk
                .iter()
                .flat_map(|&c| {
                    let keysym = crate::rfb::keysym_for_char(c);
                    [
                        Event::Key { keysym, down: true },
                        Event::Key {
                            keysym,
                            down: false,
                        },
                    ]
                })
                .collect();
            client.batch(&events).await.map_err(rfb_error)?;
        }
        Ok(())
    }

    async fn wait_until_settled(&self, quiet: Duration, max: Duration) -> Result<bool, HostError> {
        self.client()
            .await?
            .wait_until_settled(quiet, max)
            .await
            .map_err(rfb_error)
    }
}
