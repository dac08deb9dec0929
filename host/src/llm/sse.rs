//! A server-sent events reader over a byte stream, enough for the
//! providers' streaming APIs: `event:` and `data:` fields, events separated
//! by a blank line, `\n` or `\r\n` line ends, comments ignored.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::LlmError;

/// Longest a single event may grow before its blank line arrives.
const MAX_EVENT_BYTES: usize = 16 << 20;
/// Most a whole response may stream. Everything a provider accumulates
/// (text, reasoning, tool input, opaque blocks) comes through here, so
/// this bounds the memory one model reply can take.
const MAX_STREAM_BYTES: usize = 64 << 20;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

pub struct SseReader<S> {
    stream: S,
    buffer: Vec<u8>,
    read: usize,
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
            read: 0,
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
                Some(Ok(chunk)) => {
                    self.read += chunk.len();
                    if self.read > MAX_STREAM_BYTES {
                        return Err(LlmError::Stream(format!(
                            "the response is over {} MiB",
                            MAX_STREAM_BYTES >> 20
                        )));
                    }
                    if self.buffer.len() + chunk.len() > MAX_EVENT_BYTES {
                        return Err(LlmError::Stream(format!(
                            "one event is over {} MiB",
                            MAX_EVENT_BYTES >> 20
                        )));
                    }
                    self.buffer.extend_from_slice(&chunk);
                }
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

    #[tokio::test]
    async fn an_endless_event_or_stream_is_cut_off() {
        let chunk = Bytes::from(vec![b'x'; 1 << 20]);
        let endless = futures_util::stream::repeat(chunk).map(Ok::<_, String>);
        let err = SseReader::new(endless).next().await.unwrap_err();
        assert!(err.to_string().contains("one event is over"), "{err}");

        let event = Bytes::from(format!("data: {}\n\n", "y".repeat(1 << 20)));
        let endless = futures_util::stream::repeat(event).map(Ok::<_, String>);
        let mut reader = SseReader::new(endless);
        let err = loop {
            if let Err(e) = reader.next().await {
                break e;
            }
        };
        assert!(err.to_string().contains("the response is over"), "{err}");
    }
}
