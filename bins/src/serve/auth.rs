//! Who may use the node: bearer tokens (`Authorization: Bearer <token>` on every `/process/…`
//! request when any are configured), and go's auth webhook for stream starts
//! (`-liveAIAuthWebhookUrl`, `byoc/job_auth.go` `authenticateAIStream`): the node POSTs what it
//! is about to start, with the API key in `x-api-key` and `Authorization`; a non-2xx answer
//! refuses the start (403 `live ai auth failed: …`), a 2xx one may name the stream id, the
//! parameters and an RTMP output. Tokens and the API key are never logged or echoed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Time allowed for the webhook's answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest webhook answer read.
const MAX_WEBHOOK_ANSWER_BYTES: usize = 1024 * 1024;

/// The node's access rules.
#[derive(Clone, Default)]
pub struct Auth {
    /// Bearer tokens accepted (none: no token needed).
    pub tokens: Vec<String>,
    /// The auth webhook, if any.
    pub webhook: Option<Webhook>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("webhook", &self.webhook.as_ref().map(|w| w.url.as_str()))
            .finish()
    }
}

/// go's auth webhook.
#[derive(Clone)]
pub struct Webhook {
    /// Where to ask.
    pub url: String,
    /// Sent as `x-api-key` and `Authorization`.
    pub api_key: String,
    /// The client to ask with.
    pub http: reqwest::Client,
}

/// What the node tells the webhook (go's `AIAuthRequest`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuthRequest {
    /// The stream's name.
    pub stream: String,
    /// The same (go copies it).
    pub stream_key: String,
    /// Ingest type (go sends `""` for BYOC starts).
    #[serde(rename = "type")]
    pub kind: String,
    /// The start's raw parameters.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query_params: String,
    /// This node's host.
    pub gateway_host: String,
    /// WHEP URL (empty: no egress).
    pub whep_url: String,
    /// The stream's status URL.
    pub status_url: String,
    /// The stream's update URL.
    pub update_url: String,
}

/// What the webhook may decide (go's `AIAuthResponse`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthAnswer {
    /// Where to push the output.
    pub rtmp_output_url: String,
    /// The pipeline (go uses it for the stream's bookkeeping; the capability stays the job's).
    pub pipeline: String,
    /// The pipeline's id.
    pub pipeline_id: String,
    /// The stream id to use instead.
    pub stream_id: String,
    /// The parameters to use instead.
    pub pipeline_parameters: Option<serde_json::Value>,
}

impl Auth {
    /// Whether `authorization` (the header's value) carries an accepted token; always with no
    /// tokens configured. Compared in constant time.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let Some(given) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else { return false };
        self.tokens.iter().any(|t| same_secret(t, given.trim()))
    }
}

/// Whether two secrets are equal, compared in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    constant_time_eq(a.as_bytes(), b.as_bytes())
}

impl Webhook {
    /// Asks the webhook; `Err` is go's reason (`status=N error=…`, or the transport's).
    pub async fn authenticate(&self, mut request: AuthRequest) -> Result<AuthAnswer, String> {
        request.stream_key = request.stream.clone();
        let resp = self
            .http
            .post(&self.url)
            .header("x-api-key", &self.api_key)
            .header("authorization", &self.api_key)
            .json(&request)
            .timeout(WEBHOOK_TIMEOUT)
            .send()
            .await
            .map_err(|e| gateway_actors::http::describe(&e))?;
        let status = resp.status().as_u16();
        let body = gateway_actors::http::read_body_capped(resp, MAX_WEBHOOK_ANSWER_BYTES).await?;
        if !(200..300).contains(&status) {
            return Err(format!("status={status} error={}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_required_only_when_configured() {
        assert!(Auth::default().allows(None));
        let auth = Auth { tokens: vec!["s3cret".into()], webhook: None };
        assert!(auth.allows(Some("Bearer s3cret")));
        assert!(!auth.allows(Some("Bearer s3cre")));
        assert!(!auth.allows(Some("s3cret")));
        assert!(!auth.allows(None));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
