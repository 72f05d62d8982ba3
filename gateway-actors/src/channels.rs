//! JSON channels of a job: the control writer (gateway → worker, one message per segment,
//! with a keepalive) and the readers of events (one JSON object per segment) and data (JSON
//! lines).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_core::trickle::{SeqSpec, CONTROL_KEEPALIVE_INTERVAL, MIME_JSON};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::trickle::{
    PublisherConfig, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};

/// Largest JSON segment accepted from a worker.
pub(crate) const MAX_JSON_SEGMENT_BYTES: usize = 1024 * 1024;

/// Writes control messages; keeps the channel alive with `{"keep":"alive"}`.
pub struct ControlWriter {
    publisher: Arc<Mutex<Option<TricklePublisher>>>,
    keepalive: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlWriter").finish_non_exhaustive()
    }
}

impl ControlWriter {
    /// Connects to `url`; with `keepalive` a task writes the keepalive message every
    /// [`CONTROL_KEEPALIVE_INTERVAL`].
    pub async fn connect(http: reqwest::Client, url: &str, keepalive: Option<Duration>) -> ControlWriter {
        let config = PublisherConfig { mime: MIME_JSON.to_owned(), ..Default::default() };
        let publisher = Arc::new(Mutex::new(Some(TricklePublisher::start(http, url, config).await)));
        let keepalive = keepalive.map(|every| {
            let p = publisher.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let mut guard = p.lock().await;
                    let Some(publisher) = guard.as_mut() else { return };
                    if let Err(e) = publisher.write_segment(Bytes::from_static(br#"{"keep":"alive"}"#)).await
                    {
                        if e.is_terminal() {
                            return;
                        }
                    }
                }
            })
        });
        ControlWriter { publisher, keepalive }
    }

    /// The default keepalive interval.
    pub(crate) fn default_keepalive() -> Option<Duration> {
        Some(CONTROL_KEEPALIVE_INTERVAL)
    }

    /// Sends one message as one segment.
    pub async fn send(&self, message: &Value) -> Result<u64, TrickleError> {
        let mut guard = self.publisher.lock().await;
        let publisher = guard.as_mut().ok_or(TrickleError::EndOfStream)?;
        publisher.write_segment(Bytes::from(message.to_string())).await
    }

    /// Stops the keepalive and deletes the channel.
    pub async fn close(mut self) {
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        if let Some(p) = self.publisher.lock().await.take() {
            p.close().await;
        }
    }
}

impl Drop for ControlWriter {
    fn drop(&mut self) {
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
    }
}

/// Reads JSON messages from a channel: one object per segment, or JSON lines.
#[derive(Debug)]
pub struct JsonReader {
    subscriber: TrickleSubscriber,
    pending: VecDeque<Value>,
}

impl JsonReader {
    /// A reader of `url` starting at `start`.
    pub fn new(http: impl Into<SegmentGetClient>, url: &str, start: SeqSpec) -> JsonReader {
        JsonReader::from_subscriber(TrickleSubscriber::new(http, url, JsonReader::config(start)))
    }

    /// A JSON channel's subscriber settings: start at `start`, segments capped in size.
    pub(crate) fn config(start: SeqSpec) -> SubscriberConfig {
        SubscriberConfig { start, max_segment_bytes: Some(MAX_JSON_SEGMENT_BYTES), ..Default::default() }
    }

    /// Reads JSON from `subscriber`'s channel (made with [`JsonReader::config`]).
    pub(crate) fn from_subscriber(subscriber: TrickleSubscriber) -> JsonReader {
        JsonReader { subscriber, pending: VecDeque::new() }
    }

    /// The next message; `Ok(None)` at the end of the stream. Lines that are not JSON are
    /// returned as JSON strings rather than dropped.
    ///
    /// Not cancel-safe: a call dropped while a segment is being read loses that segment. To
    /// wait on events beside other things (`tokio::select!` in a loop), read on a task of its
    /// own and select on a channel.
    pub async fn next(&mut self) -> Result<Option<Value>, TrickleError> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Ok(Some(v));
            }
            let Some(segment) = self.subscriber.next_segment().await? else { return Ok(None) };
            let body = segment.read_all().await?;
            self.pending.extend(parse_messages(&body));
        }
    }

    /// Stops reading.
    pub fn close(&mut self) {
        self.subscriber.close();
    }
}

/// Splits a segment into messages: a single JSON document, or one per non-empty line.
pub(crate) fn parse_messages(body: &[u8]) -> Vec<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return vec![v];
    }
    body.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(l).into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_documents_and_lines() {
        assert_eq!(parse_messages(br#"{"a":1}"#), vec![serde_json::json!({"a":1})]);
        assert_eq!(
            parse_messages(b"{\"a\":1}\n{\"b\":2}\n"),
            vec![serde_json::json!({"a":1}), serde_json::json!({"b":2})]
        );
        assert_eq!(
            parse_messages(b"{\"a\":1}\nnot json\n"),
            vec![serde_json::json!({"a":1}), serde_json::json!("not json")]
        );
        assert!(parse_messages(b"\n \n").is_empty());
    }
}
