//! The gateway token: one base64 string that carries a gateway's whole network configuration.
//!
//! The token is standard base64 of a UTF-8 JSON object with optional fields `orchestrators`
//! (array of non-empty strings), `signer` (URL), `signer_headers` (string map), `discovery`
//! (URL) and `discovery_headers` (string map), as issued for the official Python SDK. Values
//! from the token win over explicit arguments field by field; explicit arguments only fill
//! fields the token leaves out ([`GatewayToken::resolve`]).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{json_type_name as json_type, redact_url, TokenError};

/// A decoded gateway token. `Debug` never prints header values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GatewayToken {
    /// Explicit orchestrator addresses (`host:port` or URLs).
    pub orchestrators: Option<Vec<String>>,
    /// Remote signer base URL.
    pub signer: Option<String>,
    /// Headers sent with every signer call (often credentials).
    pub signer_headers: Option<BTreeMap<String, String>>,
    /// Discovery endpoint URL.
    pub discovery: Option<String>,
    /// Headers sent with discovery calls.
    pub discovery_headers: Option<BTreeMap<String, String>>,
}

impl fmt::Debug for GatewayToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys =
            |h: &Option<BTreeMap<String, String>>| h.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>());
        f.debug_struct("GatewayToken")
            .field("orchestrators", &self.orchestrators)
            .field("signer", &self.signer.as_deref().map(redact_url))
            .field("signer_headers", &keys(&self.signer_headers))
            .field("discovery", &self.discovery.as_deref().map(redact_url))
            .field("discovery_headers", &keys(&self.discovery_headers))
            .finish()
    }
}

impl GatewayToken {
    /// Decodes a token string (surrounding whitespace is ignored).
    pub fn parse(token: &str) -> Result<GatewayToken, TokenError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|e| TokenError::Base64(e.to_string()))?;
        let value: Value = serde_json::from_slice(&raw).map_err(|e| TokenError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(TokenError::NotAnObject { found: json_type(&value) });
        };
        Ok(GatewayToken {
            orchestrators: string_list(&obj, "orchestrators")?,
            signer: string_field(&obj, "signer")?,
            signer_headers: string_map(&obj, "signer_headers")?,
            discovery: string_field(&obj, "discovery")?,
            discovery_headers: string_map(&obj, "discovery_headers")?,
        })
    }

    /// Encodes the token (fields that are `None` are left out).
    pub fn encode(&self) -> String {
        let mut obj = Map::new();
        if let Some(o) = &self.orchestrators {
            obj.insert("orchestrators".into(), Value::from(o.clone()));
        }
        if let Some(s) = &self.signer {
            obj.insert("signer".into(), Value::from(s.clone()));
        }
        if let Some(h) = &self.signer_headers {
            obj.insert("signer_headers".into(), serde_json::to_value(h).unwrap_or_default());
        }
        if let Some(d) = &self.discovery {
            obj.insert("discovery".into(), Value::from(d.clone()));
        }
        if let Some(h) = &self.discovery_headers {
            obj.insert("discovery_headers".into(), serde_json::to_value(h).unwrap_or_default());
        }
        base64::engine::general_purpose::STANDARD.encode(Value::Object(obj).to_string())
    }

    /// Merges the token with explicit settings: token fields win, explicit ones fill the gaps.
    pub fn resolve(token: Option<&GatewayToken>, explicit: &NetworkSettings) -> NetworkSettings {
        let t = token.cloned().unwrap_or_default();
        NetworkSettings {
            orchestrators: t.orchestrators.unwrap_or_else(|| explicit.orchestrators.clone()),
            signer: t.signer.or_else(|| explicit.signer.clone()),
            signer_headers: t.signer_headers.unwrap_or_else(|| explicit.signer_headers.clone()),
            discovery: t.discovery.or_else(|| explicit.discovery.clone()),
            discovery_headers: t.discovery_headers.unwrap_or_else(|| explicit.discovery_headers.clone()),
        }
    }
}

/// Where a gateway's network lives, after merging a token with explicit settings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Explicit orchestrator addresses; empty means "discover".
    pub orchestrators: Vec<String>,
    /// Remote signer base URL; `None` means offchain (no payments).
    pub signer: Option<String>,
    /// Headers for signer calls.
    pub signer_headers: BTreeMap<String, String>,
    /// Discovery endpoint URL.
    pub discovery: Option<String>,
    /// Headers for discovery calls.
    pub discovery_headers: BTreeMap<String, String>,
}

impl fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkSettings")
            .field("orchestrators", &self.orchestrators)
            .field("signer", &self.signer.as_deref().map(redact_url))
            .field("signer_headers", &self.signer_headers.keys().collect::<Vec<_>>())
            .field("discovery", &self.discovery.as_deref().map(redact_url))
            .field("discovery_headers", &self.discovery_headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where orchestrator candidates come from, in the Python SDK's order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrchestratorSource {
    /// A fixed list.
    List(Vec<String>),
    /// A discovery endpoint (called with the discovery headers).
    Discovery(String),
    /// The signer's `/discover-orchestrators` (called with the signer headers).
    SignerDiscovery(String),
}

impl NetworkSettings {
    /// Orchestrator list → discovery URL → signer discovery; `None` if none is configured.
    pub fn orchestrator_source(&self) -> Option<OrchestratorSource> {
        if !self.orchestrators.is_empty() {
            return Some(OrchestratorSource::List(self.orchestrators.clone()));
        }
        if let Some(d) = &self.discovery {
            return Some(OrchestratorSource::Discovery(d.clone()));
        }
        self.signer.as_ref().map(|s| OrchestratorSource::SignerDiscovery(s.clone()))
    }
}

