//! `livepeer-gateway local-network --json` starts a network that serves, and prints its URLs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `local-network --json --plaintext` on free ports with `extra`, and its JSON line.
fn start_json(extra: &[&str]) -> (std::process::Child, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["local-network", "--json", "--plaintext"])
        .args(["--listen", "127.0.0.1:0", "--signer-listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v = serde_json::from_str(&line).expect("one JSON line");
    (child, v)
}

#[test]
fn local_network_prints_json_and_serves() {
    let (mut child, v) = start_json(&["--orchestrators", "2"]);
    let line = v.to_string();
    for key in ["orchestrator", "signer", "discovery", "trickle"] {
        assert!(v[key].as_str().is_some_and(|s| s.starts_with("http://127.0.0.1:")), "{key}: {line}");
    }
    assert_eq!(v["orchestrators"].as_array().unwrap().len(), 2);
    let signer = v["signer"].as_str().unwrap().trim_start_matches("http://").to_owned();
    let answer = http_get(&signer, "/discover-orchestrators?caps=live-video-to-video/noop");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(v["orchestrator"].as_str().unwrap()), "{answer}");
    // As go's discovery: BYOC capabilities are never listed, so a BYOC filter matches nothing.
    let byoc = http_get(&signer, "/discover-orchestrators?caps=byoc/text-reversal");
    assert!(byoc.starts_with("HTTP/1.1 200") && byoc.ends_with("[]"), "{byoc}");
    let orch = v["orchestrator"].as_str().unwrap().trim_start_matches("http://").to_owned();
    let missing = http_get(&orch, "/ai/trickle/nope/next");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_arguments_exit_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["capabilities", "nope/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown pipeline \"nope\""));
    let out = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["local-network", "--orchestrators", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--orchestrators"));
}

#[test]
fn ticket_flags_set_the_face_value_and_ev_the_orchestrator_quotes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args([
            "local-network",
            "--json",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--signer-listen",
            "127.0.0.1:0",
        ])
        .args(["--ticket-face-value", "2e15", "--ticket-ev", "5000000000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let orch = v["orchestrator"].as_str().unwrap().trim_start_matches("http://").to_owned();
    // A signed `/process/token` request: the ticket parameters bound to this sender.
    let key = gateway_testkit::keys::EthKey::random();
    let addr = key.checksum_address();
    let eth = gateway_core::jobs::EthAddressHeader {
        sig: format!("0x{}", hex::encode(key.sign(addr.as_bytes()))),
        addr,
    };
    let mut s = TcpStream::connect(&orch).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /process/token HTTP/1.1\r\nHost: {orch}\r\nLivepeer-Eth-Address: {}\r\nLivepeer-Capability: text-reversal\r\nConnection: close\r\n\r\n",
        eth.to_header()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let token: gateway_core::jobs::JobToken = serde_json::from_str(body.trim()).unwrap();
    let params = token.ticket_params.unwrap();
    assert_eq!(gateway_testkit::tickets::from_be_bytes(&params.face_value), 2_000_000_000_000_000);
    let ev = gateway_testkit::tickets::rat_to_f64(&gateway_testkit::tickets::ticket_ev(
        &params.face_value,
        &params.win_prob,
    ));
    assert!((ev - 5e9).abs() < 1.0, "EV {ev}");
}

#[test]
fn public_host_names_the_orchestrators_in_their_urls() {
    let (mut child, v) = start_json(&["--public-host", "localhost"]);
    let line = v.to_string();
    let orch = v["orchestrator"].as_str().unwrap();
    assert!(orch.starts_with("http://localhost:"), "{line}");
    // What the signer's discovery hands out names it too, and it serves under that name.
    let signer = v["signer"].as_str().unwrap().trim_start_matches("http://").to_owned();
    let listed = http_get(&signer, "/discover-orchestrators");
    assert!(listed.contains(orch), "{listed}");
    let port = orch.rsplit(':').next().unwrap().trim_end_matches('/');
    let answer = http_get(&format!("127.0.0.1:{port}"), "/ai/trickle/nope/next");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    child.kill().unwrap();
    child.wait().unwrap();
}
