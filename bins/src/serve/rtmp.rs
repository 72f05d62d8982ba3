//! RTMP ingest (`--rtmp-listen`): the node takes RTMP publishers itself, where go's gateway
//! sits behind MediaMTX. Publishing to `rtmp://node/[app/]{stream}[?query]` does what
//! MediaMTX's start callback does for go (`live::start` with the query's `pipeline`, `params`,
//! `streamId`…; the webhook sees `type: rtmp`), then carries the stream's H.264 video, without
//! decoding it, into the stream's MPEG-TS segments with its AAC audio (`gateway_media::flv`).
//! Unpublishing, or the connection dropping, stops the stream (go's "ingest disconnected").
//!
//! With bearer tokens configured, the publisher passes one as the query's `token` (RTMP has no
//! headers); it is taken out of the query before anything else sees it.
//!
//! A BYOC stream started with video ingress is answered an `rtmp_url` here,
//! `rtmp://node/{stream_id}?key={media key}` (go answers MediaMTX's `rtmp://host/{stream_id}`,
//! where MediaMTX takes the publish and calls the gateway back): publishing to it feeds the
//! stream's input, and the publish ending stops the stream, as go's "mediamtx ingest
//! disconnected" does. The key (or a bearer token) is what lets a publisher in.
//!
//! The output goes back out over RTMP in `rtmp_push`. Not yet: audio other than AAC (dropped,
//! counted in the log; the video goes on), RTMPS.

use std::sync::Arc;

use gateway_core::gateway_api::live::{LiveQuery, LiveSource};
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use scuffle_rtmp::ServerSession;
use tokio::net::TcpListener;

use super::live::{self, LiveStart};
use super::node::{Node, Stream};
use super::rtmp_ingest::{Ingest, IngestTarget};

/// The query key a publisher passes a bearer token in.
const TOKEN_KEY: &str = "token";
/// The query key a BYOC stream's RTMP URL carries its media key in.
const MEDIA_KEY: &str = "key";

/// `rtmp://{host}:{port}`: the host clients reach the node at (`base_url`'s), the RTMP port.
pub fn public_base(base_url: &str, port: u16) -> String {
    let authority = base_url.split_once("://").map_or(base_url, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    format!("rtmp://{host}:{port}")
}

/// The `rtmp_url` of BYOC stream `stream_id`: publishing there feeds its input.
pub fn byoc_ingest_url(base: &str, stream_id: &str, media_key: &str) -> String {
    format!("{base}/{stream_id}?{MEDIA_KEY}={media_key}")
}

/// Accepts RTMP publishers on `listener` until the task is dropped.
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let refused = Arc::new(std::sync::Mutex::new(None::<String>));
            let handler = Publisher { node: node.clone(), refused: refused.clone(), ingest: None };
            let result = ServerSession::new(socket, handler).run().await;
            // The handler's own reason, if it ended the session; the session's error otherwise.
            let refused = refused.lock().unwrap_or_else(|e| e.into_inner()).take();
            match (refused, result) {
                (Some(why), _) => tracing::warn!(%peer, reason = %why, "RTMP publish refused"),
                (None, Err(e)) => tracing::info!(%peer, error = %e, "RTMP connection ended"),
                (None, Ok(_)) => tracing::debug!(%peer, "RTMP connection closed"),
            }
        });
    }
}

/// One RTMP connection's publish.
struct Publisher {
    node: Arc<Node>,
    /// Why the handler ended the session (the session's own error types cannot say it).
    refused: Arc<std::sync::Mutex<Option<String>>>,
    ingest: Option<Ingest>,
}

impl Publisher {
    /// Ends the session, keeping `why` for the log.
    fn refuse(&self, why: String) -> ServerSessionError {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        // Any error ends the session; this one is what the library has for a refused publish.
        ServerSessionError::PublishBeforeConnect
    }

    async fn publish(&mut self, stream_name: &str) -> Result<(), String> {
        let (name, raw_query) = stream_name.split_once('?').unwrap_or((stream_name, ""));
        let (token, query) = split_token(raw_query);
        let target = match self.node.stream(name) {
            Some(stream) => self.byoc_input(name, stream, token.as_deref(), &query).await?,
            None => self.live_start(name, token.as_deref(), query).await?,
        };
        self.ingest = Some(Ingest::new(target)?);
        Ok(())
    }

