//! An RTMP stream's FLV tags into a gateway stream's input: H.264 as it came (no decoding),
//! AAC re-framed as ADTS (`gateway_media::flv`), cut into MPEG-TS segments on keyframes and
//! handed to the stream's publisher. Fed by the node's RTMP server (`rtmp`) and by a pull
//! from MediaMTX (`rtmp_pull`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use gateway_core::trickle::MIME_MPEGTS;
use gateway_media::flv::{FlvAudio, FlvVideo};
use gateway_media::mpegts::{TsConfig, TsMuxer};
use gateway_media::segmenter::{Segmenter, SegmenterConfig};

use super::live_registry::LiveEntry;
use super::node::{Node, Stream};

/// FLV tags into a stream's input.
pub struct Ingest {
    target: IngestTarget,
    flv: FlvVideo,
    audio: FlvAudio,
    segmenter: Segmenter,
    /// Audio tags of a codec MPEG-TS does not get from us (not AAC): dropped, the video goes on.
    audio_dropped: u64,
}

/// What a publish feeds: an LV2V stream it started, or a running BYOC stream's input.
pub enum IngestTarget {
    /// An LV2V stream (the publish started it, or a start callback did).
    Live(Arc<LiveEntry>),
    /// A running BYOC stream's input.
    Byoc { id: String, stream: Arc<Stream>, video: Arc<VideoPublisher> },
}

impl IngestTarget {
    /// BYOC stream `id`'s input, claimed: one RTMP input at a time.
    pub async fn byoc(id: &str, stream: Arc<Stream>) -> Result<IngestTarget, String> {
        if stream.rtmp_input.swap(true, Ordering::SeqCst) {
            return Err(format!("stream {id} has an RTMP input already"));
        }
        let publisher = {
            let job = stream.job.lock().await;
            match job.as_ref() {
                Some(job) => job.publisher(MIME_MPEGTS).await.map_err(|e| format!("stream {id}: {e}")),
                None => Err(format!("stream {id} has stopped")),
            }
        };
        let video = publisher.and_then(|p| {
            VideoPublisher::start(p, VideoPublisherConfig::passthrough_ts())
                .map_err(|e| format!("stream {id}: {e}"))
        });
        match video {
            Ok(video) => Ok(IngestTarget::Byoc { id: id.to_owned(), stream, video: Arc::new(video) }),
            Err(why) => {
                stream.rtmp_input.store(false, Ordering::SeqCst);
                Err(why)
            }
        }
    }

    /// The stream's name (LV2V) or id (BYOC).
    pub fn name(&self) -> &str {
        match self {
            IngestTarget::Live(entry) => &entry.name,
            IngestTarget::Byoc { id, .. } => id,
        }
    }

    fn video(&self) -> &VideoPublisher {
        match self {
            IngestTarget::Live(entry) => entry.video(),
            IngestTarget::Byoc { video, .. } => video,
        }
    }

    /// The publisher left: the stream stops (go stops either kind when its ingest ends).
    async fn stop(self, node: &Arc<Node>, why: &str) {
        match self {
            IngestTarget::Live(entry) => node.stop_live(&entry, why).await,
            IngestTarget::Byoc { id, stream, video } => {
                let _ = video.close().await;
                stream.rtmp_input.store(false, Ordering::SeqCst);
                tracing::info!(stream = %id, reason = why, "stopping the stream");
                if let Some(Err(e)) = node.stop_byoc(&id, Bytes::from(why.to_owned())).await {
                    tracing::warn!(stream = %id, error = %e, "the orchestrator did not take the stop");
                }
            }
        }
    }
}

impl Ingest {
    /// An ingest into `target`.
    pub fn new(target: IngestTarget) -> Result<Ingest, String> {
        let muxer = TsMuxer::new(TsConfig::with_aac()).map_err(|e| e.to_string())?;
        Ok(Ingest {
            target,
            flv: FlvVideo::new(),
            audio: FlvAudio::new(),
            segmenter: Segmenter::with_muxer(muxer, SegmenterConfig::default()),
            audio_dropped: 0,
        })
    }

    /// Takes a video tag (an FLV `VIDEODATA` body at `timestamp` ms).
    pub async fn video(&mut self, timestamp: u32, tag: &[u8]) -> Result<(), String> {
        let ingest = self;
        let Some(packet) = ingest.flv.push(timestamp, tag).map_err(|e| e.to_string())? else { return Ok(()) };
        let events = ingest.segmenter.push(&packet).map_err(|e| e.to_string())?;
        ingest.target.video().write_cut(events, 1).await.map_err(|e| format!("the stream refused media: {e}"))
    }

    /// Takes an audio tag; AAC is carried, other audio dropped (counted; the video goes on).
    pub async fn audio(&mut self, timestamp: u32, tag: &[u8]) -> Result<(), String> {
        let ingest = self;
        let packet = match ingest.audio.push(timestamp, tag) {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(()),
            Err(e @ gateway_media::flv::FlvError::UnsupportedCodec(_)) => {
                if ingest.audio_dropped == 0 {
                    tracing::warn!(stream = %ingest.target.name(), error = %e, "dropping the audio; the video goes on");
                }
                ingest.audio_dropped += 1;
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        let events = ingest.segmenter.push(&packet).map_err(|e| e.to_string())?;
        ingest.target.video().write_cut(events, 0).await.map_err(|e| format!("the stream refused media: {e}"))
    }

    /// The input ended: the last segment goes out and the stream stops, `why` said.
    pub async fn finish(self, node: &Arc<Node>, why: &str) {
        let mut ingest = self;
        let events = ingest.segmenter.finish();
        let _ = ingest.target.video().write_cut(events, 0).await;
        let early = ingest.segmenter.audio_dropped();
        if early + ingest.audio_dropped > 0 {
            tracing::info!(
                stream = %ingest.target.name(),
                before_first_keyframe = early,
                unsupported = ingest.audio_dropped,
                "audio frames dropped"
            );
        }
        ingest.target.stop(node, why).await;
    }
}
