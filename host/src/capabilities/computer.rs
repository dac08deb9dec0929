//! `agenthost:plugin/computer`: checks, then the sandbox's computer backend.

use std::sync::Arc;
use std::time::Duration;

use super::host_state::no_sandbox;
use super::{ComputerBackend, HostState, Region};
use crate::plugins::bindings::current::computer::{
    ClickCount, Host, Modifiers, MouseButton, Point, ScrollDirection, Size,
};
use crate::plugins::bindings::current::types::{HostError, Image};
use crate::plugins::Capability;

/// Longest a plugin may hold a key or wait in one call.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Largest scaled output a region screenshot may ask for.
const MAX_OUTPUT_PIXELS: u64 = 4096 * 4096;

impl HostState {
    fn computer(&self) -> Result<Arc<dyn ComputerBackend>, HostError> {
        self.authorize(Capability::Computer)?;
        self.ctx
            .sandbox
            .as_ref()
            .map(|s| s.computer.clone())
            .ok_or_else(|| no_sandbox(self.plugin()))
    }

    fn image(&self, encoded: super::EncodedImage) -> Image {
        let (width, height, media_type) = (
            encoded.width,
            encoded.height,
            encoded.media_type.to_string(),
        );
        Image {
            handle: self.ctx.images.put(encoded),
            width,
            height,
            media_type,
        }
    }
}

fn bounded(ms: u32, what: &str) -> Result<Duration, HostError> {
    let d = Duration::from_millis(ms as u64);
    if d > MAX_WAIT {
        return Err(HostError::Invalid(format!(
            "{what} of {ms} ms is over the limit of {} ms",
            MAX_WAIT.as_millis()
        )));
    }
    Ok(d)
}

impl Host for HostState {
    async fn screen_size(&mut self) -> Result<Size, HostError> {
        let c = self.computer()?;
        let (width, height) = self.timed("screen-size", c.screen_size()).await?;
        Ok(Size { width, height })
    }

    async fn screenshot(&mut self) -> Result<Image, HostError> {
        let c = self.computer()?;
        let encoded = self.timed("screenshot", c.screenshot(None)).await?;
        Ok(self.image(encoded))
    }

    async fn screenshot_region(
        &mut self,
        top_left: Point,
        region: Size,
        output: Size,
    ) -> Result<Image, HostError> {
        let c = self.computer()?;
        if region.width == 0 || region.height == 0 || output.width == 0 || output.height == 0 {
            return Err(HostError::Invalid(
                "region and output sizes must be non-zero".into(),
            ));
        }
        if output.width as u64 * output.height as u64 > MAX_OUTPUT_PIXELS {
            return Err(HostError::Invalid(format!(
                "output {}x{} is larger than 4096x4096",
                output.width, output.height
            )));
        }
        let region = Region {
            x: top_left.x,
            y: top_left.y,
            width: region.width,
            height: region.height,
            output_width: output.width,
            output_height: output.height,
        };
        let encoded = self
            .timed("screenshot-region", c.screenshot(Some(region)))
            .await?;
        Ok(self.image(encoded))
    }

    async fn cursor_position(&mut self) -> Result<Point, HostError> {
        let c = self.computer()?;
        self.timed("cursor-position", c.cursor_position()).await
    }

    async fn mouse_move(&mut self, to: Point) -> Result<(), HostError> {
        let c = self.computer()?;
        self.timed("mouse-move", c.mouse_move(to)).await
    }

    async fn mouse_down(&mut self, button: MouseButton) -> Result<(), HostError> {
        let c = self.computer()?;
        self.timed("mouse-down", c.mouse_button(button, true)).await
    }

    async fn mouse_up(&mut self, button: MouseButton) -> Result<(), HostError> {
        let c = self.computer()?;
        self.timed("mouse-up", c.mouse_button(button, false)).await
    }

    async fn click(
        &mut self,
        at: Point,
        button: MouseButton,
        count: ClickCount,
        modifiers: Modifiers,
    ) -> Result<(), HostError> {
        let c = self.computer()?;
        self.timed("click", c.click(at, button, count, modifiers))
            .await
    }

    async fn drag(
        &mut self,
        start: Point,
        end: Point,
        button: MouseButton,
    ) -> Result<(), HostError> {
        let c = self.computer()?;
        self.timed("drag", c.drag(start, end, button)).await
    }

    async fn scroll(
        &mut self,
        at: Point,
        direction: ScrollDirection,
        amount: u32,
        modifiers: Modifiers,
    ) -> Result<(), HostError> {
        let c = self.computer()?;
        if amount > 100 {
            return Err(HostError::Invalid(format!(
                "scroll amount {amount} is over the limit of 100"
            )));
        }
        self.timed("scroll", c.scroll(at, direction, amount, modifiers))
            .await
    }

    async fn key(&mut self, combo: String) -> Result<(), HostError> {
        let c = self.computer()?;
        self.timed("key", c.key(&combo)).await
    }

    async fn hold_key(&mut self, combo: String, duration_ms: u32) -> Result<(), HostError> {
        let c = self.computer()?;
        let d = bounded(duration_ms, "hold-key")?;
        self.timed("hold-key", c.hold_key(&combo, d)).await
    }

    async fn type_text(&mut self, text: String) -> Result<(), HostError> {
        let c = self.computer()?;
        if text.is_empty() {
            return Err(HostError::Invalid("nothing to type: text is empty".into()));
        }
        if text.len() > 64 << 10 {
            return Err(HostError::Invalid(format!(
                "{} bytes of text is over the 64 KiB limit",
                text.len()
            )));
        }
        self.timed("type-text", c.type_text(&text)).await
    }

    async fn wait_until_settled(&mut self, quiet_ms: u32, max_ms: u32) -> Result<bool, HostError> {
        let c = self.computer()?;
        let (quiet, max) = (bounded(quiet_ms, "quiet window")?, bounded(max_ms, "wait")?);
        self.timed("wait-until-settled", c.wait_until_settled(quiet, max))
            .await
    }

    async fn wait(&mut self, duration_ms: u32) -> Result<(), HostError> {
        self.authorize(Capability::Computer)?;
        let d = bounded(duration_ms, "wait")?;
        self.timed("wait", async {
            tokio::time::sleep(d).await;
            Ok(())
        })
        .await
    }
}