    /// Starts the LV2V stream `name` as go's MediaMTX start callback does.
    async fn live_start(
        &self,
        name: &str,
        token: Option<&str>,
        query: String,
    ) -> Result<IngestTarget, String> {
        if !self.node.auth.allows(token.map(|t| format!("Bearer {t}")).as_deref()) {
            return Err(format!("stream {name}: no accepted token (pass one as ?{TOKEN_KEY}=…)"));
        }
        if name.is_empty() || name.ends_with("-out") {
            return Err(format!("stream name {name:?} cannot be published"));
        }
        let parsed = LiveQuery::parse(&query).map_err(|e| format!("stream {name}: {e}"))?;
        let start = LiveStart { stream: name.to_owned(), source: LiveSource::Rtmp, query, parsed };
        let entry =
            live::start(&self.node, start).await.map_err(|(_, why)| format!("stream {name}: {why}"))?;
        entry.take_input();
        Ok(IngestTarget::Live(entry))
    }

    /// Feeds the running BYOC stream `id`: its media key (from its `rtmp_url`) or a bearer
    /// token lets the publisher in.
    async fn byoc_input(
        &self,
        id: &str,
        stream: Arc<Stream>,
        token: Option<&str>,
        query: &str,
    ) -> Result<IngestTarget, String> {
        let key = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == MEDIA_KEY).map(|(_, v)| v);
        let keyed = key.is_some_and(|k| super::auth::same_secret(&stream.media_key, &k));
        if !keyed && !self.node.auth.allows(token.map(|t| format!("Bearer {t}")).as_deref()) {
            return Err(format!("stream {id}: no accepted key or token"));
        }
        IngestTarget::byoc(id, stream).await
    }
}

impl Publisher {
    /// The publish ended: the last segment goes out and the stream stops.
    async fn finish(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.finish(&self.node, "its RTMP publisher left").await;
        }
    }
}

impl SessionHandler for Publisher {
    async fn on_publish(&mut self, _id: u32, app: &str, stream_name: &str) -> Result<(), ServerSessionError> {
        if self.ingest.is_some() {
            return Err(self.refuse("one publish per connection".into()));
        }
        // `rtmp://node/{name}` (a BYOC stream's URL, go's MediaMTX path) reaches us as the app
        // with an empty stream name.
        let name = if stream_name.is_empty() { app } else { stream_name };
        self.publish(name).await.map_err(|why| self.refuse(why))
    }

    async fn on_unpublish(&mut self, _id: u32) -> Result<(), ServerSessionError> {
        self.finish().await;
        Ok(())
    }

    async fn on_data(&mut self, _id: u32, data: SessionData) -> Result<(), ServerSessionError> {
        let taken = match data {
            SessionData::Video { timestamp, data } => match self.ingest.as_mut() {
                Some(ingest) => ingest.video(timestamp, &data).await,
                None => Ok(()),
            },
            SessionData::Audio { timestamp, data } => match self.ingest.as_mut() {
                Some(ingest) => ingest.audio(timestamp, &data).await,
                None => Ok(()),
            },
            SessionData::Amf0 { .. } => Ok(()),
        };
        if let Err(why) = taken {
            self.finish().await;
            return Err(self.refuse(why));
        }
        Ok(())
    }
}

impl Drop for Publisher {
    /// A connection that dropped without unpublishing still stops its stream.
    fn drop(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            let node = self.node.clone();
            tokio::spawn(async move {
                ingest.finish(&node, "its RTMP connection dropped").await;
            });
        }
    }
}

/// Takes the `token` out of a raw query: the token, and the query without it.
fn split_token(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == TOKEN_KEY {
            token.get_or_insert_with(|| value.into_owned());
        } else {
            rest.append_pair(&key, &value);
        }
    }
    (token, rest.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_leaves_the_query() {
        let (token, rest) = split_token("pipeline=noop&token=s3cret&streamId=a%20b");
        assert_eq!(token.as_deref(), Some("s3cret"));
        assert_eq!(rest, "pipeline=noop&streamId=a+b");
        assert_eq!(split_token(""), (None, String::new()));
    }
}
