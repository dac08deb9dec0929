//! The `computer` tool: Anthropic's computer-use action set on the sandbox desktop.
//!
//! The model may see the screen at a smaller resolution than the sandbox's
//! (large screens cost tokens and hurt accuracy), so coordinates are scaled
//! between the model's space and the screen's, as the reference demo does.
//! After every action the tool waits for the screen to settle instead of
//! sleeping a fixed time, then returns a fresh screenshot.

agenthost_sdk::tool_plugin!("../../wit/v0.2.0");

use agenthost_sdk::computer::{
    self, ClickCount, Modifiers, MouseButton, Point, ScrollDirection, Size,
};
use agenthost_sdk::types::{ContentPart, ToolSpec, ToolUse};
use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};
use serde::Deserialize;

/// Resolutions the model is shown, as in the reference demo; the one matching
/// the screen's aspect ratio and no larger than the screen is used.
const TARGETS: [(u32, u32); 3] = [(1024, 768), (1280, 800), (1366, 768)];
const SETTLE_QUIET_MS: u32 = 150;
const SETTLE_MAX_MS: u32 = 2_000;
const MAX_WAIT_SECONDS: f64 = 60.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    action: String,
    coordinate: Option<[i64; 2]>,
    start_coordinate: Option<[i64; 2]>,
    text: Option<String>,
    scroll_direction: Option<String>,
    scroll_amount: Option<u32>,
    duration: Option<f64>,
    region: Option<[i64; 4]>,
}

struct Scaling {
    screen: Size,
    model: Size,
}

impl Scaling {
    fn current() -> Result<Self, ToolError> {
        let screen = computer::screen_size()?;
        let ratio = screen.width as f64 / screen.height.max(1) as f64;
        let model = TARGETS
            .iter()
            .find(|(w, h)| {
                (*w as f64 / *h as f64 - ratio).abs() < 0.02
                    && *w <= screen.width
                    && *h <= screen.height
            })
            .map(|&(width, height)| Size { width, height })
            .unwrap_or(screen);
        Ok(Self { screen, model })
    }

    /// Model coordinates to screen coordinates; off-model-screen is an error
    /// the model can correct.
    fn to_screen(&self, [x, y]: [i64; 2]) -> Result<Point, ToolError> {
        if x < 0 || y < 0 || x >= self.model.width as i64 || y >= self.model.height as i64 {
            return Err(ToolError::InvalidInput(format!(
                "coordinate ({x}, {y}) is off screen: the screen is {}x{}",
                self.model.width, self.model.height
            )));
        }
        let sx = x * self.screen.width as i64 / self.model.width as i64;
        let sy = y * self.screen.height as i64 / self.model.height as i64;
        Ok(Point {
            x: sx as i32,
            y: sy as i32,
        })
    }

    /// An exclusive end coordinate (may equal the screen's width/height).
    fn edge_to_screen(&self, [x, y]: [i64; 2]) -> Result<Point, ToolError> {
        if x < 1 || y < 1 || x > self.model.width as i64 || y > self.model.height as i64 {
            return Err(ToolError::InvalidInput(format!(
                "region end ({x}, {y}) is off screen: the screen is {}x{}",
                self.model.width, self.model.height
            )));
        }
        Ok(Point {
            x: (x * self.screen.width as i64 / self.model.width as i64) as i32,
            y: (y * self.screen.height as i64 / self.model.height as i64) as i32,
        })
    }

    fn to_model(&self, p: Point) -> (i64, i64) {
        (
            p.x as i64 * self.model.width as i64 / self.screen.width as i64,
            p.y as i64 * self.model.height as i64 / self.screen.height as i64,
        )
    }

    fn screenshot(&self) -> Result<ContentPart, ToolError> {
        let image = if self.model == self.screen {
            computer::screenshot()
        } else {
            computer::screenshot_region(Point { x: 0, y: 0 }, self.screen, self.model)
        }?;
        Ok(ContentPart::Image(image))
    }
}

