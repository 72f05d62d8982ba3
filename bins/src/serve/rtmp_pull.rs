//! RTMP ingest pulled from MediaMTX, as go's gateway takes it: MediaMTX calls the start route
//! when a publisher is ready, and the gateway plays the stream back from it
//! (`server/ai_mediaserver.go` `StartLiveVideo`: `rtmp://{caller}/{prefix}{stream}`, or the
//! form's `rtmp_url`; go runs ffmpeg, this node its own RTMP client). The stream's FLV tags go
//! into its input as a publish to the node's own RTMP server would ([`Ingest`]); when the pull
//! ends, the stream stops, as go's "mediamtx ingest disconnected" does.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::gateway_api::live::RTMP_PORT;
use scuffle_rtmp::messages::MessageType;

use super::live_registry::LiveEntry;
use super::node::Node;
use super::rtmp_client::{RtmpConnection, RtmpTarget};
use super::rtmp_ingest::{Ingest, IngestTarget};

/// A pull that gets no message this long has lost its source.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// What the stream's stop says (go's error event).
const DISCONNECTED: &str = "mediamtx ingest disconnected";

/// go's pull URL: `rtmp://{caller}/{prefix/}{stream}`, with the port when it is not RTMP's
/// 1935 (go's is always MediaMTX's default).
pub fn caller_url(caller: IpAddr, port: u16, prefix: Option<&str>, stream: &str) -> String {
    let host = match caller {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let port = if port == RTMP_PORT { String::new() } else { format!(":{port}") };
    let prefix = prefix.filter(|p| !p.is_empty()).map(|p| format!("{p}/")).unwrap_or_default();
    format!("rtmp://{host}{port}/{prefix}{stream}")
}

/// Pulls `url` into LV2V stream `entry`'s input until the source ends, then stops the stream.
/// Does nothing if another input (an RTMP publish, `POST …/input`) has the stream.
pub async fn pull_into_live(node: Arc<Node>, entry: Arc<LiveEntry>, url: String) {
    if !entry.take_input() {
        tracing::warn!(stream = %entry.name, "the stream has an input already: not pulling");
        return;
    }
    pull_into(node, IngestTarget::Live(entry), url).await;
}

/// Pulls `url` into `target` until the source ends, then stops the stream.
pub async fn pull_into(node: Arc<Node>, target: IngestTarget, url: String) {
    let name = target.name().to_owned();
    let mut ingest = match Ingest::new(target) {
        Ok(ingest) => ingest,
        Err(why) => {
            tracing::warn!(stream = %name, reason = %why, "cannot pull");
            return;
        }
    };
    // The URL is not logged: it may carry a key.
    match pull(&url, &mut ingest).await {
        Ok(()) => tracing::info!(stream = %name, "the pulled stream ended"),
        Err(why) => tracing::warn!(stream = %name, reason = %why, "the pull ended"),
    }
    ingest.finish(&node, DISCONNECTED).await;
}

/// Plays `url` and feeds its media to `ingest`; `Ok` when the server ends the stream.
async fn pull(url: &str, ingest: &mut Ingest) -> Result<(), String> {
    let target = RtmpTarget::parse(url)?;
    let mut connection = RtmpConnection::open(&target).await?;
    connection.play(&target.stream).await?;
    loop {
        let message = match connection.message_within(SILENCE_LIMIT).await {
            Ok(message) => message,
            Err(_) if connection.is_closed() => return Ok(()),
            Err(why) => return Err(why),
        };
        let timestamp = message.message_header.timestamp;
        match message.message_header.msg_type_id {
            MessageType::Video => ingest.video(timestamp, &message.payload).await?,
            MessageType::Audio => ingest.audio(timestamp, &message.payload).await?,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pull_url_is_gos() {
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(caller_url(v4, RTMP_PORT, None, "cam"), "rtmp://10.0.0.7/cam");
        assert_eq!(caller_url(v4, RTMP_PORT, Some("live"), "cam"), "rtmp://10.0.0.7/live/cam");
        assert_eq!(caller_url(v4, 1940, Some("live"), "cam"), "rtmp://10.0.0.7:1940/live/cam");
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(caller_url(v6, RTMP_PORT, Some(""), "cam"), "rtmp://[::1]/cam");
    }
}
