//! A session to take away: its whole log and screenshots as JSON Lines
//! (to process or archive) or as one self-contained HTML page (to read or
//! share; it opens offline, screenshots inline).
//!
//! Everything in a log is hostile input here: model text, tool output and
//! titles are escaped, never interpreted, and the page carries a CSP that
//! allows no script, no form and nothing fetched from anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::json;

use crate::event::{Event, EventBody, StoredPart};
use crate::store::{Session, Store, StoreError, StoredImage};

/// Most image bytes one export holds in memory (a long session has a few
/// hundred screenshots of 50 to 200 KB each). An export builds its file in
/// memory, about 2.5 times this at its peak (bytes, base64, the page).
pub const MAX_IMAGE_BYTES: usize = 64 << 20;
/// Exports the host builds at once; more wait their turn as a 429, so
/// exports can never take the memory that sessions run in.
pub const MAX_CONCURRENT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the session's screenshots are over the export limit of {limit} bytes")]
    TooLarge { limit: usize },
}

/// A session's log and the screenshots it refers to.
pub struct Export {
    pub session: Session,
    pub events: Vec<Event>,
    pub images: BTreeMap<String, StoredImage>,
}

impl Export {
    pub async fn load(store: &Store, session: Session) -> Result<Self, ExportError> {
        let events = store.all_events_after(&session.id, 0).await?;
        let mut images = BTreeMap::new();
        let mut total = 0usize;
        for sha in events.iter().flat_map(image_hashes) {
            if images.contains_key(sha) {
                continue;
            }
            match store.image(&session.id, sha).await {
                Ok(image) => {
                    total += image.bytes.len();
                    if total > MAX_IMAGE_BYTES {
                        return Err(ExportError::TooLarge {
                            limit: MAX_IMAGE_BYTES,
                        });
                    }
                    images.insert(sha.to_string(), image);
                }
                // Referenced but gone: the export says so where it was.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Self {
            session,
            events,
            images,
        })
    }

    /// One JSON object per line: the session, then every event in the wire
    /// format the API uses, then every screenshot (base64).
    pub fn jsonl(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, value: serde_json::Value| {
            out.push_str(&value.to_string());
            out.push('\n');
        };
        line(
            &mut out,
            json!({"type": "session", "session": serde_json::to_value(&self.session).unwrap_or_default()}),
        );
        for event in &self.events {
            line(
                &mut out,
                json!({"type": "event", "event": serde_json::to_value(event).unwrap_or_default()}),
            );
        }
        for image in self.images.values() {
            line(
                &mut out,
                json!({
                    "type": "image", "sha256": image.sha256, "media_type": image.media_type,
                    "width": image.width, "height": image.height,
                    "data": base64::engine::general_purpose::STANDARD.encode(&image.bytes),
                }),
            );
        }
        out
    }

    /// The conversation as a page that needs nothing but itself.
    pub fn html(&self) -> String {
        let title = if self.session.title.is_empty() {
            "Agent session".to_string()
        } else {
            self.session.title.clone()
        };
        let mut body = String::new();
        for event in &self.events {
            self.render(&mut body, event);
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{STYLE}</style></head>\n<body><main>\n\
             <h1>{title}</h1>\n<p class=\"meta\">Session {id} · policy {policy} · {input} in / {output} out tokens · exported from Agent Host</p>\n\
             <ol class=\"log\">\n{body}</ol>\n</main></body></html>\n",
            title = escape(&title),
            id = escape(&self.session.id),
            policy = escape(&self.session.policy),
            input = self.session.input_tokens,
            output = self.session.output_tokens,
        )
    }

