//! Media through the node: each stream's input and output are trickle channels on the node
//! (`/process/stream/{id}/trickle/{key}/in` and `…/out`), passed through to the orchestrator's
//! channels as they come, so a client never needs the orchestrator's URLs or a signer. Trickle
//! peers send no bearer token: the stream's random key in the path is the credential. Every
//! trickle request (a segment `POST`, a `GET` of a segment or of `next`, the closing `DELETE`)
//! is relayed with its body streamed both ways and the trickle headers kept; the node pays for
//! the stream meanwhile. The relay uses the gateway's `TrickleRelayClient` (hyper bodies passed
//! through unconverted: this path carries every byte of every stream).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{self as http, HeaderName, StatusCode, Uri};
use axum::response::Response;
use gateway_actors::http::trickle_relay::relay_body;
use gateway_core::gateway_api::ERROR_STREAM_NOT_FOUND;

use super::go_http::text;
use super::node::Node;

/// Request headers a trickle peer sends that go on to the orchestrator.
const FORWARDED_REQUEST_HEADERS: [&str; 3] = ["content-type", "lp-trickle-reset", "accept"];

/// `ANY /process/stream/{id}/trickle/{key}/{dir}[/{rest}]`.
pub async fn channel(
    State(node): State<Arc<Node>>,
    Path(captures): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    // A wrong key reads as no such stream: the key is the channel's only credential.
    let stream =
        node.stream(&captures["id"]).filter(|s| super::auth::same_secret(&s.media_key, &captures["key"]));
    let Some(stream) = stream else {
        return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND);
    };
    let base = {
        let guard = stream.job.lock().await;
        let Some(job) = guard.as_ref() else { return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND) };
        match captures["dir"].as_str() {
            "in" => job.urls.publish_url.clone(),
            "out" => job.urls.subscribe_url.clone(),
            _ => None,
        }
    };
    let Some(base) = base else {
        return text(StatusCode::NOT_FOUND, "the stream has no such media channel");
    };
    let rest = captures.get("rest").map(|r| format!("/{r}")).unwrap_or_default();
    let Ok(uri) = format!("{}{rest}", base.trim_end_matches('/')).parse::<Uri>() else {
        return text(StatusCode::BAD_GATEWAY, "the orchestrator's channel URL is not valid");
    };
    let (parts, body) = request.into_parts();
    let mut relayed = http::Request::builder().method(parts.method).uri(uri);
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            relayed = relayed.header(name, value);
        }
    }
    let Ok(relayed) = relayed.body(relay_body(body)) else {
        return text(StatusCode::BAD_GATEWAY, "the request cannot be relayed");
    };
    let answer = match node.gateway.http().trickle_relay().send(relayed).await {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_GATEWAY, e.reason),
    };
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = parts.status;
    for (name, value) in parts.headers.iter().filter(|(name, _)| kept(name)) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

/// Answer headers a trickle peer reads: the trickle ones and the content type.
fn kept(name: &HeaderName) -> bool {
    name.as_str().starts_with("lp-trickle-") || name == "content-type"
}
