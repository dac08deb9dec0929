//! `agenthost:plugin@0.1.0` (`wit/v0.1.0/plugin.wit`, frozen as released).
//!
//! `types`, `shell`, `files` and `log` did not change in 0.2.0: their
//! bindings are the newest module's (`with`), so the one host
//! implementation serves both versions. `computer`, `llm`, `tool` and
//! `policy` changed; this module holds their 0.1.0 bindings, the host
//! shims for the two imports (convert, forward to the 0.2.0 host
//! implementation, convert back) and the conversions the runtime uses to
//! call the two exports.

use wasmtime::component::{HasSelf, Linker};

use super::v0_2_0 as latest;
use crate::capabilities::HostState;

/// The version string components carry in their import/export names.
pub const VERSION: &str = "0.1.0";

mod tool_world {
    wasmtime::component::bindgen!({
        world: "tool-plugin",
        path: "../wit/v0.1.0",
        imports: { default: async | tracing },
        exports: { default: async },
        with: {
            "agenthost:plugin/types": super::latest::types,
            "agenthost:plugin/shell": super::latest::shell,
            "agenthost:plugin/files": super::latest::files,
            "agenthost:plugin/log": super::latest::log,
        },
    });
}

mod policy_world {
    wasmtime::component::bindgen!({
        world: "policy-plugin",
        path: "../wit/v0.1.0",
        imports: { default: async | tracing },
        exports: { default: async },
        with: {
            "agenthost:plugin/types": super::latest::types,
            "agenthost:plugin/llm": super::tool_world::agenthost::plugin::llm,
            "agenthost:plugin/log": super::latest::log,
        },
    });
}

pub use policy_world::exports::agenthost::plugin::policy;
pub use policy_world::{PolicyPlugin, PolicyPluginPre};
pub use tool_world::agenthost::plugin::{computer, llm};
pub use tool_world::exports::agenthost::plugin::tool;
pub use tool_world::{ToolPlugin, ToolPluginPre};

use latest::types::{HostError, Image};

/// Adds 0.1.0's interfaces to the linker under their 0.1.0 names. The
/// world's generated `add_to_linker` cannot be used: for an interface
/// reused through `with` it registers the newest module's name (`@0.2.0`),
/// so the unchanged ones are added here by hand under `@0.1.0`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    type Data = HasSelf<HostState>;
    fn name(interface: &str) -> String {
        format!("agenthost:plugin/{interface}@{VERSION}")
    }
    latest::types::add_to_linker_instance::<_, Data>(&mut linker.instance(&name("types"))?, |s| s)?;
    latest::shell::add_to_linker_instance::<_, Data>(&mut linker.instance(&name("shell"))?, |s| s)?;
    latest::files::add_to_linker_instance::<_, Data>(&mut linker.instance(&name("files"))?, |s| s)?;
    latest::log::add_to_linker_instance::<_, Data>(&mut linker.instance(&name("log"))?, |s| s)?;
    computer::add_to_linker::<_, Data>(linker, |s| s)?;
    llm::add_to_linker::<_, Data>(linker, |s| s)
}

// ---- computer: 0.1.0 took the click count as a number and modifiers as
// key names; 0.2.0 has an enum and flags. Everything else is the same
// shape under another type name.

impl From<computer::Point> for latest::computer::Point {
    fn from(p: computer::Point) -> Self {
        Self { x: p.x, y: p.y }
    }
}

impl From<latest::computer::Point> for computer::Point {
    fn from(p: latest::computer::Point) -> Self {
        Self { x: p.x, y: p.y }
    }
}

impl From<computer::Size> for latest::computer::Size {
    fn from(s: computer::Size) -> Self {
        Self {
            width: s.width,
            height: s.height,
        }
    }
}

impl From<latest::computer::Size> for computer::Size {
    fn from(s: latest::computer::Size) -> Self {
        Self {
            width: s.width,
            height: s.height,
        }
    }
}

impl From<computer::MouseButton> for latest::computer::MouseButton {
    fn from(b: computer::MouseButton) -> Self {
        match b {
            computer::MouseButton::Left => Self::Left,
            computer::MouseButton::Middle => Self::Middle,
            computer::MouseButton::Right => Self::Right,
        }
    }
}