    fn render(&self, out: &mut String, event: &Event) {
        let seq = event.seq;
        let _ = match &event.body {
            EventBody::UserMessage(t) => writeln!(
                out,
                "<li class=\"user\" data-seq=\"{seq}\"><div class=\"bubble\">{}</div></li>",
                escape(&t.text)
            ),
            EventBody::AssistantMessage(t) => writeln!(
                out,
                "<li class=\"agent\" data-seq=\"{seq}\"><div class=\"bubble\">{}</div></li>",
                escape(&t.text)
            ),
            EventBody::Thinking(t) => writeln!(
                out,
                "<li class=\"agent\" data-seq=\"{seq}\"><details class=\"thinking\"><summary>Thinking</summary><div>{}</div></details></li>",
                escape(&t.text)
            ),
            EventBody::ToolCall(c) => writeln!(
                out,
                "<li class=\"step\" data-seq=\"{seq}\"><div class=\"call\">{} <code>{}</code></div></li>",
                escape(&c.name),
                escape(&c.input)
            ),
            EventBody::ToolResult(r) => {
                let mut parts = String::new();
                for part in &r.content {
                    match part {
                        StoredPart::Text { text } => {
                            let _ = write!(parts, "<pre>{}</pre>", escape(text));
                        }
                        StoredPart::Image { sha256, .. } => match self.images.get(sha256) {
                            Some(img) => {
                                let _ = write!(
                                    parts,
                                    "<img class=\"shot\" alt=\"Screenshot {w}×{h}\" width=\"{w}\" height=\"{h}\" src=\"data:{mt};base64,{data}\">",
                                    w = img.width,
                                    h = img.height,
                                    mt = escape(&img.media_type),
                                    data = base64::engine::general_purpose::STANDARD.encode(&img.bytes),
                                );
                            }
                            None => parts.push_str("<p class=\"missing\">[screenshot no longer stored]</p>"),
                        },
                    }
                }
                writeln!(
                    out,
                    "<li class=\"result{}\" data-seq=\"{seq}\">{parts}<small>{} · {} ms</small></li>",
                    if r.is_error { " error" } else { "" },
                    escape(&r.name),
                    r.duration_ms
                )
            }
            EventBody::StateChanged(s) => writeln!(
                out,
                "<li class=\"system\" data-seq=\"{seq}\">{}{}</li>",
                escape(s.status.as_str()),
                dash(&s.reason)
            ),
            EventBody::PolicySwitched(p) => writeln!(
                out,
                "<li class=\"system\" data-seq=\"{seq}\">policy switched from {} to {}</li>",
                escape(&p.from),
                escape(&p.to)
            ),
            EventBody::Error(e) => writeln!(
                out,
                "<li class=\"system error\" data-seq=\"{seq}\">error ({}): {}</li>",
                escape(&e.code),
                escape(&e.message)
            ),
            EventBody::ApprovalRequested(a) => writeln!(
                out,
                "<li class=\"system\" data-seq=\"{seq}\">{} waits for approval: {}</li>",
                escape(&a.name),
                escape(&a.reason)
            ),
            EventBody::ApprovalDecided(d) => writeln!(
                out,
                "<li class=\"system\" data-seq=\"{seq}\">{}{}</li>",
                escape(d.outcome.as_str()),
                dash(&d.note)
            ),
            // Bookkeeping a reader does not need.
            EventBody::SettingsChanged(_)
            | EventBody::RecordingSaved(_)
            | EventBody::Usage(_)
            | EventBody::ControlChanged(_)
            | EventBody::ProviderPart(_)
            | EventBody::AssistantDelta(_)
            | EventBody::Unknown { .. } => Ok(()),
        };
    }
}

