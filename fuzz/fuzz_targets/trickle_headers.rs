//! The trickle protocol's parsers on any input. The input is text: `Name: value` lines are
//! response headers (looked up case-insensitively, as HTTP clients do), and `:status N`,
//! `:requested N`, `:path P`, `:channel C` and `:body B` lines set the rest.
//!
//! Checked: `TrickleHeaders::parse` accepts exactly the numbers >= -2 and round-trips them;
//! `classify_get` / `classify_post` only answer what the protocol allows for the status (a
//! segment only on 200 without Closed, a jump only forward, a wait only for an absolute index)
//! with bounded error text; `parse_next_body` agrees with a plain decimal parse;
//! `SeqSpec::from_wire` / `wire_value` and its text form round-trip; `split_path` only splits
//! what it can rebuild; a valid channel name gives URLs whose paths split back to it.
#![no_main]

use gateway_core::error::TrickleError;
use gateway_core::trickle::{
    channel_url, classify_get, classify_post, is_valid_channel_name, next_url, parse_next_body, segment_url,
    split_path, ChannelNames, GetOutcome, SeqSpec, TrickleHeaders, BASE_PATH, HEADER_CLOSED, HEADER_LATEST,
    HEADER_SEQ, NEXT_PATH, STATUS_SEGMENT_NOT_AVAILABLE,
};
use libfuzzer_sys::fuzz_target;

/// Longest error text: a 200-byte body excerpt (each byte may become a 3-byte U+FFFD) plus the
/// message around it.
const MAX_ERROR_TEXT: usize = 3 * 200 + 200;