impl From<computer::ScrollDirection> for latest::computer::ScrollDirection {
    fn from(d: computer::ScrollDirection) -> Self {
        match d {
            computer::ScrollDirection::Up => Self::Up,
            computer::ScrollDirection::Down => Self::Down,
            computer::ScrollDirection::Left => Self::Left,
            computer::ScrollDirection::Right => Self::Right,
        }
    }
}

fn click_count(count: u8) -> Result<latest::computer::ClickCount, HostError> {
    use latest::computer::ClickCount;
    match count {
        1 => Ok(ClickCount::Single),
        2 => Ok(ClickCount::Double),
        3 => Ok(ClickCount::Triple),
        n => Err(HostError::Invalid(format!(
            "click count {n} must be 1, 2 or 3"
        ))),
    }
}

/// 0.1.0 took any key name as a modifier; these are the names of the
/// four modifier keys (the friendly ones and X's), which is what callers
/// passed. Any other key held during a click is refused with a message.
fn modifiers(names: &[String]) -> Result<latest::computer::Modifiers, HostError> {
    use latest::computer::Modifiers;
    let mut flags = Modifiers::empty();
    for name in names {
        flags |= match name.to_ascii_lowercase().as_str() {
            "shift" | "shift_l" | "shift_r" => Modifiers::SHIFT,
            "ctrl" | "control" | "control_l" | "control_r" => Modifiers::CTRL,
            "alt" | "alt_l" | "alt_r" | "meta" | "meta_l" | "meta_r" => Modifiers::ALT,
            "super" | "super_l" | "super_r" | "win" | "windows" | "cmd" | "command" => {
                Modifiers::SUPER
            }
            other => {
                return Err(HostError::Invalid(format!(
                    "unknown modifier `{other}` (known: shift, ctrl, alt, super)"
                )))
            }
        };
    }
    Ok(flags)
}

impl computer::Host for HostState {
    async fn screen_size(&mut self) -> Result<computer::Size, HostError> {
        latest::computer::Host::screen_size(self)
            .await
            .map(Into::into)
    }

    async fn screenshot(&mut self) -> Result<Image, HostError> {
        latest::computer::Host::screenshot(self).await
    }

    async fn screenshot_region(
        &mut self,
        top_left: computer::Point,
        region: computer::Size,
        output: computer::Size,
    ) -> Result<Image, HostError> {
        latest::computer::Host::screenshot_region(
            self,
            top_left.into(),
            region.into(),
            output.into(),
        )
        .await
    }

    async fn cursor_position(&mut self) -> Result<computer::Point, HostError> {
        latest::computer::Host::cursor_position(self)
            .await
            .map(Into::into)
    }

    async fn mouse_move(&mut self, to: computer::Point) -> Result<(), HostError> {
        latest::computer::Host::mouse_move(self, to.into()).await
    }

    async fn mouse_down(&mut self, button: computer::MouseButton) -> Result<(), HostError> {
        latest::computer::Host::mouse_down(self, button.into()).await
    }

    async fn mouse_up(&mut self, button: computer::MouseButton) -> Result<(), HostError> {
        latest::computer::Host::mouse_up(self, button.into()).await
    }

    async fn click(
        &mut self,
        at: computer::Point,
        button: computer::MouseButton,
        count: u8,
        modifiers: Vec<String>,
    ) -> Result<(), HostError> {
        let (count, modifiers) = (click_count(count)?, self::modifiers(&modifiers)?);
        latest::computer::Host::click(self, at.into(), button.into(), count, modifiers).await
    }

    async fn drag(
        &mut self,
        start: computer::Point,
        end: computer::Point,
        button: computer::MouseButton,
    ) -> Result<(), HostError> {
        latest::computer::Host::drag(self, start.into(), end.into(), button.into()).await
    }

