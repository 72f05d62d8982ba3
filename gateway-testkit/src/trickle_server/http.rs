//! The trickle HTTP routes (`POST`, `GET` and `DELETE` of channels and segments), with the
//! channel's faults applied to segment requests.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use gateway_core::trickle::{
    SeqSpec, BASE_PATH, CLOSED_VALUE, ENTRY_NOT_FOUND_BODY, HEADER_CLOSED, HEADER_EXPECT_CONTENT,
    HEADER_LATEST, HEADER_RESET, HEADER_SEQ, NEXT_PATH, STATUS_SEGMENT_NOT_AVAILABLE,
};
use http_body_util::BodyExt;

use super::config::FaultMethod;
use super::store::{Channel, ChunkRead, Segment};
use super::{Counters, Inner, TrickleServer};

/// Error bodies go-livepeer sends (through Go's `http.Error`, which appends a newline).
const STREAM_NOT_FOUND: &str = "Stream not found";
const INVALID_IDX: &str = "Invalid idx";
const INVALID_STREAM: &str = "Invalid stream";
const NONEXISTENT_SEGMENT: &str = "Nonexistent segment";
const SERVER_ERROR: &str = "Server error";

/// Parses a `{seq}` path element: `-1`, `-2` or an index whose successor still fits an `i64`.
pub(super) fn parse_seq(raw: &str) -> Option<SeqSpec> {
    match raw.parse::<i64>().ok().and_then(SeqSpec::from_wire)? {
        SeqSpec::At(n) if n >= i64::MAX as u64 => None,
        spec => Some(spec),
    }
}

impl TrickleServer {
    /// The HTTP routes, under [`BASE_PATH`], with this server as state; merge it into a bigger
    /// axum app or serve it alone.
    pub fn router(&self) -> Router {
        let channel_path = format!("{BASE_PATH}{{channel}}");
        let segment_path = format!("{BASE_PATH}{{channel}}/{{seq}}");
        Router::new()
            .route(&channel_path, post(http_create_channel).delete(http_delete_channel))
            .route(&segment_path, get(http_get_segment).post(http_post_segment).delete(http_delete_segment))
            .with_state(self.inner.clone())
    }
}

/// Counts a request as active while it lives (it moves into streamed bodies).
struct ActiveGuard {
    counters: Arc<Counters>,
    post: bool,
}

