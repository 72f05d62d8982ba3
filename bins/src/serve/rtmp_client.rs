//! The client side of RTMP 1.0, for the node's pushes (egress) and pulls (ingest from
//! MediaMTX): the simple handshake, `connect`, `createStream`, then `publish` or `play`, and
//! the messages after; the chunk and AMF0 codecs are scuffle-rtmp's. Protocol control from the
//! server (chunk size, acknowledgement window) is handled as messages are read.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_core::gateway_api::live::RTMP_PORT;
use scuffle_amf0::{Amf0Encoder, Amf0Value};
use scuffle_rtmp::chunk::reader::ChunkReader;
use scuffle_rtmp::chunk::writer::ChunkWriter;
use scuffle_rtmp::chunk::Chunk;
use scuffle_rtmp::messages::MessageType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time allowed for the connection and each answer of the server.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The RTMP 1.0 handshake's packet (C1, S1, S2).
const HANDSHAKE_LEN: usize = 1536;
/// The chunk size we send with (the default, 128, costs a header per 128 bytes).
const CHUNK_SIZE: u32 = 4096;
/// Chunk streams: control, commands, audio, video, the stream's commands.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
/// The chunk stream audio messages go on.
pub const CSID_AUDIO: u32 = 4;
/// The chunk stream video messages go on.
pub const CSID_VIDEO: u32 = 6;
const CSID_STREAM_COMMAND: u32 = 8;

/// An RTMP server's stream: `rtmp://host[:port]/app/stream[?query]`.
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
        let rest = url.strip_prefix("rtmp://").ok_or("an RTMP URL must start with rtmp://")?;
        let (authority, path) = rest.split_once('/').ok_or("an RTMP URL needs a path")?;
        // `rtmp://host/name` is app and stream `name` at once, as ffmpeg reads it (and so
        // MediaMTX, which go's ffmpeg talks to, takes it).
        let (app, stream) = match path.split_once('/') {
            Some((app, stream)) => (app, stream.to_owned()),
            None => (path.split('?').next().unwrap_or(path), path.to_owned()),
        };
        if authority.is_empty() || app.is_empty() || stream.is_empty() {
            return Err("an RTMP URL needs a host, an app and a stream".into());
        }
        let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_owned()
        } else {
            format!("{authority}:{RTMP_PORT}")
        };
        Ok(RtmpTarget { addr, app: app.to_owned(), stream, tc_url: format!("rtmp://{authority}/{app}") })
    }
}

/// An RTMP connection with one stream created on it.
pub struct RtmpConnection {
    socket: TcpStream,
    reader: ChunkReader,
    writer: ChunkWriter,
    read_buf: BytesMut,
    /// The message stream `createStream` answered.
    pub stream_id: u32,
    /// Bytes received, and the server's acknowledgement window (0: none asked).
    received: u64,
    window: u64,
    acknowledged: u64,
    /// The server closed the connection.
    closed: bool,
}