/// Splits comma-delimited orchestrator lists (as given on a command line), trimming blanks.
pub fn split_orchestrator_list<I, S>(values: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    values
        .into_iter()
        .flat_map(|v| v.as_ref().split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect()
}

fn string_field(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, TokenError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(Value::String(_)) => Err(TokenError::InvalidField { field, problem: "is empty".into() }),
        Some(v) => Err(TokenError::InvalidField {
            field,
            problem: format!("must be a string, found {}", json_type(v)),
        }),
    }
}

fn string_list(obj: &Map<String, Value>, field: &'static str) -> Result<Option<Vec<String>>, TokenError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                Value::String(_) => {
                    Err(TokenError::InvalidField { field, problem: format!("entry {i} is empty") })
                }
                v => Err(TokenError::InvalidField {
                    field,
                    problem: format!("entry {i} must be a string, found {}", json_type(v)),
                }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(TokenError::InvalidField {
            field,
            problem: format!("must be an array of strings, found {}", json_type(v)),
        }),
    }
}

fn string_map(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<BTreeMap<String, String>>, TokenError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                // The value may be a secret: name the key only.
                v => Err(TokenError::InvalidField {
                    field,
                    problem: format!("value of {k:?} must be a string, found {}", json_type(v)),
                }),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Some),
        Some(v) => Err(TokenError::InvalidField {
            field,
            problem: format!("must be an object of strings, found {}", json_type(v)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_all_fields() {
        let t = GatewayToken::parse(&b64(
            r#"{"orchestrators":[" a:1 ","https://b:2"],"signer":"https://s","signer_headers":{"Authorization":"Bearer x"},"discovery":"https://d","discovery_headers":{"k":"v"},"extra":1}"#,
        ))
        .unwrap();
        assert_eq!(t.orchestrators.as_deref(), Some(&["a:1".to_owned(), "https://b:2".to_owned()][..]));
        assert_eq!(t.signer.as_deref(), Some("https://s"));
        assert_eq!(t.signer_headers.as_ref().unwrap()["Authorization"], "Bearer x");
        assert_eq!(t.discovery.as_deref(), Some("https://d"));
        assert!(!format!("{t:?}").contains("Bearer x"), "Debug must not print header values");
    }

    #[test]
    fn clear_errors() {
        assert!(matches!(GatewayToken::parse("not base64!"), Err(TokenError::Base64(_))));
        assert!(matches!(GatewayToken::parse(&b64("nope")), Err(TokenError::Json(_))));
        assert_eq!(GatewayToken::parse(&b64("[1]")), Err(TokenError::NotAnObject { found: "an array" }));
        let e = GatewayToken::parse(&b64(r#"{"orchestrators":"a,b"}"#)).unwrap_err();
        assert!(e.to_string().contains("\"orchestrators\" must be an array"), "{e}");
        let e = GatewayToken::parse(&b64(r#"{"orchestrators":["a",""]}"#)).unwrap_err();
        assert!(e.to_string().contains("entry 1 is empty"), "{e}");
        let e = GatewayToken::parse(&b64(r#"{"signer":5}"#)).unwrap_err();
        assert!(e.to_string().contains("must be a string, found a number"));
        let e = GatewayToken::parse(&b64(r#"{"signer_headers":{"Authorization":1}}"#)).unwrap_err();
        assert!(e.to_string().contains("Authorization"));
        let e = GatewayToken::parse(&b64(
            r#"{"signer_headers":{"Authorization":"secret-value"},"discovery":[]}"#,
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("secret-value"));
    }

    #[test]
    fn token_wins_over_explicit() {
        let token = GatewayToken { signer: Some("https://token-signer".into()), ..Default::default() };
        let explicit = NetworkSettings {
            orchestrators: vec!["o:1".into()],
            signer: Some("https://explicit-signer".into()),
            discovery: Some("https://explicit-discovery".into()),
            ..Default::default()
        };
        let r = GatewayToken::resolve(Some(&token), &explicit);
        assert_eq!(r.signer.as_deref(), Some("https://token-signer"));
        assert_eq!(r.orchestrators, ["o:1"]);
        assert_eq!(r.orchestrator_source(), Some(OrchestratorSource::List(vec!["o:1".into()])));
    }

    #[test]
    fn orchestrator_source_precedence() {
        let mut s = NetworkSettings { signer: Some("https://s".into()), ..Default::default() };
        assert_eq!(s.orchestrator_source(), Some(OrchestratorSource::SignerDiscovery("https://s".into())));
        s.discovery = Some("https://d".into());
        assert_eq!(s.orchestrator_source(), Some(OrchestratorSource::Discovery("https://d".into())));
        s.orchestrators = vec!["x".into()];
        assert_eq!(s.orchestrator_source(), Some(OrchestratorSource::List(vec!["x".into()])));
        assert_eq!(NetworkSettings::default().orchestrator_source(), None);
    }

    #[test]
    fn splits_lists() {
        assert_eq!(split_orchestrator_list(["a:1, b:2", " ", "c:3,"]), ["a:1", "b:2", "c:3"]);
    }

    fn field() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9:/._-]{1,20}"
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(
            orchestrators in proptest::option::of(proptest::collection::vec(field(), 0..4)),
            signer in proptest::option::of(field()),
            headers in proptest::option::of(proptest::collection::btree_map(field(), "\\PC{0,10}", 0..3)),
            discovery in proptest::option::of(field()),
        ) {
            let t = GatewayToken { orchestrators, signer, signer_headers: headers.clone(), discovery, discovery_headers: headers };
            prop_assert_eq!(GatewayToken::parse(&t.encode()).unwrap(), t);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = GatewayToken::parse(&s);
            let _ = GatewayToken::parse(&b64(&s));
        }
    }
}