    async fn scroll(
        &mut self,
        at: computer::Point,
        direction: computer::ScrollDirection,
        amount: u32,
        modifiers: Vec<String>,
    ) -> Result<(), HostError> {
        let modifiers = self::modifiers(&modifiers)?;
        latest::computer::Host::scroll(self, at.into(), direction.into(), amount, modifiers).await
    }

    async fn key(&mut self, combo: String) -> Result<(), HostError> {
        latest::computer::Host::key(self, combo).await
    }

    async fn hold_key(&mut self, combo: String, duration_ms: u32) -> Result<(), HostError> {
        latest::computer::Host::hold_key(self, combo, duration_ms).await
    }

    async fn type_text(&mut self, text: String) -> Result<(), HostError> {
        latest::computer::Host::type_text(self, text).await
    }

    async fn wait_until_settled(&mut self, quiet_ms: u32, max_ms: u32) -> Result<bool, HostError> {
        latest::computer::Host::wait_until_settled(self, quiet_ms, max_ms).await
    }

    async fn wait(&mut self, duration_ms: u32) -> Result<(), HostError> {
        latest::computer::Host::wait(self, duration_ms).await
    }
}

// ---- llm: 0.2.0 added reasoning and opaque provider parts and stop
// sequences. A 0.1.0 policy cannot hold the new parts, so they are left out
// of what it sees; it never sends them, so nothing is lost going in.

impl From<llm::Role> for latest::llm::Role {
    fn from(r: llm::Role) -> Self {
        match r {
            llm::Role::User => Self::User,
            llm::Role::Assistant => Self::Assistant,
        }
    }
}

impl From<latest::llm::Role> for llm::Role {
    fn from(r: latest::llm::Role) -> Self {
        match r {
            latest::llm::Role::User => Self::User,
            latest::llm::Role::Assistant => Self::Assistant,
        }
    }
}

impl From<llm::MessagePart> for latest::llm::MessagePart {
    fn from(p: llm::MessagePart) -> Self {
        match p {
            llm::MessagePart::Text(t) => Self::Text(t),
            llm::MessagePart::Image(i) => Self::Image(i),
            llm::MessagePart::ToolUse(u) => Self::ToolUse(u),
            llm::MessagePart::ToolResult(r) => Self::ToolResult(r),
        }
    }
}

/// The part as 0.1.0 knows it, or `None` for a part it has no case for.
fn older_part(p: latest::llm::MessagePart) -> Option<llm::MessagePart> {
    use latest::llm::MessagePart as P;
    match p {
        P::Text(t) => Some(llm::MessagePart::Text(t)),
        P::Image(i) => Some(llm::MessagePart::Image(i)),
        P::ToolUse(u) => Some(llm::MessagePart::ToolUse(u)),
        P::ToolResult(r) => Some(llm::MessagePart::ToolResult(r)),
        P::Thinking(_) | P::Opaque(_) => None,
    }
}

