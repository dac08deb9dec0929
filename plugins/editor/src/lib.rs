//! The `str_replace_based_edit_tool`: Anthropic's text editor tool on the
//! sandbox's files (view, create, str_replace, insert, undo_edit).
//!
//! Tools get a fresh instance per call, so undo history cannot live in memory:
//! the previous contents of each edited file are kept in the sandbox under
//! `UNDO_DIR`, one JSON stack of snapshots per edited file.

agenthost_sdk::tool_plugin!("../../wit/v0.2.0");

use agenthost_sdk::files::{self, EntryKind};
use agenthost_sdk::types::{ContentPart, ToolSpec, ToolUse};
use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};
use serde::Deserialize;

const TOOL_NAME: &str = "str_replace_based_edit_tool";
const UNDO_DIR: &str = "/tmp/.agenthost-editor-undo";
const MAX_VIEW_BYTES: usize = 256 * 1024;
const MAX_UNDO: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    command: String,
    path: String,
    file_text: Option<String>,
    old_str: Option<String>,
    new_str: Option<String>,
    insert_line: Option<usize>,
    /// Newer name of `new_str` for `insert`.
    insert_text: Option<String>,
    view_range: Option<[i64; 2]>,
}

fn invalid(msg: impl Into<String>) -> ToolError {
    ToolError::InvalidInput(msg.into())
}

fn text(s: impl Into<String>) -> ToolOutput {
    ToolOutput {
        content: vec![ContentPart::Text(s.into())],
    }
}

fn need<T>(v: Option<T>, field: &str, command: &str) -> Result<T, ToolError> {
    v.ok_or_else(|| invalid(format!("command `{command}` needs `{field}`")))
}

fn read_text(path: &str) -> Result<String, ToolError> {
    match files::stat(path)? {
        None => return Err(invalid(format!("{path} does not exist"))),
        Some(e) if e.kind == EntryKind::Directory => {
            return Err(invalid(format!(
                "{path} is a directory; use `view` to list it"
            )))
        }
        Some(_) => {}
    }
    let bytes = files::read(path)?;
    String::from_utf8(bytes).map_err(|_| invalid(format!("{path} is not a UTF-8 text file")))
}

/// `cat -n` style numbering, starting at `first` (1-based).
fn numbered(content: &str, first: usize) -> String {
    content
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{:6}\t{l}", i + first))
        .collect::<Vec<_>>()
        .join("\n")
}

fn undo_file(path: &str) -> String {
    // FNV-1a: stable across calls and builds, no dependency needed.
    let hash = path.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{UNDO_DIR}/{hash:016x}.json")
}

