//! The loop guard: notices a run repeating itself and stops it before it
//! spends more tokens.
//!
//! A run is repeating itself when the same tool call (name and input)
//! comes back with the same result, `limit` times in a row. Results
//! include screenshots by content hash, so for the computer tool "the same
//! result" is "an unchanged screen": a model clicking a button that does
//! nothing, or taking the same screenshot over and over, is caught, while
//! the same call that changes something (scrolling a page, a command whose
//! output moves on) is not. The check is deterministic: no model is asked.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::event::{StoredPart, ToolResult};

#[derive(Debug)]
pub struct LoopGuard {
    /// Identical steps in a row that stop the run; 0: off.
    limit: u32,
    last: Option<u64>,
    repeats: u32,
}

/// One step's calls and results, as the guard sees them.
#[derive(Default)]
pub struct StepPrint {
    hasher: DefaultHasher,
    calls: Vec<String>,
    screens: bool,
}

impl StepPrint {
    /// Adds a call of the step and its result.
    pub fn add(&mut self, name: &str, input: &str, result: &ToolResult) {
        fingerprint(name, input, result, &mut self.hasher);
        if !self.calls.iter().any(|c| c == name) {
            self.calls.push(name.to_string());
        }
        self.screens |= result
            .content
            .iter()
            .any(|p| matches!(p, StoredPart::Image { .. }));
    }
}

impl LoopGuard {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            last: None,
            repeats: 0,
        }
    }

    /// Takes the run's next step; says why the run should stop when it
    /// makes `limit` identical steps in a row. Steps are compared whole:
    /// the calls a model plans together (pressing Tab three times) are
    /// one decision, not a loop.
    pub fn observe(&mut self, step: StepPrint) -> Option<String> {
        if self.limit == 0 || step.calls.is_empty() {
            return None;
        }
        let print = step.hasher.finish();
        if self.last == Some(print) {
            self.repeats += 1;
        } else {
            self.last = Some(print);
            self.repeats = 1;
        }
        (self.repeats >= self.limit).then(|| {
            let what = if step.screens {
                "the screen did not change"
            } else {
                "the result did not change"
            };
            let calls = step
                .calls
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "loop detected: the agent made the same {calls} call {} times in a row with \
                 the same input and {what}; it was paused instead of spending more tokens. \
                 Send a message with a hint, or resume to let it try again",
                self.repeats
            )
        })
    }
}

/// Hashes a call and its result. The input is compared as JSON (so key
/// order and spacing do not make two calls differ); the duration and the
/// call's id are left out, as they differ every time.
fn fingerprint(name: &str, input: &str, result: &ToolResult, h: &mut DefaultHasher) {
    name.hash(h);
    match serde_json::from_str::<Value>(input) {
        Ok(v) => hash_canonical(&v, h),
        Err(_) => input.hash(h),
    }
    result.is_error.hash(h);
    result.content.len().hash(h);
    for part in &result.content {
        match part {
            StoredPart::Text { text } => (0u8, text).hash(h),
            StoredPart::Image { sha256, .. } => (1u8, sha256).hash(h),
        }
    }
}

/// Hashes JSON with object keys in sorted order, whatever order the map
/// keeps them in (serde_json's `preserve_order` may be on in the build).
fn hash_canonical(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            b'{'.hash(h);
            for k in keys {
                k.hash(h);
                hash_canonical(&map[k], h);
            }
        }
        Value::Array(items) => {
            b'['.hash(h);
            items.len().hash(h);
            items.iter().for_each(|i| hash_canonical(i, h));
        }
        other => other.to_string().hash(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(parts: Vec<StoredPart>) -> ToolResult {
        ToolResult {
            tool_use_id: "x".into(),
            name: "computer".into(),
            content: parts,
            is_error: false,
            duration_ms: 7,
        }
    }

    fn screen(sha: &str) -> Vec<StoredPart> {
        vec![StoredPart::Image {
            sha256: sha.into(),
            width: 10,
            height: 10,
            media_type: "image/png".into(),
        }]
    }

    fn step(calls: &[(&str, &str, Vec<StoredPart>)]) -> StepPrint {
        let mut p = StepPrint::default();
        for (name, input, parts) in calls {
            p.add(name, input, &result(parts.clone()));
        }
        p
    }

    #[test]
    fn trips_on_the_limit_th_identical_step_with_an_unchanged_screen() {
        let mut g = LoopGuard::new(3);
        let input = r#"{"action":"left_click","coordinate":[5,5]}"#;
        assert!(g
            .observe(step(&[("computer", input, screen("a"))]))
            .is_none());
        // Same call, keys in another order: still the same call.
        let reordered = r#"{ "coordinate":[5,5], "action":"left_click" }"#;
        assert!(g
            .observe(step(&[("computer", reordered, screen("a"))]))
            .is_none());
        let why = g
            .observe(step(&[("computer", input, screen("a"))]))
            .expect("third identical step trips");
        assert!(why.contains("3 times") && why.contains("screen did not change"));
        assert!(why.contains("`computer`"));
    }

    #[test]
    fn a_changed_screen_or_another_call_starts_the_count_again() {
        let mut g = LoopGuard::new(2);
        let input = r#"{"action":"scroll"}"#;
        assert!(g
            .observe(step(&[("computer", input, screen("a"))]))
            .is_none());
        assert!(g
            .observe(step(&[("computer", input, screen("b"))]))
            .is_none());
        assert!(g.observe(step(&[("bash", input, screen("b"))])).is_none());
        assert!(g
            .observe(step(&[("bash", r#"{"command":"ls"}"#, screen("b"))]))
            .is_none());
        let text = vec![StoredPart::text("same")];
        assert!(g.observe(step(&[("bash", "{}", text.clone())])).is_none());
        assert!(g
            .observe(step(&[("bash", "{}", text)]))
            .is_some_and(|w| w.contains("result did not change")));
    }

    #[test]
    fn calls_planned_together_in_one_step_are_not_a_loop() {
        let mut g = LoopGuard::new(2);
        let tab = ("computer", r#"{"action":"key","text":"Tab"}"#, vec![]);
        assert!(g
            .observe(step(&[tab.clone(), tab.clone(), tab.clone()]))
            .is_none());
        // The next step differs in length: no trip either.
        assert!(g.observe(step(std::slice::from_ref(&tab))).is_none());
    }

    #[test]
    fn zero_turns_it_off() {
        let mut g = LoopGuard::new(0);
        for _ in 0..10 {
            assert!(g.observe(step(&[("bash", "{}", vec![])])).is_none());
        }
    }
}