impl ActiveGuard {
    fn new(counters: &Arc<Counters>, post: bool) -> ActiveGuard {
        let counter = if post { &counters.active_posts } else { &counters.active_gets };
        counter.fetch_add(1, Ordering::Relaxed);
        ActiveGuard { counters: counters.clone(), post }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let counter = if self.post { &self.counters.active_posts } else { &self.counters.active_gets };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sets a header; names are protocol constants and values numbers or stored mime types, so a
/// value that is not a valid header (a mime type from a client) is left out rather than fail.
fn set_header(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Like Go's `http.Error`: plain text, message plus newline.
pub(super) fn text_error(status: StatusCode, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    set_header(&mut headers, "Content-Type", "text/plain; charset=utf-8");
    set_header(&mut headers, "X-Content-Type-Options", "nosniff");
    (status, headers, format!("{message}\n")).into_response()
}

fn status_470() -> StatusCode {
    StatusCode::from_u16(STATUS_SEGMENT_NOT_AVAILABLE).unwrap_or(StatusCode::NOT_FOUND)
}

/// "Segment missing" for an existing channel: 470 while open, 200 + Closed once closed.
pub(super) fn entry_not_found(idx: u64, next_write: u64, closed: bool) -> Response {
    let mut headers = HeaderMap::new();
    set_header(&mut headers, HEADER_LATEST, &next_write.to_string());
    set_header(&mut headers, HEADER_SEQ, &idx.to_string());
    set_header(&mut headers, "Content-Type", "text/plain; charset=utf-8");
    let status = if closed {
        set_header(&mut headers, HEADER_CLOSED, CLOSED_VALUE);
        StatusCode::OK
    } else {
        status_470()
    };
    (status, headers, ENTRY_NOT_FOUND_BODY).into_response()
}

/// A response whose body fails at once: hyper then drops the connection without writing the
/// (still buffered) head, which is how a mid-body network failure looks to the client.
fn abort_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// The answer to a request caught by a `RespondStatus` fault.
fn injected_status(inner: &Inner, channel: &str, seq: &str, status: u16, method: FaultMethod) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let chan = inner.channel(channel);
    let next_write = chan.as_ref().map_or(0, |c| c.state().next_write);
    let idx = match parse_seq(seq) {
        Some(SeqSpec::At(n)) => n,
        Some(SeqSpec::Current) => next_write.saturating_sub(1),
        Some(SeqSpec::Next) | None => next_write,
    };
    let mut response = match status.as_u16() {
        STATUS_SEGMENT_NOT_AVAILABLE => entry_not_found(idx, next_write, false),
        404 => text_error(status, STREAM_NOT_FOUND),
        500 => text_error(status, SERVER_ERROR),
        200 => {
            let mut headers = HeaderMap::new();
            set_header(&mut headers, HEADER_SEQ, &idx.to_string());
            (status, headers).into_response()
        }
        _ => text_error(status, status.canonical_reason().unwrap_or("Injected fault")),
    };
    if method == FaultMethod::Post {
        // The body is not read; the connection cannot be reused (and a 404 must wake
        // preconnected publishers, as go-livepeer's does).
        set_header(response.headers_mut(), "Connection", "close");
    }
    response
}

/// `POST {chan}`: create, only if it exists already or autocreate is on.
async fn http_create_channel(
    State(inner): State<Arc<Inner>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mime = header_str(&headers, HEADER_EXPECT_CONTENT).unwrap_or("");
    match inner.channel_or_autocreate(&channel, mime) {
        Some(_) => StatusCode::OK.into_response(),
        None => text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND),
    }
}

/// `DELETE {chan}`: 400 (not 404) when missing, as go-livepeer answers.
async fn http_delete_channel(State(inner): State<Arc<Inner>>, Path(channel): Path<String>) -> Response {
    if inner.close_channel(&channel) {
        StatusCode::OK.into_response()
    } else {
        text_error(StatusCode::BAD_REQUEST, INVALID_STREAM)
    }
}

/// `DELETE {chan}/{seq}`: close one segment, releasing its readers.
async fn http_delete_segment(
    State(inner): State<Arc<Inner>>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    let Some(chan) = inner.channel(&channel) else {
        return text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
    };
    let Some(spec) = parse_seq(&seq) else {
        return text_error(StatusCode::BAD_REQUEST, INVALID_IDX);
    };
    let idx = {
        let st = chan.state();
        match spec {
            SeqSpec::Next => st.next_write,
            SeqSpec::Current => st.next_write.saturating_sub(1),
            SeqSpec::At(n) => n,
        }
    };
    match chan.segment_at(idx) {
        Some(seg) => {
            seg.close();
            StatusCode::OK.into_response()
        }
        None => text_error(StatusCode::BAD_REQUEST, NONEXISTENT_SEGMENT),
    }
}

/// How reading a POST body ended.
enum BodyEnd {
    /// EOF, or the segment was closed before the first byte (a woken preconnect).
    Eof,
    /// The body failed (client gone): 500, segment left open.
    ReadError,
    /// A `DropAfterBytes` fault fired.
    Abort,
    /// A stall was ended by the segment closing.
    StallReleased,
}

/// `POST {chan}/{seq}`: publish one segment.
async fn http_post_segment(
    State(inner): State<Arc<Inner>>,
    Path((channel, seq)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _active = ActiveGuard::new(&inner.counters, true);
    if let Some(status) = inner.take_respond_status(&channel, FaultMethod::Post) {
        return injected_status(&inner, &channel, &seq, status, FaultMethod::Post);
    }
    let mime = header_str(&headers, "Content-Type").unwrap_or("");
    let Some(chan) = inner.channel_or_autocreate(&channel, mime) else {
        // `Connection: close` wakes preconnected Go publishers.
        let mut response = text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
        set_header(response.headers_mut(), "Connection", "close");
        return response;
    };
    let idx = match parse_seq(&seq) {
        Some(SeqSpec::At(n)) => Some(n),
        Some(SeqSpec::Next) => None,
        Some(SeqSpec::Current) | None => return text_error(StatusCode::BAD_REQUEST, INVALID_IDX),
    };
    let segment = chan.segment_for_write(idx, &inner.counters);
    if header_str(&headers, HEADER_RESET).is_some_and(|v| !v.is_empty()) {
        chan.reset_below(segment.idx);
    }

    // hyper may drop this handler mid-body (the client hung up): the tally still counts it.
    let mut tally = PostTally { inner: &inner, channel: &chan.name, settled: false };
    let (end, total) = read_post_body(&inner, &chan, &segment, body).await;
    tally.settle(&end, total);
    match end {
        BodyEnd::ReadError | BodyEnd::StallReleased => {
            tracing::debug!(channel = %chan.name, seq = segment.idx, total, "trickle: POST body failed");
            text_error(StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR)
        }
        BodyEnd::Abort => abort_connection(),
        BodyEnd::Eof => {
            let mut out = HeaderMap::new();
            set_header(&mut out, HEADER_SEQ, &segment.idx.to_string());
            if total == 0 {
                // Advance anyway so clients do not fail on the next index; the connection is
                // closed because an unread preconnected body may still be pending.
                chan.mark_written(segment.idx);
                if chan.is_closed() {
                    set_header(&mut out, HEADER_CLOSED, CLOSED_VALUE);
                }
                set_header(&mut out, "Connection", "close");
            } else {
                inner.counters.segments_completed.fetch_add(1, Ordering::Relaxed);
            }
            segment.close();
            (StatusCode::OK, out).into_response()
        }
    }
}

/// Streams a POST body into `segment`, applying the channel's byte faults. Returns how it ended
/// and how many bytes were stored.
async fn read_post_body(inner: &Inner, chan: &Channel, segment: &Segment, mut body: Body) -> (BodyEnd, u64) {
    let mut total: u64 = 0;
    loop {
        let frame = if total == 0 {
            // Before the first byte, closing the segment (channel delete, slot reuse) releases
            // a preconnected publisher.
            tokio::select! {
                biased;
                frame = body.frame() => frame,
                _ = segment.wait_closed() => return (BodyEnd::Eof, 0),
            }
        } else {
            body.frame().await
        };
        let mut data = match frame {
            None => return (BodyEnd::Eof, total),
            Some(Err(_)) => return (BodyEnd::ReadError, total),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers carry nothing for trickle
            },
        };
        while !data.is_empty() {
            let len = data.len() as u64;
            if let Some(limit) = inner.take_counted(&chan.name, false, total, len) {
                let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                return (BodyEnd::Abort, total);
            }
            if let Some(limit) = inner.take_counted(&chan.name, true, total, len) {
                let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                // Held until the segment closes: this fault is never lifted by time.
                segment.wait_closed().await;
                return (BodyEnd::StallReleased, total);
            }
            let faults = inner.faults(&chan.name);
            if let Some(limit) = faults.drop_after {
                if total.saturating_add(data.len() as u64) > limit {
                    let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                    store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                    return (BodyEnd::Abort, total);
                }
            }
            if let Some(limit) = faults.stall_after {
                if total.saturating_add(data.len() as u64) > limit {
                    let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                    store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                    if !wait_stall_released(inner, &chan.name, segment, total).await {
                        return (BodyEnd::StallReleased, total);
                    }
                    continue; // faults changed: re-check them for the rest of this chunk
                }
            }
            store(inner, chan, segment, &mut total, std::mem::take(&mut data));
        }
    }
}

/// Settles a POST in its channel's [`ChannelTotals`] once, even if the handler is dropped.
struct PostTally<'a> {
    inner: &'a Inner,
    channel: &'a str,
    settled: bool,
}

