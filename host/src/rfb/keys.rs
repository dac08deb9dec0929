//! xdotool key names to X keysyms: "ctrl+shift+t", "Return", "KP_Enter",
//! "super", "Page_Down", single characters, and XF86 media keys.

use std::collections::HashMap;
use std::sync::OnceLock;

use xkeysym::Keysym;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("unknown key name `{0}` (use xdotool names such as Return, ctrl, Page_Down, F5)")]
    Unknown(String),
    #[error("empty key combination")]
    Empty,
}

/// Every named keysym, by the name xdotool uses (the X name without its
/// `XK_` prefix). Built once by asking xkeysym for the name of each code in
/// the legacy and vendor ranges.
fn by_name() -> &'static HashMap<String, u32> {
    static NAMES: OnceLock<HashMap<String, u32>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut map = HashMap::new();
        for raw in (0..0x1_0000u32).chain(0x1008_0000..0x1009_0000) {
            if let Some(name) = Keysym::new(raw).name() {
                let short = name
                    .strip_prefix("XK_")
                    .map(str::to_string)
                    .or_else(|| name.strip_prefix("XF86XK_").map(|n| format!("XF86{n}")));
                if let Some(short) = short {
                    map.entry(short).or_insert(raw);
                }
            }
        }
        map
    })
}

/// Friendly names models and people use, and X aliases whose keysym the
/// name table lists under another name (`Page_Down` is `Next`).
fn alias(name: &str) -> Option<u32> {
    use xkeysym::key;
    Some(match name.to_ascii_lowercase().as_str() {
        "ctrl" | "control" => key::Control_L,
        "shift" => key::Shift_L,
        "alt" => key::Alt_L,
        "super" | "win" | "windows" | "cmd" | "command" => key::Super_L,
        "meta" => key::Meta_L,
        "enter" | "return" => key::Return,
        "esc" | "escape" => key::Escape,
        "tab" => key::Tab,
        "backspace" => key::BackSpace,
        "delete" | "del" => key::Delete,
        "space" => key::space,
        "pageup" | "page_up" | "prior" => key::Page_Up,
        "pagedown" | "page_down" | "next" => key::Page_Down,
        "home" => key::Home,
        "end" => key::End,
        "insert" => key::Insert,
        "up" => key::Up,
        "down" => key::Down,
        "left" => key::Left,
        "right" => key::Right,
        "capslock" | "caps_lock" => key::Caps_Lock,
        "menu" => key::Menu,
        "print" | "printscreen" => key::Print,
        "kp_page_down" | "kp_next" => key::KP_Page_Down,
        "kp_page_up" | "kp_prior" => key::KP_Page_Up,
        _ => return None,
    })
}

pub fn keysym_for_char(c: char) -> u32 {
    match c {
        '\n' => 0xff0d,
        '\t' => 0xff09,
        _ => Keysym::from_char(c).raw(),
    }
}

fn keysym(name: &str) -> Result<u32, KeyError> {
    let names = by_name();
    if let Some(&k) = names.get(name) {
        return Ok(k);
    }
    if let Some(k) = alias(name) {
        return Ok(k);
    }
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Ok(keysym_for_char(c));
    }
    // F1..F35 written in lower case, "kp_enter" and similar.
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, k)| *k)
        .ok_or_else(|| KeyError::Unknown(name.to_string()))
}

/// "ctrl+shift+t" -> keysyms to press in order (and release in reverse).
pub fn parse_combo(combo: &str) -> Result<Vec<u32>, KeyError> {
    let combo = combo.trim();
    if combo.is_empty() {
        return Err(KeyError::Empty);
    }
    // A lone "+" (or one at the end, "ctrl++") is the plus key.
    let mut parts: Vec<&str> = combo.split('+').collect();
    if combo.ends_with('+') {
        parts.retain(|p| !p.is_empty());
        parts.push("plus");
    }
    parts.iter().map(|p| keysym(p.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xdotool_names() {
        assert_eq!(parse_combo("Return").unwrap(), [0xff0d]);
        assert_eq!(
            parse_combo("ctrl+shift+t").unwrap(),
            [0xffe3, 0xffe1, 't' as u32]
        );
        assert_eq!(parse_combo("KP_Enter").unwrap(), [0xff8d]);
        assert_eq!(parse_combo("super").unwrap(), [0xffeb]);
        assert_eq!(parse_combo("Page_Down").unwrap(), [0xff56]);
        assert_eq!(parse_combo("Page_Up").unwrap(), [0xff55]);
        assert_eq!(parse_combo("Next").unwrap(), [0xff56]);
        assert_eq!(parse_combo("alt+Tab").unwrap(), [0xffe9, 0xff09]);
        assert_eq!(parse_combo("F5").unwrap(), [0xffc2]);
        assert_eq!(parse_combo("ctrl++").unwrap(), [0xffe3, '+' as u32]);
        assert_eq!(parse_combo("XF86AudioMute").unwrap(), [0x1008_ff12]);
        assert_eq!(parse_combo("é").unwrap(), [Keysym::from_char('é').raw()]);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            parse_combo("ctrl+banana"),
            Err(KeyError::Unknown("banana".into()))
        );
        assert_eq!(parse_combo("  "), Err(KeyError::Empty));
    }
}
