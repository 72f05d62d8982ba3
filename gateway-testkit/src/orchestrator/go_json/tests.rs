//! Tests of the go `encoding/json` double: syntax errors and decoding errors word for word as
//! go writes them.

use super::*;

#[test]
fn syntax_errors_read_as_go_writes_them() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "unexpected end of JSON input"),
        (b"   ", "unexpected end of JSON input"),
        (b"{\"a\":", "unexpected end of JSON input"),
        (b"x", "invalid character 'x' looking for beginning of value"),
        (b"{} x", "invalid character 'x' after top-level value"),
        (b"{x}", "invalid character 'x' looking for beginning of object key string"),
        (b"{\"a\" 1}", "invalid character '1' after object key"),
        (b"{\"a\":1 2}", "invalid character '2' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b"\"a\tb\"", r"invalid character '\t' in string literal"),
        (b"\"\\x\"", "invalid character 'x' in string escape code"),
        (b"\"\\u12g4\"", "invalid character 'g' in \\u hexadecimal character escape"),
        (b"-a", "invalid character 'a' in numeric literal"),
        (b"1.e", "invalid character 'e' after decimal point in numeric literal"),
        // At the end go feeds a space, whose error wins over "unexpected end".
        (b"1e+", "invalid character ' ' in exponent of numeric literal"),
        (b"-", "invalid character ' ' in numeric literal"),
        (b"1ex", "invalid character 'x' in exponent of numeric literal"),
        (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
        (b"\"abc", "unexpected end of JSON input"),
        (b"trUe", "invalid character 'U' in literal true (expecting 'u')"),
        (b"nul1", "invalid character '1' in literal null (expecting 'l')"),
        (b"'a'", r"invalid character '\'' looking for beginning of value"),
        (b"\x00", r"invalid character '\x00' looking for beginning of value"),
        (b"\xc3", r"invalid character 'Ã' looking for beginning of value"),
        (b"01", "invalid character '1' after top-level value"),
    ];
    for (input, want) in cases {
        assert_eq!(check_valid(input).unwrap_err(), *want, "{:?}", String::from_utf8_lossy(input));
    }
    for ok in [&b"null"[..], b" {} ", b"[1,-0.5e+3,\"\\u00e9\",true,false,null]", b"12"] {
        assert!(check_valid(ok).is_ok(), "{:?}", String::from_utf8_lossy(ok));
    }
    let deep = "[".repeat(10_001);
    assert_eq!(check_valid(deep.as_bytes()).unwrap_err(), "exceeded max depth");
}

#[test]
fn struct_decoding_follows_go() {
    let d = |s: &str| unmarshal(s.as_bytes(), &JOB_REQUEST_DETAILS);
    assert_eq!(d("null").unwrap().str("stream_id"), "");
    assert_eq!(d(r#"{"STREAM_ID":"a","x":1}"#).unwrap().str("stream_id"), "a");
    // Exact match beats a folded one whatever the order; the last duplicate wins; null is a no-op.
    assert_eq!(d(r#"{"stream_id":"a","Stream_Id":"b"}"#).unwrap().str("stream_id"), "b");
    assert_eq!(d(r#"{"stream_id":"a","stream_id":null}"#).unwrap().str("stream_id"), "a");
    assert_eq!(
        d(r#""x""#).unwrap_err(),
        "json: cannot unmarshal string into Go value of type byoc.JobRequestDetails"
    );
    assert_eq!(
        d("[]").unwrap_err(),
        "json: cannot unmarshal array into Go value of type byoc.JobRequestDetails"
    );
    assert_eq!(
        d(r#"{"stream_id":5}"#).unwrap_err(),
        "json: cannot unmarshal number into Go struct field JobRequestDetails.stream_id of type string"
    );
    assert_eq!(d("").unwrap_err(), "unexpected end of JSON input");
    let p = |s: &str| unmarshal(s.as_bytes(), &JOB_PARAMETERS);
    assert_eq!(
        p(r#"{"enable_video_ingress":"yes"}"#).unwrap_err(),
        "json: cannot unmarshal string into Go struct field JobParameters.enable_video_ingress of type bool"
    );
    assert_eq!(
        p(r#"{"orchestrators":{"exclude":[1]}}"#).unwrap_err(),
        "json: cannot unmarshal number into Go struct field JobOrchestratorsFilter.orchestrators.exclude of type string"
    );
    assert_eq!(
        p(r#"{"orchestrators":"x"}"#).unwrap_err(),
        "json: cannot unmarshal string into Go struct field JobParameters.orchestrators of type byoc.JobOrchestratorsFilter"
    );
    // The first type error is reported, decoding goes on.
    assert_eq!(
        p(r#"{"enable_data_output":1,"enable_video_egress":"x"}"#).unwrap_err(),
        "json: cannot unmarshal number into Go struct field JobParameters.enable_data_output of type bool"
    );
    let ok = p(r#"{"enable_data_output":true,"orchestrators":{"include":["a"]}}"#).unwrap();
    assert!(ok.bool("enable_data_output"));
    assert_eq!(ok.field("orchestrators").unwrap().strings("include"), vec!["a".to_owned()]);
    let j = |s: &str| unmarshal(s.as_bytes(), &JOB_REQUEST);
    assert_eq!(j(r#"{"timeout_seconds":30}"#).unwrap().int("timeout_seconds"), 30);
    assert_eq!(
        j(r#"{"timeout_seconds":30.5}"#).unwrap_err(),
        "json: cannot unmarshal number 30.5 into Go struct field JobRequest.timeout_seconds of type int"
    );
    assert!(j(r#"{"timeout_seconds":"30"}"#).is_err());
    assert_eq!(j(r#"{"orchsearchtimeout":5}"#).unwrap().int("OrchSearchTimeout"), 5);
}

#[test]
fn strings_unquote_as_go_does() {
    let Json::String(s) = parse(br#""a\u00e9\ud83d\ude00\ud800x\/""#).unwrap() else { panic!() };
    assert_eq!(s, "a\u{e9}\u{1f600}\u{fffd}x/");
    assert!(is_object_or_null(b"null") && is_object_or_null(b" {\"a\":[1]} "));
    assert!(!is_object_or_null(b"") && !is_object_or_null(b"[]") && !is_object_or_null(b"\"x\""));
}

#[test]
fn go_base64_and_addresses() {
    assert_eq!(std_base64("YQ==").unwrap(), b"a");
    assert_eq!(std_base64("YR==").unwrap(), b"a", "trailing bits are not checked");
    assert_eq!(std_base64("YQ\r\n==").unwrap(), b"a");
    assert!(std_base64("YQ").is_none() && std_base64("Y Q==").is_none());
    let mut want = [0u8; 20];
    want[19] = 0xab;
    assert_eq!(hex_to_address("0xab"), want);
    assert_eq!(hex_to_address("ab"), want);
    want[19] = 0x0a;
    assert_eq!(hex_to_address("0Xa"), want);
    // Decoding stops at the first bad digit ("0azz": one byte).
    assert_eq!(hex_to_address("0xazz"), want);
    assert_eq!(hex_to_address(""), [0u8; 20]);
}