impl From<llm::Message> for latest::llm::Message {
    fn from(m: llm::Message) -> Self {
        Self {
            role: m.role.into(),
            parts: m.parts.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<latest::llm::Message> for llm::Message {
    fn from(m: latest::llm::Message) -> Self {
        Self {
            role: m.role.into(),
            parts: m.parts.into_iter().filter_map(older_part).collect(),
        }
    }
}

impl From<llm::Request> for latest::llm::Request {
    fn from(r: llm::Request) -> Self {
        Self {
            model: r.model,
            system: r.system,
            messages: r.messages.into_iter().map(Into::into).collect(),
            tools: r.tools,
            max_tokens: r.max_tokens,
            temperature: r.temperature,
            stop_sequences: Vec::new(),
        }
    }
}

impl From<latest::llm::StopReason> for llm::StopReason {
    fn from(s: latest::llm::StopReason) -> Self {
        use latest::llm::StopReason as S;
        match s {
            S::EndTurn => Self::EndTurn,
            S::ToolUse => Self::ToolUse,
            S::MaxTokens => Self::MaxTokens,
            S::StopSequence => Self::StopSequence,
            S::Other => Self::Other,
        }
    }
}

impl From<latest::llm::Response> for llm::Response {
    fn from(r: latest::llm::Response) -> Self {
        Self {
            parts: r.parts.into_iter().filter_map(older_part).collect(),
            stop_reason: r.stop_reason.into(),
            usage: llm::Usage {
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
                cache_read_tokens: r.usage.cache_read_tokens,
                cache_write_tokens: r.usage.cache_write_tokens,
            },
        }
    }
}

impl llm::Host for HostState {
    async fn complete(&mut self, request: llm::Request) -> Result<llm::Response, HostError> {
        latest::llm::Host::complete(self, request.into())
            .await
            .map(Into::into)
    }
}

// ---- tool: 0.1.0's `invoke` took a `tool-call` with the fields of
// `tool-use`; output and error are the same shape.

impl From<latest::types::ToolUse> for tool::ToolCall {
    fn from(u: latest::types::ToolUse) -> Self {
        Self {
            id: u.id,
            name: u.name,
            input: u.input,
        }
    }
}

impl From<tool::ToolOutput> for latest::tool::ToolOutput {
    fn from(o: tool::ToolOutput) -> Self {
        Self { content: o.content }
    }
}

impl From<tool::ToolError> for latest::tool::ToolError {
    fn from(e: tool::ToolError) -> Self {
        match e {
            tool::ToolError::InvalidInput(m) => Self::InvalidInput(m),
            tool::ToolError::Failed(m) => Self::Failed(m),
        }
    }
}

// ---- policy: 0.1.0's `act` was a tuple (an empty one meant a reply, and
// still does for these components) and `step` failed with a string.

impl From<latest::policy::Context> for policy::Context {
    fn from(c: latest::policy::Context) -> Self {
        Self {
            session_id: c.session_id,
            step: c.step,
            history: c.history.into_iter().map(Into::into).collect(),
            tools: c.tools,
            state: c.state,
            config: c.config,
        }
    }
}

impl From<policy::Info> for latest::policy::Info {
    fn from(i: policy::Info) -> Self {
        Self {
            name: i.name,
            description: i.description,
        }
    }
}

impl From<policy::Decision> for latest::policy::Decision {
    fn from(d: policy::Decision) -> Self {
        match d {
            // What the 0.1.0 host did with an act that ran nothing.
            policy::Decision::Act((text, calls)) if calls.is_empty() => {
                Self::Reply(text.unwrap_or_default())
            }
            policy::Decision::Act((text, calls)) => Self::Act(latest::policy::Act { text, calls }),
            policy::Decision::Reply(t) => Self::Reply(t),
            policy::Decision::Finish(t) => Self::Finish(t),
        }
    }
}

impl From<policy::StepOutput> for latest::policy::StepOutput {
    fn from(o: policy::StepOutput) -> Self {
        Self {
            decision: o.decision.into(),
            state: o.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_act_is_the_reply_it_always_was() {
        let d: latest::policy::Decision =
            policy::Decision::Act((Some("done".into()), Vec::new())).into();
        assert!(matches!(d, latest::policy::Decision::Reply(t) if t == "done"));
    }

    #[test]
    fn newer_parts_are_left_out_of_what_an_old_policy_sees() {
        let m = latest::llm::Message {
            role: latest::llm::Role::Assistant,
            parts: vec![
                latest::llm::MessagePart::Thinking(latest::llm::Thinking {
                    text: "hmm".into(),
                    signature: Some("sig".into()),
                }),
                latest::llm::MessagePart::Text("hello".into()),
            ],
        };
        let old: llm::Message = m.into();
        assert_eq!(old.parts.len(), 1);
        assert!(matches!(&old.parts[0], llm::MessagePart::Text(t) if t == "hello"));
    }

    #[test]
    fn old_click_arguments_are_checked_as_before() {
        assert!(click_count(2).is_ok());
        assert!(matches!(click_count(4), Err(HostError::Invalid(_))));
        let m = modifiers(&["Shift".into(), "ctrl".into()]).unwrap();
        assert_eq!(
            m,
            latest::computer::Modifiers::SHIFT | latest::computer::Modifiers::CTRL
        );
        assert!(matches!(
            modifiers(&["hyper".into()]),
            Err(HostError::Invalid(_))
        ));
    }
}