fn image_hashes(event: &Event) -> Vec<&str> {
    match &event.body {
        EventBody::ToolResult(r) => r
            .content
            .iter()
            .filter_map(|p| match p {
                StoredPart::Image { sha256, .. } => Some(sha256.as_str()),
                StoredPart::Text { .. } => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// ` — why`, escaped, or nothing when there is no why.
fn dash(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" — {}", escape(why))
    }
}

/// Text as HTML text or attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;background:#f5f6f8;color:#1f2933;margin:0}\
main{max-width:60rem;margin:0 auto;padding:1.5rem}h1{font-size:1.3rem;margin:0 0 .2rem}\
.meta{color:#66727f;font-size:.85rem}.log{list-style:none;padding:0;display:flex;flex-direction:column;gap:.6rem}\
.bubble{display:inline-block;max-width:85%;padding:.5rem .8rem;border-radius:12px;background:#fff;border:1px solid #dde1e6;white-space:pre-wrap;overflow-wrap:anywhere}\
.user{text-align:right}.user .bubble{background:#2563eb;color:#fff;border:none;text-align:left}\
.step .call{font-family:ui-monospace,monospace;font-size:.85rem;color:#374151}.step code{white-space:pre-wrap;overflow-wrap:anywhere}\
.result{background:#fff;border:1px solid #dde1e6;border-left:3px solid #2563eb;border-radius:6px;padding:.4rem .6rem}\
.result.error{border-left-color:#c2410c}.result pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem;margin:.2rem 0}\
.result small{color:#66727f}.shot{max-width:100%;height:auto;display:block;border:1px solid #dde1e6;margin:.3rem 0}\
.system{text-align:center;color:#66727f;font-size:.8rem}.system.error{color:#c2410c}\
.thinking{color:#66727f;font-size:.85rem}.thinking div{white-space:pre-wrap}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Source, Text, ToolResult};
    use crate::store::SessionStatus;

    fn event(seq: i64, body: EventBody) -> Event {
        Event {
            id: format!("evt_{seq}"),
            seq,
            session_id: "ses_1".into(),
            source: Source::Agent,
            ts: 1,
            body,
        }
    }

    fn export() -> Export {
        let png = vec![0x89, b'P', b'N', b'G'];
        let sha = "ab".repeat(32);
        Export {
            session: Session {
                id: "ses_1".into(),
                user_id: "u".into(),
                title: "<script>alert(1)</script>".into(),
                status: SessionStatus::Idle,
                policy: "scripted-policy".into(),
                created_at: 1,
                updated_at: 2,
                last_seq: 3,
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: 0.0,
                settings: Default::default(),
            },
            events: vec![
                event(1, EventBody::user_message("look <b>here</b>")),
                event(
                    2,
                    EventBody::AssistantMessage(Text {
                        text: "<form action=x><input name=p></form>".into(),
                    }),
                ),
                event(
                    3,
                    EventBody::ToolResult(ToolResult {
                        tool_use_id: "c1".into(),
                        name: "computer".into(),
                        content: vec![StoredPart::Image {
                            sha256: sha.clone(),
                            width: 2,
                            height: 1,
                            media_type: "image/png".into(),
                        }],
                        is_error: false,
                        duration_ms: 4,
                    }),
                ),
            ],
            images: BTreeMap::from([(
                sha.clone(),
                StoredImage {
                    sha256: sha,
                    media_type: "image/png".into(),
                    width: 2,
                    height: 1,
                    bytes: png,
                },
            )]),
        }
    }

    #[test]
    fn the_page_escapes_everything_and_inlines_screenshots() {
        let html = export().html();
        assert!(
            !html.contains("<script>") && !html.contains("<form"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("look &lt;b&gt;here&lt;/b&gt;"));
        assert!(
            html.contains("src=\"data:image/png;base64,iVBORw==\""),
            "{html}"
        );
        assert!(html.contains("default-src 'none'"));
    }

    #[test]
    fn json_lines_hold_the_session_every_event_and_every_image_once() {
        let text = export().jsonl();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["session", "event", "event", "event", "image"]);
        assert_eq!(lines[1]["event"]["kind"], "user_message");
        assert_eq!(lines[4]["data"], "iVBORw==");
        // An event line reads back as the same event.
        let back: Event = serde_json::from_value(lines[3]["event"].clone()).unwrap();
        assert_eq!(back, export().events[2]);
    }
}