/// Previous contents of `path`, oldest first.
fn undo_stack(path: &str) -> Result<Vec<String>, ToolError> {
    let file = undo_file(path);
    if files::stat(&file)?.is_none() {
        return Ok(Vec::new());
    }
    let bytes = files::read(&file)?;
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

fn store_undo_stack(path: &str, stack: &[String]) -> Result<(), ToolError> {
    let json = serde_json::to_vec(stack).map_err(|e| ToolError::Failed(e.to_string()))?;
    files::write(&undo_file(path), &json).map_err(ToolError::from)
}

fn save_undo(path: &str, previous: &str) -> Result<(), ToolError> {
    let mut stack = undo_stack(path)?;
    stack.push(previous.to_string());
    if stack.len() > MAX_UNDO {
        stack.remove(0);
    }
    store_undo_stack(path, &stack)
}

fn write(path: &str, content: &str) -> Result<(), ToolError> {
    files::write(path, content.as_bytes()).map_err(ToolError::from)
}

fn view(path: &str, range: Option<[i64; 2]>) -> Result<ToolOutput, ToolError> {
    if let Some(EntryKind::Directory) = files::stat(path)?.map(|e| e.kind) {
        let mut entries = files::list_dir(path)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let listing: Vec<String> = entries
            .into_iter()
            .filter(|e| !e.name.starts_with('.'))
            .map(|e| {
                if e.kind == EntryKind::Directory {
                    format!("{}/", e.name)
                } else {
                    e.name
                }
            })
            .collect();
        return Ok(text(format!("Files in {path}:\n{}", listing.join("\n"))));
    }
    let content = read_text(path)?;
    let lines: Vec<&str> = content.lines().collect();
    let (first, body) = match range {
        None => (1, content.clone()),
        Some([start, end]) => {
            let last = if end == -1 { lines.len() as i64 } else { end };
            if start < 1
                || start > lines.len().max(1) as i64
                || last < start
                || last > lines.len() as i64
            {
                return Err(invalid(format!(
                    "view_range [{start}, {end}] is outside the file's {} lines",
                    lines.len()
                )));
            }
            (
                start as usize,
                lines[start as usize - 1..last as usize].join("\n"),
            )
        }
    };
    let mut out = numbered(&body, first);
    if out.len() > MAX_VIEW_BYTES {
        let mut cut = MAX_VIEW_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n[file truncated: use view_range to see the rest]");
    }
    Ok(text(format!(
        "Here's the result of running `cat -n` on {path}:\n{out}"
    )))
}

fn run(input: Input) -> Result<ToolOutput, ToolError> {
    let path = input.path.as_str();
    if !path.starts_with('/') {
        return Err(invalid(format!(
            "`{path}` is not an absolute path; paths must start with /"
        )));
    }
    let command = input.command.as_str();
    match command {
        "view" => view(path, input.view_range),
        "create" => {
            let file_text = need(input.file_text, "file_text", command)?;
            if let Some(e) = files::stat(path)? {
                if e.kind == EntryKind::Directory {
                    return Err(invalid(format!("{path} is a directory")));
                }
                save_undo(path, &read_text(path)?)?;
            }
            write(path, &file_text)?;
            Ok(text(format!("File created successfully at: {path}")))
        }
        "str_replace" => {
            let old = need(input.old_str, "old_str", command)?;
            if old.is_empty() {
                return Err(invalid("`old_str` must not be empty"));
            }
            let new = input.new_str.unwrap_or_default();
            let content = read_text(path)?;
            match content.matches(old.as_str()).count() {
                0 => Err(invalid(format!("No replacement was performed: old_str did not appear verbatim in {path}."))),
                1 => {
                    save_undo(path, &content)?;
                    let updated = content.replacen(old.as_str(), &new, 1);
                    write(path, &updated)?;
                    let at = updated[..updated.find(new.as_str()).unwrap_or(0)].lines().count().max(1);
                    let lines: Vec<&str> = updated.lines().collect();
                    let from = at.saturating_sub(4).max(1);
                    let to = (at + new.lines().count() + 4).min(lines.len());
                    let snippet = if from <= to { numbered(&lines[from - 1..to].join("\n"), from) } else { String::new() };
                    Ok(text(format!("The file {path} has been edited. Here's a snippet of the result:\n{snippet}")))
                }
                n => Err(invalid(format!(
                    "No replacement was performed: old_str appears {n} times in {path}; make it unique."
                ))),
            }
        }
        "insert" => {
            let line = need(input.insert_line, "insert_line", command)?;
            let new = need(input.insert_text.or(input.new_str), "insert_text", command)?;
            let content = read_text(path)?;
            let mut lines: Vec<&str> = content.lines().collect();
            if line > lines.len() {
                return Err(invalid(format!(
                    "insert_line {line} is past the file's {} lines",
                    lines.len()
                )));
            }
            save_undo(path, &content)?;
            let inserted: Vec<&str> = new.lines().collect();
            lines.splice(line..line, inserted);
            let mut updated = lines.join("\n");
            if content.ends_with('\n') || content.is_empty() {
                updated.push('\n');
            }
            write(path, &updated)?;
            Ok(text(format!(
                "The file {path} has been edited: text inserted after line {line}."
            )))
        }
        "undo_edit" => {
            let mut stack = undo_stack(path)?;
            let previous = stack
                .pop()
                .ok_or_else(|| invalid(format!("No edit history found for {path}.")))?;
            write(path, &previous)?;
            store_undo_stack(path, &stack)?;
            Ok(text(format!("Last edit to {path} undone.")))
        }
        other => Err(invalid(format!(
            "unknown command `{other}`: use view, create, str_replace, insert or undo_edit"
        ))),
    }
}

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
    "path": {"type": "string", "description": "Absolute path of a file or directory"},
    "file_text": {"type": "string", "description": "Content for `create`"},
    "old_str": {"type": "string", "description": "Exact text to replace, for `str_replace`; must occur once"},
    "new_str": {"type": "string", "description": "Replacement for `str_replace`"},
    "insert_line": {"type": "integer", "minimum": 0, "description": "Insert after this line (0 = at the top)"},
    "insert_text": {"type": "string", "description": "Text to insert, for `insert`"},
    "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
      "description": "[start, end] lines for `view`, 1-based; end -1 means to the end"}
  },
  "required": ["command", "path"],
  "additionalProperties": false
}"#;

struct Editor;

impl Guest for Editor {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: TOOL_NAME.into(),
            description:
                "View, create and edit text files in the sandbox. `view` shows a file with line \
                numbers or lists a directory; `str_replace` replaces one exact, unique occurrence; \
                `insert` adds text after a line; `undo_edit` reverts the last edit of a file."
                    .into(),
            input_schema: SCHEMA.into(),
        }]
    }

    fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
        if call.name != TOOL_NAME {
            return Err(invalid(format!(
                "this component has no tool `{}`",
                call.name
            )));
        }
        let input: Input = agenthost_sdk::input(&call)?;
        run(input)
    }
}

export!(Editor);