fn need<T>(v: Option<T>, field: &str, action: &str) -> Result<T, ToolError> {
    v.ok_or_else(|| ToolError::InvalidInput(format!("action `{action}` needs `{field}`")))
}

/// The keys named in `text` ("shift", "ctrl+alt"), held during a click or
/// scroll, as the computer-use action set passes them.
fn modifiers(text: &Option<String>) -> Result<Modifiers, ToolError> {
    let mut held = Modifiers::empty();
    for name in text.as_deref().unwrap_or_default().split('+') {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        held |= match name.to_ascii_lowercase().as_str() {
            "shift" | "shift_l" | "shift_r" => Modifiers::SHIFT,
            "ctrl" | "control" | "control_l" | "control_r" => Modifiers::CTRL,
            "alt" | "alt_l" | "alt_r" | "meta" => Modifiers::ALT,
            "super" | "super_l" | "super_r" | "win" | "cmd" | "command" => Modifiers::SUPER,
            _ => {
                return Err(ToolError::InvalidInput(format!(
                "`{name}` cannot be held during a click or scroll; use shift, ctrl, alt or super"
            )))
            }
        };
    }
    Ok(held)
}

fn settle_and_capture(scaling: &Scaling, note: Option<String>) -> Result<ToolOutput, ToolError> {
    computer::wait_until_settled(SETTLE_QUIET_MS, SETTLE_MAX_MS)?;
    let mut content = Vec::new();
    if let Some(note) = note {
        content.push(ContentPart::Text(note));
    }
    content.push(scaling.screenshot()?);
    Ok(ToolOutput { content })
}

fn click(
    scaling: &Scaling,
    input: &Input,
    button: MouseButton,
    count: ClickCount,
) -> Result<(), ToolError> {
    let at = match input.coordinate {
        Some(c) => scaling.to_screen(c)?,
        None => computer::cursor_position()?,
    };
    computer::click(at, button, count, modifiers(&input.text)?).map_err(ToolError::from)
}