impl PostTally<'_> {
    fn settle(&mut self, end: &BodyEnd, total: u64) {
        self.settled = true;
        self.inner.add_totals(self.channel, |t| match end {
            BodyEnd::Eof if total > 0 => {
                t.segments_completed += 1;
                t.bytes_completed += total;
            }
            BodyEnd::Eof => {}
            BodyEnd::ReadError | BodyEnd::Abort | BodyEnd::StallReleased => t.posts_failed += 1,
        });
    }
}

impl Drop for PostTally<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.inner.add_totals(self.channel, |t| t.posts_failed += 1);
        }
    }
}

/// Stores a chunk of a POST body; its bytes count as received at once (the handler may never
/// finish, see [`PostTally`]).
fn store(inner: &Inner, chan: &Channel, segment: &Segment, total: &mut u64, data: Bytes) {
    if data.is_empty() {
        return;
    }
    inner.add_totals(&chan.name, |t| t.bytes_received += data.len() as u64);
    if *total == 0 {
        chan.mark_written(segment.idx);
    }
    *total += data.len() as u64;
    // Copied out, as go-livepeer's `segmentBuffer` copies into its pages
    // (trickle/segment_buffer.go): keeping the request's own bytes pins hyper's read buffer,
    // so every read allocates fresh memory (page faults; BENCHMARKS.md, scenario 1).
    segment.append(Bytes::copy_from_slice(&data));
}

