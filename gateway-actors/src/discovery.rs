//! Finding orchestrator candidates: a fixed list, a discovery endpoint, or the remote signer's
//! `/discover-orchestrators`, in the Python SDK's order of precedence.
//!
//! Discovery only names candidates; whether one can take a job is decided by
//! [`crate::selector`] after asking each of them. Discovery and signer headers often carry
//! credentials, so they are sent but never logged nor put into an error: errors name header
//! keys and show URLs through [`redact_url`].

use std::time::Duration;

use gateway_core::capabilities::CapabilityQuery;
use gateway_core::error::{body_excerpt, redact_url};
use gateway_core::signer::{parse_discovery_response, DISCOVERY_CAPS_PARAM, DISCOVER_ORCHESTRATORS_PATH};
use gateway_core::token::{NetworkSettings, OrchestratorSource};
use std::collections::BTreeMap;

use crate::http::{describe, read_body_capped, HttpClients, MAX_RESPONSE_BYTES};

/// Timeout of one discovery call (the Python SDK's JSON call timeout).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Discovery failed. URLs are redacted, header values never appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Neither an orchestrator list, a discovery URL nor a signer is configured.
    #[error("no orchestrators configured: give an orchestrator list, a discovery URL or a signer URL (or a token holding one)")]
    NotConfigured,
    /// The discovery or signer URL cannot be used.
    #[error("invalid discovery URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configured header has a name or value HTTP does not allow (the value is not shown).
    #[error("invalid discovery header {name:?}: not a valid HTTP header name or value")]
    InvalidHeader {
        /// The header name.
        name: String,
    },
    /// The endpoint could not be reached.
    #[error("discovery at {url} failed: {reason}")]
    Transport {
        /// The URL, redacted.
        url: String,
        /// The transport error, without the URL.
        reason: String,
    },
    /// The endpoint did not answer in time.
    #[error("discovery at {url} timed out after {after:?}")]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The endpoint answered with an error status.
    #[error("discovery at {url} returned HTTP {status}: {body}")]
    Http {
        /// The URL, redacted.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The answer is not a JSON list of orchestrators, or too large.
    #[error("discovery at {url} sent an invalid response: {reason}")]
    InvalidResponse {
        /// The URL, redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Candidate orchestrator addresses for `queries`, with [`DISCOVERY_TIMEOUT`] per call.
pub async fn discover(
    http: &HttpClients,
    settings: &NetworkSettings,
    queries: &[CapabilityQuery],
) -> Result<Vec<String>, DiscoveryError> {
    discover_with_timeout(http, settings, queries, DISCOVERY_TIMEOUT).await
}

/// Candidate orchestrator addresses for `queries`:
/// the configured list as is (no network); else `GET` the discovery URL with the discovery
/// headers; else `GET {signer}/discover-orchestrators` with the signer headers. Network
/// sources get one `caps=pipeline/model` parameter per query (existing parameters kept).
/// Addresses come back trimmed, de-duplicated, in the source's order.
pub(crate) async fn discover_with_timeout(
    http: &HttpClients,
    settings: &NetworkSettings,
    queries: &[CapabilityQuery],
    timeout: Duration,
) -> Result<Vec<String>, DiscoveryError> {
    let (url, headers) = match settings.orchestrator_source() {
        None => return Err(DiscoveryError::NotConfigured),
        Some(OrchestratorSource::List(list)) => return Ok(dedup(list)),
        Some(OrchestratorSource::Discovery(url)) => {
            (discovery_url(&url, queries)?, &settings.discovery_headers)
        }
        Some(OrchestratorSource::SignerDiscovery(signer)) => {
            (signer_discovery_url(&signer, queries)?, &settings.signer_headers)
        }
    };
    fetch(http, url, headers, timeout).await
}

/// The URL to call for an explicit discovery endpoint: its path kept, `caps` appended.
pub fn discovery_url(base: &str, queries: &[CapabilityQuery]) -> Result<url::Url, DiscoveryError> {
    let mut url = parse_http_url(base)?;
    append_caps(&mut url, queries);
    Ok(url)
}

/// The signer's discovery URL: `/discover-orchestrators` under the signer's base path (hosted
/// signers live under a path such as `/api/signer`), its query kept, `caps` appended.
pub(crate) fn signer_discovery_url(
    signer: &str,
    queries: &[CapabilityQuery],
) -> Result<url::Url, DiscoveryError> {
    let mut url = parse_http_url(signer)?;
    let path = format!("{}{}", url.path().trim_end_matches('/'), DISCOVER_ORCHESTRATORS_PATH);
    url.set_path(&path);
    append_caps(&mut url, queries);
    Ok(url)
}

fn parse_http_url(raw: &str) -> Result<url::Url, DiscoveryError> {
    let raw = raw.trim();
    // `host:port` means https, as everywhere in the SDK.
    let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("https://{raw}") };
    let invalid = |reason: String| DiscoveryError::InvalidUrl { url: redact_url(raw), reason };
    let url = url::Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("unsupported scheme {:?}", url.scheme())));
    }
    if !url.has_host() {
        return Err(invalid("no host".into()));
    }
    Ok(url)
}

