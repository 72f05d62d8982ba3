//! RTMP egress: a stream's output pushed to an RTMP server, as go's gateway pushes it to the
//! `rtmpOutput` the start named (or the auth webhook's `rtmp_output_url`) with ffmpeg
//! (`server/ai_live_video.go` `ffmpegOutput`, `-c copy -f flv`, restarted while the stream
//! runs). The output's MPEG-TS is demuxed and its H.264 and AAC go out as FLV tags without
//! re-encoding ([`FlvRemuxer`] makes the tags; this file is the I/O, over
//! [`RtmpConnection`]). A push that fails is tried again after [`RETRY_DELAY`] while the
//! stream runs.

use std::time::Duration;

use bytes::Bytes;
use gateway_actors::trickle::TrickleSubscriber;
use gateway_media::flv::{FlvRemuxer, FlvTagKind};
use gateway_media::ts_demux::TsDemuxer;

use super::rtmp_client::RtmpConnection;
pub use super::rtmp_client::RtmpTarget;

/// Wait before pushing again after a failure (go restarts its ffmpeg every 5 s).
pub const RETRY_DELAY: Duration = Duration::from_secs(5);

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
    let mut publisher = RtmpConnection::open(target).await.map_err(|e| (e, stats))?;
    publisher.publish(&target.stream).await.map_err(|e| (e, stats))?;
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
                let video = kind == FlvTagKind::Video;
                publisher
                    .send_media(video, tag.timestamp_ms, Bytes::from(tag.body))
                    .await
                    .map_err(|e| (e, stats))?;
                match (kind, media) {
                    (FlvTagKind::Video, true) => stats.video += 1,
                    (FlvTagKind::Audio, true) => stats.audio += 1,
                    (_, false) => {}
                }
            }
        }
    }
}
