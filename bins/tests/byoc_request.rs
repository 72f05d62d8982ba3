//! `byoc-request` against the embedded local network: a JSON answer, an event stream as it
//! arrives, a large answer written to a file, and a worker error as exit code 1.

mod common;

use common::run;

#[test]
fn a_json_request_prints_the_workers_answer() {
    let r = run(&["byoc-request", "--data", r#"{"text":"hello"}"#]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout.trim(), r#"{"reversed":"olleh"}"#);
    assert!(r.stderr.contains("answered HTTP 200 (application/json)"), "{}", r.stderr);
}

#[test]
fn an_event_stream_is_printed_as_it_arrives() {
    let r = run(&["byoc-request", "--path", "stream", "--data", "one two"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains(r#"data: {"reversed":"eno"}"#), "{}", r.stdout);
    assert!(r.stdout.contains(r#"data: {"reversed":"owt"}"#), "{}", r.stdout);
    assert!(r.stdout.contains("data: [DONE]"), "{}", r.stdout);
    assert!(r.stderr.contains("text/event-stream"), "{}", r.stderr);
}

#[test]
fn a_large_answer_goes_to_a_file() {
    let dir = std::env::temp_dir().join(format!("lpgw-byoc-request-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.txt");
    let output = dir.join("out.txt");
    let text = "0123456789".repeat(600_000); // 6 MB, above the 4 MiB the client once capped
    std::fs::write(&input, &text).unwrap();
    let r =
        run(&["byoc-request", "--data-file", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let back = std::fs::read_to_string(&output).unwrap();
    assert_eq!(back.len(), text.len());
    assert_eq!(back, text.chars().rev().collect::<String>());
    assert!(r.stderr.contains(&format!("{} byte(s) received", text.len())), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_worker_error_is_exit_code_1() {
    let r = run(&["byoc-request", "--data", r#"{"no":"text"}"#]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("HTTP 400"), "{}", r.stderr);
    assert!(r.stdout.contains("missing \"text\""), "the worker's answer is still printed: {}", r.stdout);
}