/// Appends `caps=pipeline/model` per query. `/` stays unescaped as the Python SDK sends it;
/// everything else a model may hold is percent-encoded.
fn append_caps(url: &mut url::Url, queries: &[CapabilityQuery]) {
    if queries.is_empty() {
        return;
    }
    let mut query = url.query().unwrap_or_default().to_owned();
    for q in queries {
        let value: String = url::form_urlencoded::byte_serialize(q.to_string().as_bytes()).collect();
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(DISCOVERY_CAPS_PARAM);
        query.push('=');
        query.push_str(&value.replace("%2F", "/"));
    }
    url.set_query(Some(&query));
}

async fn fetch(
    http: &HttpClients,
    url: url::Url,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<Vec<String>, DiscoveryError> {
    let shown = redact_url(url.as_str());
    let mut req = http.signer.get(url).timeout(timeout).header(reqwest::header::ACCEPT, "application/json");
    for (name, value) in headers {
        let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes());
        let value_ok = reqwest::header::HeaderValue::from_str(value);
        let (Ok(n), Ok(mut v)) = (name_ok, value_ok) else {
            return Err(DiscoveryError::InvalidHeader { name: name.clone() });
        };
        v.set_sensitive(true);
        req = req.header(n, v);
    }
    tracing::debug!(url = %shown, headers = ?headers.keys().collect::<Vec<_>>(), "discovering orchestrators");
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            DiscoveryError::Timeout { url: shown.clone(), after: timeout }
        } else {
            DiscoveryError::Transport { url: shown.clone(), reason: describe(&e) }
        }
    };
    let send_and_read = async {
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = read_body_capped(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|reason| DiscoveryError::InvalidResponse { url: shown.clone(), reason })?;
        Ok::<_, DiscoveryError>((status, body))
    };
    // reqwest's timeout covers the body too, but the cap on a slow-drip body must not depend on it.
    let (status, body) = tokio::time::timeout(timeout, send_and_read)
        .await
        .map_err(|_| DiscoveryError::Timeout { url: shown.clone(), after: timeout })??;
    if !status.is_success() {
        return Err(DiscoveryError::Http {
            url: shown,
            status: status.as_u16(),
            body: body_excerpt(&body, 300),
        });
    }
    let found = parse_discovery_response(&body).map_err(|e| DiscoveryError::InvalidResponse {
        url: shown.clone(),
        reason: match e {
            gateway_core::error::SignerError::InvalidResponse { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    Ok(dedup(found.into_iter().map(|o| o.address)))
}

fn dedup(addresses: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in addresses {
        let a = a.trim().to_owned();
        if !a.is_empty() && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> CapabilityQuery {
        s.parse().unwrap()
    }

    #[test]
    fn caps_are_repeated_and_existing_query_kept() {
        let url = discovery_url(
            "https://d.example/orchs?region=eu",
            &[q("live-video-to-video/stabilityai/sd-turbo"), q("byoc/text-reversal")],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://d.example/orchs?region=eu&caps=live-video-to-video/stabilityai/sd-turbo&caps=byoc/text-reversal"
        );
        assert_eq!(discovery_url("d.example:9", &[]).unwrap().as_str(), "https://d.example:9/");
    }

    #[test]
    fn signer_discovery_keeps_base_path_and_query() {
        let url = signer_discovery_url("https://s.example/api/signer/?key=k", &[q("byoc/x")]).unwrap();
        assert_eq!(url.as_str(), "https://s.example/api/signer/discover-orchestrators?key=k&caps=byoc/x");
        let url = signer_discovery_url("http://127.0.0.1:5000", &[]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:5000/discover-orchestrators");
    }

    #[test]
    fn bad_urls_are_refused_and_redacted() {
        let e = discovery_url("ftp://user:pw@d.example/x?key=secret", &[]).unwrap_err();
        assert!(matches!(e, DiscoveryError::InvalidUrl { .. }));
        let s = e.to_string();
        assert!(!s.contains("secret") && !s.contains("pw"), "{s}");
        assert!(discovery_url("https://", &[]).is_err());
    }

    #[tokio::test]
    async fn list_wins_without_network() {
        let http = HttpClients::new(crate::tls::OrchestratorTrust::Insecure).unwrap();
        let settings = NetworkSettings {
            orchestrators: vec![" a:1 ".into(), "b:2".into(), "a:1".into()],
            signer: Some("http://127.0.0.1:1".into()),
            discovery: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        assert_eq!(discover(&http, &settings, &[]).await.unwrap(), ["a:1", "b:2"]);
        let none = discover(&http, &NetworkSettings::default(), &[]).await.unwrap_err();
        assert_eq!(none, DiscoveryError::NotConfigured);
    }

    #[tokio::test]
    async fn invalid_header_names_the_key_only() {
        let http = HttpClients::new(crate::tls::OrchestratorTrust::Insecure).unwrap();
        let settings = NetworkSettings {
            discovery: Some("http://127.0.0.1:1/d".into()),
            discovery_headers: [("Authorization".to_owned(), "Bearer secret\n".to_owned())].into(),
            ..Default::default()
        };
        let e = discover(&http, &settings, &[]).await.unwrap_err();
        assert_eq!(e, DiscoveryError::InvalidHeader { name: "Authorization".into() });
        assert!(!e.to_string().contains("secret"));
    }
}
