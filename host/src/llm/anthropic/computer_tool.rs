//! Which version of Anthropic's computer-use tool a request gets.
//!
//! Policies ask for the built-in computer tool with the version every
//! Claude model with computer use takes (`computer_20250124`). The host
//! knows the model the request goes to, so it upgrades the tool to the
//! newest version (`computer_20251124`, which adds the `zoom` action: the
//! `computer` plugin answers it with a region screenshot) for the models
//! that take it, and names the beta that matches the version sent.

use serde_json::Value;

/// The newest version, and its zoom switch.
pub const NEWEST: &str = "computer_20251124";

/// Upgrades a built-in computer tool to the newest version if `model`
/// (by a part of its name, so Bedrock and Vertex ids match too) takes it.
pub fn fit(tool: &mut Value, model: &str, newest_models: &[String]) {
    let is_computer = tool["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("computer_"));
    if is_computer
        && newest_models
            .iter()
            .any(|m| !m.is_empty() && model.contains(m.as_str()))
    {
        tool["type"] = Value::from(NEWEST);
        tool["enable_zoom"] = Value::Bool(true);
    }
}

/// The beta flag of a built-in tool's version: `computer_20251124` is
/// `computer-use-2025-11-24`.
pub fn beta(tool_type: &str) -> Option<String> {
    let date = tool_type.strip_prefix("computer_")?;
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("computer-use-{}-{}-{}", &date[..4], &date[4..6], &date[6..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn models_that_take_it_get_the_newest_version_with_zoom() {
        let newest = vec!["opus-4-5".to_string()];
        let asked = json!({"type": "computer_20250124", "display_width_px": 1024});
        for model in [
            "claude-opus-4-5",
            "us.anthropic.claude-opus-4-5-20251101-v1:0",
            "claude-opus-4-5@20251101",
        ] {
            let mut tool = asked.clone();
            fit(&mut tool, model, &newest);
            assert_eq!(tool["type"], NEWEST, "{model}");
            assert_eq!(tool["enable_zoom"], true);
            assert_eq!(tool["display_width_px"], 1024);
            assert_eq!(beta(NEWEST).as_deref(), Some("computer-use-2025-11-24"));
        }
        let mut tool = asked.clone();
        fit(&mut tool, "claude-sonnet-4-5", &newest);
        assert_eq!(tool, asked);
        assert_eq!(
            beta("computer_20250124").as_deref(),
            Some("computer-use-2025-01-24")
        );
        assert_eq!(beta("bash_20250124"), None);
    }
}
