//! The gateway token: `GatewayToken::parse` on any string, then what follows from a token that
//! parsed: it encodes and parses back to itself, merging it with explicit settings keeps every
//! token field, and neither its `Debug` nor any parse error depends on a header value.
#![no_main]

use std::collections::BTreeMap;

use base64::Engine;
use gateway_core::token::{GatewayToken, NetworkSettings};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The token re-encoded with every header value replaced, if it is base64 of a JSON object.
fn with_header_values_replaced(token: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let mut value: Value = serde_json::from_slice(&raw).ok()?;
    let obj = value.as_object_mut()?;
    for field in ["signer_headers", "discovery_headers"] {
        if let Some(Value::Object(headers)) = obj.get_mut(field) {
            for v in headers.values_mut() {
                if v.is_string() {
                    *v = Value::String("replaced".into());
                }
            }
        }
    }
    Some(base64::engine::general_purpose::STANDARD.encode(value.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let token = match GatewayToken::parse(text) {
        Ok(token) => token,
        Err(e) => {
            // Header values may be secrets: the error must be the same with every one replaced.
            if let Some(redacted) = with_header_values_replaced(text) {
                assert_eq!(
                    GatewayToken::parse(&redacted).map(|_| ()),
                    Err(e),
                    "an error depends on a header value"
                );
            }
            return;
        }
    };

    let again = GatewayToken::parse(&token.encode()).expect("an encoded token parses");
    assert_eq!(again, token, "encode/parse round trip");

    // Debug names header keys, never values: print a copy without values and compare.
    let blanked = |h: &Option<BTreeMap<String, String>>| {
        h.as_ref().map(|m| m.keys().map(|k| (k.clone(), String::new())).collect::<BTreeMap<_, _>>())
    };
    let without_values = GatewayToken {
        signer_headers: blanked(&token.signer_headers),
        discovery_headers: blanked(&token.discovery_headers),
        ..token.clone()
    };
    let shown = format!("{token:?}");
    let shown_without = format!("{without_values:?}");
    assert_eq!(shown, shown_without, "Debug depends on header values");

    let explicit = NetworkSettings {
        orchestrators: vec!["explicit:1".into()],
        signer: Some("https://explicit-signer".into()),
        discovery: Some("https://explicit-discovery".into()),
        ..Default::default()
    };
    let settings = GatewayToken::resolve(Some(&token), &explicit);
    if let Some(o) = &token.orchestrators {
        assert_eq!(&settings.orchestrators, o);
    }
    if token.signer.is_some() {
        assert_eq!(settings.signer, token.signer);
    }
    if token.discovery.is_some() {
        assert_eq!(settings.discovery, token.discovery);
    }
    if let Some(h) = &token.signer_headers {
        assert_eq!(&settings.signer_headers, h);
    }
    let _ = settings.orchestrator_source().expect("the explicit settings name a source");
    let _ = format!("{settings:?}");
});
