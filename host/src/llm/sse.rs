//! A server-sent events reader over a byte stream, enough for the
//! providers' streaming APIs: `event:` and `data:` fields, events separated
//! by a blank line, `\n` or `\r\n` line ends, comments ignored.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::LlmError;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

pub struct SseReader<S> {
    stream: S,
    buffer: Vec<u8>,
    done: bool,
}

impl<S, E> SseReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next complete event; `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, LlmError> {
        loop {
            if let Some(event) = self.take_event() {
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(LlmError::Stream(e.to_string())),
                None => {
                    self.done = true;
                    // A final event without its blank line still counts.
                    if !self.buffer.iter().all(|b| b.is_ascii_whitespace()) {
                        self.buffer.extend_from_slice(b"\n\n");
                    }
                }
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let (end, sep) = find_blank_line(&self.buffer)?;
            let raw: Vec<u8> = self.buffer.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let mut event = SseEvent::default();
            let mut has_data = false;
            for line in text.lines() {
                // The separator search splits `\r\n\r\n` after the first
                // `\r`, which would stay on the last line.
                let line = line.strip_suffix('\r').unwrap_or(line);
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => event.event = Some(value.to_string()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data || event.event.is_some() {
                return Some(event);
            }
        }
    }
}

/// Position and length of the first blank-line separator.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn events(chunks: &[&str]) -> Vec<SseEvent> {
        let items: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from(c.to_string())))
            .collect();
        let mut reader = SseReader::new(futures_util::stream::iter(items));
        let mut out = Vec::new();
        while let Some(e) = reader.next().await.unwrap() {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn splits_events_across_chunks_and_line_ends() {
        let got = events(&[
            "event: a\ndata: {\"x\"",
            ":1}\n\n: comment\n\nevent: b\r\ndata: one\r\ndata: two\r\n\r\n",
            "data: [DONE]",
        ])
        .await;
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "{\"x\":1}".into()
                },
                SseEvent {
                    event: Some("b".into()),
                    data: "one\ntwo".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }
}