fn header_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    pairs.iter().find(|(k, _)| *k == lower).map(|(_, v)| v.clone())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut headers = Vec::new();
    let (mut status, mut requested, mut path, mut channel, mut body) =
        (200u16, -1i64, None, None, Vec::new());
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix(':') {
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match key {
                "status" => status = value.trim().parse().unwrap_or(status),
                "requested" => requested = value.trim().parse().unwrap_or(requested),
                "path" => path = Some(value.to_owned()),
                "channel" => channel = Some(value.to_owned()),
                "body" => body = value.as_bytes().to_vec(),
                _ => {}
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.to_owned()));
        }
    }

    // Header parsing.
    let parsed = TrickleHeaders::parse(|name| {
        let lower = name.to_ascii_lowercase();
        headers.iter().find(|(k, _)| *k == lower).map(|(_, v)| v.as_str())
    });
    let number_ok = |name: &str| {
        header_value(&headers, name).is_none_or(|v| v.trim().parse::<i64>().is_ok_and(|n| n >= -2))
    };
    let trickle_headers = match parsed {
        Ok(h) => {
            assert!(number_ok(HEADER_SEQ) && number_ok(HEADER_LATEST));
            assert_eq!(h.seq, header_value(&headers, HEADER_SEQ).map(|v| v.trim().parse().unwrap()));
            assert_eq!(h.latest, header_value(&headers, HEADER_LATEST).map(|v| v.trim().parse().unwrap()));
            assert_eq!(h.closed, header_value(&headers, HEADER_CLOSED).is_some());
            // Written back as a server would, they parse to the same.
            let written: Vec<(&str, String)> = [
                h.seq.map(|s| (HEADER_SEQ, s.to_string())),
                h.latest.map(|l| (HEADER_LATEST, l.to_string())),
                h.closed.then(|| (HEADER_CLOSED, "terminated".to_owned())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let again = TrickleHeaders::parse(|name| {
                written.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
            });
            assert_eq!(again, Ok(h));
            h
        }
        Err(TrickleError::InvalidHeader { value, .. }) => {
            assert!(!(number_ok(HEADER_SEQ) && number_ok(HEADER_LATEST)));
            assert!(value.chars().count() <= 64);
            TrickleHeaders::default()
        }
        Err(other) => panic!("unexpected header error {other:?}"),
    };

    // Status classification.
    let url = "https://o.example:8935/ai/trickle/c";
    match classify_get(requested, status, &trickle_headers, url, &body) {
        Ok(GetOutcome::Segment { seq, latest }) => {
            assert!(status == 200 && !trickle_headers.closed);
            assert_eq!(seq, trickle_headers.seq.or((requested >= 0).then_some(requested)));
            assert_eq!(latest, trickle_headers.latest);
        }
        Ok(GetOutcome::EndOfStream) => assert!(status == 200 && trickle_headers.closed),
        Ok(GetOutcome::WaitForSame) => {
            assert!(status == STATUS_SEGMENT_NOT_AVAILABLE && requested >= 0);
        }
        Ok(GetOutcome::JumpTo(to)) => {
            assert_eq!(status, STATUS_SEGMENT_NOT_AVAILABLE);
            assert!(to >= 0 && (requested < 0 || to > requested), "jumped back from {requested} to {to}");
        }
        Err(e) => {
            assert!(status != 200);
            assert!(e.to_string().len() <= MAX_ERROR_TEXT + url.len());
        }
    }
    match classify_post(requested, status, &trickle_headers, url, &body) {
        Ok(()) => assert!((200..300).contains(&status) && !trickle_headers.closed),
        Err(e) => {
            assert!(!(200..300).contains(&status) || trickle_headers.closed);
            assert!(e.to_string().len() <= MAX_ERROR_TEXT + url.len());
        }
    }

    // The `next` body.
    match parse_next_body(&body) {
        Ok(n) => assert_eq!(Some(n), std::str::from_utf8(&body).ok().and_then(|s| s.trim().parse().ok())),
        // At most 32 bytes of body, each shown Debug-escaped (`\u{10ffff}` is 10 characters).
        Err(e) => assert!(e.to_string().len() <= 10 * 32 + 64),
    }

    // Sequence numbers on the wire and as text.
    match SeqSpec::from_wire(requested) {
        Some(spec) => {
            assert_eq!(spec.wire_value(), requested);
            assert_eq!(spec.to_string().parse::<SeqSpec>(), Ok(spec));
        }
        None => assert!(requested < -2),
    }
    if let Ok(spec) = text.parse::<SeqSpec>() {
        assert_eq!(SeqSpec::from_wire(spec.wire_value()), Some(spec));
    }

    // Paths.
    if let Some(path) = &path {
        if let Some((chan, tail)) = split_path(path) {
            assert!(!chan.contains('/'));
            let rebuilt = match tail {
                None => format!("{BASE_PATH}{chan}"),
                Some(t) => {
                    assert!(!t.contains('/'));
                    format!("{BASE_PATH}{chan}/{t}")
                }
            };
            assert_eq!(&rebuilt, path);
        } else {
            assert!(!path.starts_with(BASE_PATH) || path[BASE_PATH.len()..].matches('/').count() > 1);
        }
    }

    // Channel names and the URLs built from them.
    if let Some(name) = &channel {
        if is_valid_channel_name(name) {
            let chan = channel_url("https://o.example:8935/", name);
            let path_of = |u: &str| u.strip_prefix("https://o.example:8935").unwrap().to_owned();
            assert_eq!(split_path(&path_of(&chan)), Some((name.as_str(), None)));
            let seg = segment_url(&chan, SeqSpec::At(7));
            assert_eq!(split_path(&path_of(&seg)), Some((name.as_str(), Some("7"))));
            let next = next_url(&chan);
            assert_eq!(split_path(&path_of(&next)), Some((name.as_str(), Some(NEXT_PATH))));
            let names = ChannelNames::for_stream(name);
            if name.len() + "-control".len() <= 200 {
                for derived in [&names.output, &names.control, &names.events, &names.data] {
                    assert!(is_valid_channel_name(derived), "{derived}");
                }
            }
        } else {
            assert!(
                name.is_empty()
                    || name.len() > 200
                    || name == NEXT_PATH
                    || name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b"-_.~".contains(&b)))
            );
        }
    }
});
