//! Server-sent events (`text/event-stream`), decoded as the WHATWG HTML standard's event-stream
//! interpretation says: lines end with CRLF, LF or CR (a CRLF split across two reads is one
//! line end); `:` starts a comment; a field's value loses one leading space; `data` lines join
//! with `\n`; an empty line dispatches the event, unless it has no data. Live-runner apps
//! stream their answers this way.
//!
//! Pure: bytes in, events out, with a bound on how much one event may hold.
//!
//! ```
//! use livepeer_gateway_core::sse::SseDecoder;
//!
//! let mut decoder = SseDecoder::new(1024);
//! let events = decoder.push(b"event: token\ndata: hel").unwrap();
//! assert!(events.is_empty());
//! let events = decoder.push(b"lo\ndata: world\n\n").unwrap();
//! assert_eq!(events[0].event, "token");
//! assert_eq!(events[0].data, "hello\nworld");
//! ```

use thiserror::Error;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` when the stream named none).
    pub event: String,
    /// Its data lines, joined with `\n`.
    pub data: String,
    /// The last event id seen so far, if any.
    pub id: Option<String>,
    /// A reconnection time the stream asked for, milliseconds.
    pub retry_ms: Option<u64>,
}

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// One event (or one line) grew past the decoder's bound.
    #[error("an event exceeds {limit} bytes")]
    EventTooLarge {
        /// The bound, bytes.
        limit: usize,
    },
}

/// Decodes an event stream read in pieces.
#[derive(Debug)]
pub struct SseDecoder {
    limit: usize,
    /// The line read so far.
    line: Vec<u8>,
    /// The last byte ended a line with CR: a LF next is part of that line end.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseDecoder {
    /// A decoder that refuses an event (or line) over `limit` bytes.
    pub fn new(limit: usize) -> SseDecoder {
        SseDecoder {
            limit,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            retry_ms: None,
        }
    }

    /// Feeds the next bytes; answers the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.take_line(&line) {
                        events.push(event);
                    }
                }
                _ => {
                    self.line.push(b);
                    if self.line.len() + self.data.len() > self.limit {
                        return Err(SseError::EventTooLarge { limit: self.limit });
                    }
                }
            }
        }
        Ok(events)
    }

    /// The end of the stream: an event without its closing empty line is dropped, as the
    /// standard says.
    pub fn finish(&mut self) {
        self.line.clear();
        self.reset_event();
    }

    fn take_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.has_data {
            self.reset_event();
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the last data line's `\n`
        let event =
            if self.event.is_empty() { "message".to_owned() } else { std::mem::take(&mut self.event) };
        let out = SseEvent { event, data, id: self.last_id.clone(), retry_ms: self.retry_ms };
        self.reset_event();
        Some(out)
    }

    fn reset_event(&mut self) {
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new(1 << 16);
        chunks.iter().flat_map(|c| d.push(c).unwrap()).collect()
    }

    #[test]
    fn events_come_out_whatever_the_chunking() {
        let stream =
            b"retry: 1500\r\nid: 7\r\nevent: token\r\ndata: a\r\ndata:b\r\n\r\n: comment\n\ndata\n\n";
        let whole = decode_all(&[stream]);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(decode_all(&[a, b]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytewise), whole);
        assert_eq!(whole.len(), 2);
        assert_eq!(
            whole[0],
            SseEvent {
                event: "token".into(),
                data: "a\nb".into(),
                id: Some("7".into()),
                retry_ms: Some(1500)
            }
        );
        // A bare `data` line is an empty data line; the id carries over.
        assert_eq!(whole[1].event, "message");
        assert_eq!(whole[1].data, "");
        assert_eq!(whole[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn lone_cr_ends_lines_and_events_without_data_are_not_dispatched() {
        assert_eq!(decode_all(&[b"event: x\r\rdata: y\r\r"]).len(), 1);
        assert_eq!(decode_all(&[b"event: x\n\n"]), vec![]);
        // The event type does not leak into the next event.
        let events = decode_all(&[b"event: x\n\ndata: y\n\n"]);
        assert_eq!(events[0].event, "message");
    }

    #[test]
    fn an_unfinished_event_is_dropped_at_the_end() {
        let mut d = SseDecoder::new(1024);
        assert!(d.push(b"data: half").unwrap().is_empty());
        d.finish();
        assert!(d.push(b"data: next\n\n").unwrap()[0].data == "next");
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut d = SseDecoder::new(8);
        assert_eq!(d.push(b"data: 0123456789\n\n"), Err(SseError::EventTooLarge { limit: 8 }));
        let mut d = SseDecoder::new(12);
        assert!(d.push(b"data: 12345\n").is_ok());
        assert!(d.push(b"data: 12345\n").is_err(), "the data held counts");
    }
}
