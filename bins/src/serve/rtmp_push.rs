//! RTMP egress: a live stream's output pushed to an RTMP server, as go's gateway pushes it to
//! the `rtmpOutput` the start named (or the auth webhook's `rtmp_output_url`) with ffmpeg
//! (`server/ai_live_video.go` `ffmpegOutput`, `-c copy -f flv`, restarted while the stream
//! runs). The output's MPEG-TS is demuxed and its H.264 and AAC go out as FLV tags without
//! re-encoding ([`FlvRemuxer`] makes the tags; this file is the I/O).
//!
//! The client is the publish side of RTMP 1.0: the simple handshake, `connect`,
//! `createStream`, `publish`, then audio and video messages; the chunk and AMF0 codecs are
//! scuffle-rtmp's. A push that fails is tried again after [`RETRY_DELAY`] while the stream runs.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_actors::trickle::TrickleSubscriber;
use gateway_media::flv::{FlvRemuxer, FlvTag, FlvTagKind};
use gateway_media::ts_demux::TsDemuxer;
use scuffle_amf0::{Amf0Encoder, Amf0Value};
use scuffle_rtmp::chunk::reader::ChunkReader;
use scuffle_rtmp::chunk::writer::ChunkWriter;
use scuffle_rtmp::chunk::Chunk;
use scuffle_rtmp::messages::MessageType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Wait before pushing again after a failure (go restarts its ffmpeg every 5 s).
pub const RETRY_DELAY: Duration = Duration::from_secs(5);
/// Time allowed for the connection and each answer of the server.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The RTMP 1.0 handshake's packet (C1, S1, S2).
const HANDSHAKE_LEN: usize = 1536;
/// The chunk size we send with (the default, 128, costs a header per 128 bytes).
const CHUNK_SIZE: u32 = 4096;
/// Chunk streams: control, commands, audio, video.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_AUDIO: u32 = 4;
const CSID_VIDEO: u32 = 6;

/// Where to push: `rtmp://host[:port]/app/stream[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpTarget {
    /// `host:port` (1935 by default).
    pub addr: String,
    /// The application (the path's first segment).
    pub app: String,
    /// The stream name (the rest, with the query).
    pub stream: String,
    /// `rtmp://host[:port]/app`, what `connect` names.
    pub tc_url: String,
}

impl RtmpTarget {
    /// Reads an `rtmp://` URL; `Err` says what is wrong with it.
    pub fn parse(url: &str) -> Result<RtmpTarget, String> {
        let rest = url.strip_prefix("rtmp://").ok_or("an RTMP output must be an rtmp:// URL")?;
        let (authority, path) = rest.split_once('/').ok_or("an RTMP output needs /app/stream")?;
        let (app, stream) = path.split_once('/').ok_or("an RTMP output needs /app/stream")?;
        if authority.is_empty() || app.is_empty() || stream.is_empty() {
            return Err("an RTMP output needs a host, an app and a stream".into());
        }
        let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_owned()
        } else {
            format!("{authority}:1935")
        };
        Ok(RtmpTarget {
            addr,
            app: app.to_owned(),
            stream: stream.to_owned(),
            tc_url: format!("rtmp://{authority}/{app}"),
        })
    }
}

/// An RTMP connection publishing one stream.
struct Publisher {
    socket: TcpStream,
    reader: ChunkReader,
    writer: ChunkWriter,
    read_buf: BytesMut,
    stream_id: u32,
}