impl RtmpConnection {
    /// Connects to `target`'s app and creates a stream.
    pub async fn open(target: &RtmpTarget) -> Result<RtmpConnection, String> {
        let socket = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(&target.addr))
            .await
            .map_err(|_| format!("connecting to {} timed out", target.addr))?
            .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
        socket.set_nodelay(true).ok();
        let mut c = RtmpConnection {
            socket,
            reader: ChunkReader::default(),
            writer: ChunkWriter::default(),
            read_buf: BytesMut::new(),
            stream_id: 0,
            received: 0,
            window: 0,
            acknowledged: 0,
            closed: false,
        };
        c.handshake().await?;
        let size = Bytes::copy_from_slice(&CHUNK_SIZE.to_be_bytes());
        c.send(Chunk::new(CSID_CONTROL, 0, MessageType::SetChunkSize, 0, size)).await?;
        c.writer.set_chunk_size(CHUNK_SIZE as usize);
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
        c.send(Chunk::new(CSID_COMMAND, 0, MessageType::CommandAMF0, 0, connect)).await?;
        c.answer(1.0).await?;
        let create = command("createStream", 2.0, |e| e.encode_null())?;
        c.send(Chunk::new(CSID_COMMAND, 0, MessageType::CommandAMF0, 0, create)).await?;
        let created = c.answer(2.0).await?;
        let id = created.iter().skip(2).find_map(|v| match v {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        });
        c.stream_id = id.ok_or("createStream answered no stream id")? as u32;
        Ok(c)
    }

    /// Asks to publish `stream` and waits for `NetStream.Publish.Start`.
    pub async fn publish(&mut self, stream: &str) -> Result<(), String> {
        let publish = command("publish", 3.0, |e| {
            e.encode_null()?;
            e.encode_string(stream)?;
            e.encode_string("live")
        })?;
        self.send(Chunk::new(CSID_STREAM_COMMAND, 0, MessageType::CommandAMF0, self.stream_id, publish))
            .await?;
        self.status("NetStream.Publish.Start").await
    }

    /// Asks to play `stream` and waits for `NetStream.Play.Start`.
    pub async fn play(&mut self, stream: &str) -> Result<(), String> {
        let play = command("play", 0.0, |e| {
            e.encode_null()?;
            e.encode_string(stream)?;
            // -2: live or recorded, whichever the server has.
            e.encode_number(-2.0)
        })?;
        self.send(Chunk::new(CSID_STREAM_COMMAND, 0, MessageType::CommandAMF0, self.stream_id, play)).await?;
        self.status("NetStream.Play.Start").await
    }

    /// Whether the server closed the connection (the end of a played stream).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends a media message on the created stream.
    pub async fn send_media(&mut self, video: bool, timestamp_ms: u32, body: Bytes) -> Result<(), String> {
        let (csid, kind) =
            if video { (CSID_VIDEO, MessageType::Video) } else { (CSID_AUDIO, MessageType::Audio) };
        self.send(Chunk::new(csid, timestamp_ms, kind, self.stream_id, body)).await
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

    /// The next whole message from the server, waiting at most `wait`; protocol control
    /// (chunk size, acknowledgement window) is taken into account on the way.
    pub async fn message_within(&mut self, wait: Duration) -> Result<Chunk, String> {
        loop {
            if let Some(chunk) = self.reader.read_chunk(&mut self.read_buf).map_err(|e| e.to_string())? {
                let word = || {
                    let p = &chunk.payload;
                    (p.len() >= 4).then(|| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
                };
                match chunk.message_header.msg_type_id {
                    MessageType::SetChunkSize => {
                        if let Some(size) = word() {
                            self.reader.update_max_chunk_size(size as usize);
                        }
                    }
                    MessageType::WindowAcknowledgementSize => self.window = word().map_or(0, u64::from),
                    _ => {}
                }
                return Ok(chunk);
            }
            let mut buf = [0u8; 16 * 1024];
            let n = tokio::time::timeout(wait, self.socket.read(&mut buf))
                .await
                .map_err(|_| "the server did not answer".to_owned())?
                .map_err(|e| format!("reading: {e}"))?;
            if n == 0 {
                self.closed = true;
                return Err("the server closed the connection".into());
            }
            self.read_buf.extend_from_slice(&buf[..n]);
            self.received += n as u64;
            if self.window > 0 && self.received - self.acknowledged >= self.window {
                self.acknowledged = self.received;
                // The sequence number is the byte count, modulo 2^32.
                let ack = Bytes::copy_from_slice(&(self.received as u32).to_be_bytes());
                self.send(Chunk::new(CSID_CONTROL, 0, MessageType::Acknowledgement, 0, ack)).await?;
            }
        }
    }

    /// The values of the `_result` to transaction `txn`; `_error` is an error.
    async fn answer(&mut self, txn: f64) -> Result<Vec<Amf0Value<'static>>, String> {
        loop {
            let Some(values) = self.command().await? else { continue };
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

    /// Waits for `onStatus` with `code`; another code (but a `…Reset`, which comes first on a
    /// play) is a refusal.
    async fn status(&mut self, code: &str) -> Result<(), String> {
        loop {
            let Some(values) = self.command().await? else { continue };
            if string_at(&values, 0).as_deref() != Some("onStatus") {
                continue;
            }
            let said = describe(&values);
            if said.contains(code) {
                return Ok(());
            }
            if said.contains(".Reset") {
                continue;
            }
            return Err(format!("the server refused: {said}"));
        }
    }

    /// The next AMF0 command's values; `None` for another kind of message.
    async fn command(&mut self) -> Result<Option<Vec<Amf0Value<'static>>>, String> {
        let chunk = self.message_within(ANSWER_TIMEOUT).await?;
        if chunk.message_header.msg_type_id != MessageType::CommandAMF0 {
            return Ok(None);
        }
        let mut decoder = scuffle_amf0::Amf0Decoder::from_slice(&chunk.payload);
        let values = decoder.decode_all().map_err(|e| format!("a bad command from the server: {e}"))?;
        Ok(Some(values.into_iter().map(Amf0Value::into_owned).collect()))
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
        let single = RtmpTarget::parse("rtmp://10.0.0.7/cam-1?k=v").unwrap();
        assert_eq!((single.app.as_str(), single.stream.as_str()), ("cam-1", "cam-1?k=v"), "ffmpeg's reading");
        assert_eq!(single.tc_url, "rtmp://10.0.0.7/cam-1");
        for bad in ["http://x/a/b", "rtmp://x", "rtmp://x/", "rtmp:///a/b", "rtmp://x//b", "rtmp://x/?k"] {
            assert!(RtmpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