/// Waits while the stall fault holds at `total` bytes. `true`: it no longer holds (keep
/// reading); `false`: the segment was closed meanwhile.
async fn wait_stall_released(inner: &Inner, channel: &str, segment: &Segment, total: u64) -> bool {
    loop {
        let notified = inner.faults_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if inner.faults(channel).stall_after.is_none_or(|limit| limit > total) {
            return true;
        }
        tokio::select! {
            _ = notified => {}
            _ = segment.wait_closed() => return false,
        }
    }
}

/// `GET {chan}/{seq}` and `GET {chan}/next`.
async fn http_get_segment(
    State(inner): State<Arc<Inner>>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    if seq == NEXT_PATH {
        return http_next(&inner, &channel);
    }
    let active = ActiveGuard::new(&inner.counters, false);
    if let Some(status) = inner.take_respond_status(&channel, FaultMethod::Get) {
        return injected_status(&inner, &channel, &seq, status, FaultMethod::Get);
    }
    let Some(chan) = inner.channel(&channel) else {
        return text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
    };
    let Some(spec) = parse_seq(&seq) else {
        return text_error(StatusCode::BAD_REQUEST, INVALID_IDX);
    };
    let read = chan.segment_for_read(spec, &inner.counters);
    let Some(segment) = read.segment else {
        return entry_not_found(read.idx, read.next_write, read.closed);
    };

    // Headers wait for the first byte (or the end of the segment).
    let first = match segment.read_chunk(0).await {
        ChunkRead::Data(chunk) => chunk,
        ChunkRead::End => {
            let (next_write, closed) = {
                let st = chan.state();
                (st.next_write, st.closed)
            };
            let mut headers = HeaderMap::new();
            set_header(&mut headers, HEADER_SEQ, &segment.idx.to_string());
            set_header(&mut headers, HEADER_LATEST, &next_write.to_string());
            if closed {
                set_header(&mut headers, HEADER_CLOSED, CLOSED_VALUE);
            }
            return (StatusCode::OK, headers).into_response();
        }
    };
    if let Some(delay) = inner.faults(&channel).delay_first_byte {
        tokio::time::sleep(delay).await;
    }
    let mut headers = HeaderMap::new();
    if segment.idx != read.next_write {
        set_header(&mut headers, HEADER_LATEST, &read.next_write.to_string());
    }
    set_header(&mut headers, HEADER_SEQ, &segment.idx.to_string());
    let mime = chan.state().mime.clone();
    set_header(&mut headers, "Content-Type", &mime);

    let counters = inner.counters.clone();
    let stream = futures_util::stream::unfold(
        (segment, 0usize, Some(first), active),
        move |(segment, pos, pending, active)| {
            let counters = counters.clone();
            async move {
                let chunk = match pending {
                    Some(chunk) => chunk,
                    None => match segment.read_chunk(pos).await {
                        ChunkRead::Data(chunk) => chunk,
                        ChunkRead::End => return None,
                    },
                };
                counters.bytes_out.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Some((Ok::<Bytes, Infallible>(chunk), (segment, pos + 1, None, active)))
            }
        },
    );
    (StatusCode::OK, headers, Body::from_stream(stream)).into_response()
}

/// `GET {chan}/next`: the next write index, as body and `Lp-Trickle-Latest`.
fn http_next(inner: &Inner, channel: &str) -> Response {
    let Some(chan) = inner.channel(channel) else {
        return text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
    };
    let (next_write, closed) = {
        let st = chan.state();
        (st.next_write, st.closed)
    };
    let next = next_write.to_string();
    let mut headers = HeaderMap::new();
    set_header(&mut headers, HEADER_LATEST, &next);
    set_header(&mut headers, "Content-Type", "text/plain; charset=utf-8");
    if closed {
        set_header(&mut headers, HEADER_CLOSED, CLOSED_VALUE);
    }
    (StatusCode::OK, headers, next).into_response()
}