impl Publisher {
    /// Connects and asks to publish `target`.
    async fn connect(target: &RtmpTarget) -> Result<Publisher, String> {
        let socket = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(&target.addr))
            .await
            .map_err(|_| format!("connecting to {} timed out", target.addr))?
            .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
        socket.set_nodelay(true).ok();
        let mut p = Publisher {
            socket,
            reader: ChunkReader::default(),
            writer: ChunkWriter::default(),
            read_buf: BytesMut::new(),
            stream_id: 0,
        };
        p.handshake().await?;
        p.send(Chunk::new(
            CSID_CONTROL,
            0,
            MessageType::SetChunkSize,
            0,
            Bytes::copy_from_slice(&CHUNK_SIZE.to_be_bytes()),
        ))
        .await?;
        p.writer.set_chunk_size(CHUNK_SIZE as usize);
        let connect = command("connect", 1.0, |e| {
            let props: Vec<(&str, Amf0Value<'_>)> = vec![
                ("app", Amf0Value::String(target.app.as_str().into())),
                ("type", Amf0Value::String("nonprivate".into())),
                ("flashVer", Amf0Value::String("FMLE/3.0 (compatible; livepeer-gateway)".into())),
                ("tcUrl", Amf0Value::String(target.tc_url.as_str().into())),
            ];
            let object = props.into_iter().map(|(k, v)| (k.into(), v)).collect();
            Amf0Value::Object(object).encode(e)
        })?;
        p.send(Chunk::new(CSID_COMMAND, 0, MessageType::CommandAMF0, 0, connect)).await?;
        p.answer(1.0).await?;
        let create = command("createStream", 2.0, |e| e.encode_null())?;
        p.send(Chunk::new(CSID_COMMAND, 0, MessageType::CommandAMF0, 0, create)).await?;
        let created = p.answer(2.0).await?;
        let id = created.iter().find_map(|v| match v {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        });
        p.stream_id = id.ok_or("createStream answered no stream id")? as u32;
        let publish = command("publish", 3.0, |e| {
            e.encode_null()?;
            e.encode_string(&target.stream)?;
            e.encode_string("live")
        })?;
        p.send(Chunk::new(CSID_COMMAND, 0, MessageType::CommandAMF0, p.stream_id, publish)).await?;
        p.publish_started().await?;
        Ok(p)
    }

    /// The simple handshake: C0 C1, then S0 S1 S2, then C2 (S1 echoed).
    async fn handshake(&mut self) -> Result<(), String> {
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0u8; 8]);
        c0c1.extend((0..HANDSHAKE_LEN - 8).map(|_| rand::random::<u8>()));
        self.socket.write_all(&c0c1).await.map_err(|e| format!("handshake: {e}"))?;
        let mut s = vec![0u8; 1 + 2 * HANDSHAKE_LEN];
        tokio::time::timeout(ANSWER_TIMEOUT, self.socket.read_exact(&mut s))
            .await
            .map_err(|_| "the server did not answer the handshake".to_owned())?
            .map_err(|e| format!("handshake: {e}"))?;
        if s[0] != 3 {
            return Err(format!("the server speaks RTMP version {}", s[0]));
        }
        self.socket.write_all(&s[1..1 + HANDSHAKE_LEN]).await.map_err(|e| format!("handshake: {e}"))
    }

    async fn send(&mut self, chunk: Chunk) -> Result<(), String> {
        let mut out = Vec::with_capacity(chunk.payload.len() + 32);
        self.writer.write_chunk(&mut out, chunk).map_err(|e| e.to_string())?;
        self.socket.write_all(&out).await.map_err(|e| format!("sending: {e}"))
    }

    /// The next whole message from the server.
    async fn message(&mut self) -> Result<Chunk, String> {
        loop {
            if let Some(chunk) = self.reader.read_chunk(&mut self.read_buf).map_err(|e| e.to_string())? {
                if chunk.message_header.msg_type_id == MessageType::SetChunkSize && chunk.payload.len() >= 4 {
                    let size = u32::from_be_bytes([
                        chunk.payload[0],
                        chunk.payload[1],
                        chunk.payload[2],
                        chunk.payload[3],
                    ]);
                    self.reader.update_max_chunk_size(size as usize);
                }
                return Ok(chunk);
            }
            let mut buf = [0u8; 16 * 1024];
            let n = tokio::time::timeout(ANSWER_TIMEOUT, self.socket.read(&mut buf))
                .await
                .map_err(|_| "the server did not answer".to_owned())?
                .map_err(|e| format!("reading: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.read_buf.extend_from_slice(&buf[..n]);
        }
    }

    /// The values of the `_result` to transaction `txn`; `_error` is an error.
    async fn answer(&mut self, txn: f64) -> Result<Vec<Amf0Value<'static>>, String> {
        loop {
            let values = match self.command().await? {
                Some(values) => values,
                None => continue,
            };
            let name = string_at(&values, 0);
            let id = match values.get(1) {
                Some(Amf0Value::Number(n)) => *n,
                _ => -1.0,
            };
            match name.as_deref() {
                Some("_result") if id == txn => return Ok(values),
                Some("_error") if id == txn => {
                    return Err(format!("the server refused: {}", describe(&values)))
                }
                _ => {}
            }
        }
    }

    /// Waits for `onStatus` `NetStream.Publish.Start`.
    async fn publish_started(&mut self) -> Result<(), String> {
        loop {
            let Some(values) = self.command().await? else { continue };
            if string_at(&values, 0).as_deref() != Some("onStatus") {
                continue;
            }
            let code = describe(&values);
            if code.contains("NetStream.Publish.Start") {
                return Ok(());
            }
            return Err(format!("the server refused the publish: {code}"));
        }
    }

    /// The next AMF0 command's values; `None` for another kind of message.
    async fn command(&mut self) -> Result<Option<Vec<Amf0Value<'static>>>, String> {
        let chunk = self.message().await?;
        if chunk.message_header.msg_type_id != MessageType::CommandAMF0 {
            return Ok(None);
        }
        let mut decoder = scuffle_amf0::Amf0Decoder::from_slice(&chunk.payload);
        let values = decoder.decode_all().map_err(|e| format!("a bad command from the server: {e}"))?;
        Ok(Some(values.into_iter().map(Amf0Value::into_owned).collect()))
    }

    async fn media(&mut self, tag: FlvTag) -> Result<(), String> {
        let (csid, kind) = match tag.kind {
            FlvTagKind::Video => (CSID_VIDEO, MessageType::Video),
            FlvTagKind::Audio => (CSID_AUDIO, MessageType::Audio),
        };
        self.send(Chunk::new(csid, tag.timestamp_ms, kind, self.stream_id, Bytes::from(tag.body))).await
    }
}