fn run(input: Input) -> Result<ToolOutput, ToolError> {
    let scaling = Scaling::current()?;
    let action = input.action.as_str();
    match action {
        "screenshot" => {
            return Ok(ToolOutput {
                content: vec![scaling.screenshot()?],
            })
        }
        "cursor_position" => {
            let (x, y) = scaling.to_model(computer::cursor_position()?);
            return Ok(ToolOutput {
                content: vec![ContentPart::Text(format!("X={x},Y={y}"))],
            });
        }
        "zoom" => {
            let [x1, y1, x2, y2] = need(input.region, "region", action)?;
            let a = scaling.to_screen([x1, y1])?;
            let b = scaling.edge_to_screen([x2, y2])?;
            if b.x <= a.x || b.y <= a.y {
                return Err(ToolError::InvalidInput(
                    "`region` must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2".into(),
                ));
            }
            let region = Size {
                width: (b.x - a.x) as u32,
                height: (b.y - a.y) as u32,
            };
            let image = computer::screenshot_region(a, region, scaling.model)?;
            return Ok(ToolOutput {
                content: vec![ContentPart::Image(image)],
            });
        }
        "mouse_move" => {
            let to = scaling.to_screen(need(input.coordinate, "coordinate", action)?)?;
            computer::mouse_move(to)?;
        }
        "left_click" => click(&scaling, &input, MouseButton::Left, ClickCount::Single)?,
        "right_click" => click(&scaling, &input, MouseButton::Right, ClickCount::Single)?,
        "middle_click" => click(&scaling, &input, MouseButton::Middle, ClickCount::Single)?,
        "double_click" => click(&scaling, &input, MouseButton::Left, ClickCount::Double)?,
        "triple_click" => click(&scaling, &input, MouseButton::Left, ClickCount::Triple)?,
        "left_mouse_down" => computer::mouse_down(MouseButton::Left)?,
        "left_mouse_up" => computer::mouse_up(MouseButton::Left)?,
        "left_click_drag" => {
            let from =
                scaling.to_screen(need(input.start_coordinate, "start_coordinate", action)?)?;
            let to = scaling.to_screen(need(input.coordinate, "coordinate", action)?)?;
            computer::drag(from, to, MouseButton::Left)?;
        }
        "scroll" => {
            let direction = match need(
                input.scroll_direction.as_deref(),
                "scroll_direction",
                action,
            )? {
                "up" => ScrollDirection::Up,
                "down" => ScrollDirection::Down,
                "left" => ScrollDirection::Left,
                "right" => ScrollDirection::Right,
                other => {
                    return Err(ToolError::InvalidInput(format!(
                        "scroll_direction `{other}` is not one of up, down, left, right"
                    )))
                }
            };
            let amount = input.scroll_amount.unwrap_or(3);
            let at = match input.coordinate {
                Some(c) => scaling.to_screen(c)?,
                None => computer::cursor_position()?,
            };
            computer::scroll(at, direction, amount, modifiers(&input.text)?)?;
        }
        "key" => computer::key(&need(input.text.clone(), "text", action)?)?,
        "hold_key" => {
            let seconds = need(input.duration, "duration", action)?;
            if !(0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
                return Err(ToolError::InvalidInput(format!(
                    "duration must be 0 to {MAX_WAIT_SECONDS} seconds"
                )));
            }
            computer::hold_key(
                &need(input.text.clone(), "text", action)?,
                (seconds * 1000.0) as u32,
            )?;
        }
        "type" => {
            let text = need(input.text.clone(), "text", action)?;
            if text.is_empty() {
                return Err(ToolError::InvalidInput(
                    "`text` is empty: nothing to type".into(),
                ));
            }
            computer::type_text(&text)?;
        }
        "wait" => {
            let seconds = input.duration.unwrap_or(1.0);
            if !(0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
                return Err(ToolError::InvalidInput(format!(
                    "duration must be 0 to {MAX_WAIT_SECONDS} seconds"
                )));
            }
            computer::wait((seconds * 1000.0) as u32)?;
            return Ok(ToolOutput {
                content: vec![scaling.screenshot()?],
            });
        }
        other => return Err(ToolError::InvalidInput(format!("unknown action `{other}`"))),
    }
    settle_and_capture(&scaling, None)
}

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "action": {"type": "string", "enum": ["screenshot", "cursor_position", "zoom", "mouse_move",
      "left_click", "right_click", "middle_click", "double_click", "triple_click",
      "left_mouse_down", "left_mouse_up", "left_click_drag", "scroll", "key", "hold_key", "type", "wait"]},
    "coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
      "description": "[x, y] in screenshot pixels"},
    "start_coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    "text": {"type": "string", "description": "Text to type, a key combo in xdotool names, or modifiers held during a click or scroll"},
    "scroll_direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
    "scroll_amount": {"type": "integer", "minimum": 0},
    "duration": {"type": "number", "minimum": 0, "maximum": 60, "description": "Seconds, for wait and hold_key"},
    "region": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
      "description": "[x1, y1, x2, y2] to zoom into"}
  },
  "required": ["action"],
  "additionalProperties": false
}"#;

struct Computer;

impl Guest for Computer {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "computer".into(),
            description:
                "Use the mouse and keyboard to interact with the desktop, and take screenshots. \
                After every action a fresh screenshot is returned once the screen has settled. \
                Key names follow xdotool, e.g. \"ctrl+l\", \"Return\", \"Page_Down\"."
                    .into(),
            input_schema: SCHEMA.into(),
        }]
    }

    fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
        if call.name != "computer" {
            return Err(ToolError::InvalidInput(format!(
                "this component has no tool `{}`",
                call.name
            )));
        }
        let input: Input = agenthost_sdk::input(&call)?;
        run(input)
    }
}

export!(Computer);