/// An AMF0 command: its name, transaction id, then what `rest` encodes.
fn command(
    name: &str,
    txn: f64,
    rest: impl FnOnce(&mut Amf0Encoder<&mut Vec<u8>>) -> Result<(), scuffle_amf0::Amf0Error>,
) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let mut encoder = Amf0Encoder::new(&mut out);
    let encoded =
        encoder.encode_string(name).and_then(|_| encoder.encode_number(txn)).and_then(|_| rest(&mut encoder));
    encoded.map_err(|e| e.to_string())?;
    Ok(Bytes::from(out))
}

fn string_at(values: &[Amf0Value<'_>], i: usize) -> Option<String> {
    match values.get(i) {
        Some(Amf0Value::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// The `code` and `description` an answer carries, for errors.
fn describe(values: &[Amf0Value<'_>]) -> String {
    let mut parts = Vec::new();
    for value in values {
        if let Amf0Value::Object(object) = value {
            for (key, v) in object.iter() {
                if matches!(key.as_ref(), "code" | "description") {
                    if let Amf0Value::String(s) = v {
                        parts.push(s.to_string());
                    }
                }
            }
        }
    }
    if parts.is_empty() {
        "no reason given".into()
    } else {
        parts.join(": ")
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushStats {
    /// Video access units sent.
    pub video: u64,
    /// AAC frames sent.
    pub audio: u64,
}

/// Where a push reads a stream's output from.
pub trait OutputSource: Send + 'static {
    /// A reader of the output from its current segment on; `None` once the stream has ended.
    fn subscribe(&self) -> impl std::future::Future<Output = Option<TrickleSubscriber>> + Send;
}

/// Pushes `source`'s output to `target` while its stream runs, again after each failure (go
/// restarts its ffmpeg output). The target's URL is not logged: it may hold a key.
pub async fn push_while_running(target: RtmpTarget, stream: String, source: impl OutputSource) {
    while let Some(mut output) = source.subscribe().await {
        match push(&target, &mut output).await {
            Ok(sent) => {
                tracing::info!(%stream, server = %target.addr, video = sent.video, audio = sent.audio, "RTMP output ended")
            }
            Err((why, sent)) => {
                tracing::warn!(%stream, server = %target.addr, video = sent.video, reason = %why, "RTMP output failed")
            }
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// Pushes the output read by `output` (MPEG-TS) to `target` until the output ends (`Ok`) or
/// the push fails (`Err`, with what it sent).
pub async fn push(
    target: &RtmpTarget,
    output: &mut TrickleSubscriber,
) -> Result<PushStats, (String, PushStats)> {
    let mut stats = PushStats::default();
    let mut publisher = Publisher::connect(target).await.map_err(|e| (e, stats))?;
    let mut demux = TsDemuxer::with_audio();
    let mut remux = FlvRemuxer::new();
    let mut tags = Vec::new();
    loop {
        let mut segment = match output.next_segment().await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(stats),
            Err(e) => return Err((format!("reading the output: {e}"), stats)),
        };
        while let Ok(Some(chunk)) = segment.chunk().await {
            for unit in demux.push_media(&chunk) {
                remux.push(&unit, &mut tags);
            }
            for tag in tags.drain(..) {
                let kind = tag.kind;
                let media = !tag.sequence_header;
                publisher.media(tag).await.map_err(|e| (e, stats))?;
                match (kind, media) {
                    (FlvTagKind::Video, true) => stats.video += 1,
                    (FlvTagKind::Audio, true) => stats.audio += 1,
                    (_, false) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_rtmp_urls() {
        let t = RtmpTarget::parse("rtmp://example.com/live/cam-out?key=1").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.app.as_str(), t.stream.as_str()),
            ("example.com:1935", "live", "cam-out?key=1")
        );
        assert_eq!(t.tc_url, "rtmp://example.com/live");
        assert_eq!(RtmpTarget::parse("rtmp://127.0.0.1:1940/a/b").unwrap().addr, "127.0.0.1:1940");
        for bad in ["http://x/a/b", "rtmp://x/a", "rtmp:///a/b", "rtmp://x//b"] {
            assert!(RtmpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
