//! `get-orchestrator-info` and `select-orchestrator` against a `local-network` child: the JSON
//! fields, `--caps` parsing next to positional addresses, going on past a dead orchestrator, and
//! rejection reasons.

mod common;

use common::{run, LocalNet};

/// Nothing listens on port 1, so connecting fails at once.
const DEAD: &str = "127.0.0.1:1";

#[test]
fn info_json_has_the_fields_and_caps_leave_positionals_alone() {
    let net = LocalNet::start(&[]);
    let orch = net.url("orchestrator");
    // ADDR comes after repeated, comma-delimited --caps: it must stay a positional address.
    let r = run(&[
        "get-orchestrator-info",
        "--format",
        "json",
        "--caps",
        "byoc/text-reversal,live-video-to-video/noop",
        "--caps",
        "byoc/text-reversal",
        &orch,
        // Signed, as go's orchestrators want for BYOC job tokens.
        "--signer",
        &net.url("signer"),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("stdout is one JSON document");
    let list = v.as_array().expect("an array");
    assert_eq!(list.len(), 1, "only ADDR was asked: {v}");
    let o = &list[0];
    assert_eq!(o["ok"], true);
    assert!(o["orchestrator"].as_str().unwrap().contains(orch.trim_start_matches("http://")));
    assert_eq!(o["transcoder"].as_str().unwrap().trim_end_matches('/'), orch);
    assert!(
        o["eth_address"].as_str().unwrap().starts_with("0x")
            && o["eth_address"].as_str().unwrap().len() == 42
    );
    assert!(!o["version"].as_str().unwrap().is_empty());
    assert!(o["ticket_params"].is_boolean());
    assert_eq!(o["requested"]["compatible"], true, "{o}");
    // go never sets bit 37; BYOC shows in the job token instead.
    assert!(o["capabilities"].as_array().unwrap().iter().all(|c| c["id"] != 37), "{o}");
    let byoc = &o["byoc"][0];
    assert_eq!(byoc["capability"], "text-reversal");
    assert_eq!(byoc["ok"], true, "{o}");
    assert_eq!(byoc["wei_per_second"], 100.0);
    assert!(byoc["available_capacity"].as_i64().unwrap() > 0, "{o}");
    // Asked about both capabilities, the orchestrator quotes the sum of their prices: 100 wei
    // per second for text-reversal plus 0.001 wei per pixel for LV2V noop.
    let quoted = o["pricing"]["general"]["wei_per_unit"].as_f64().unwrap();
    assert!((quoted - 100.001).abs() < 1e-9, "{o}");
}

#[test]
fn info_goes_on_past_a_dead_orchestrator() {
    let net = LocalNet::start(&[]);
    let orch = net.url("orchestrator");
    let r = run(&["get-orchestrator-info", "--format", "jsonl", DEAD, &orch]);
    assert_eq!(r.code, Some(0), "one answered, so the run succeeds: {r:?}");
    let lines: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(lines[0]["ok"], false);
    assert!(lines[0]["error"].as_str().unwrap().contains("connect"), "{}", lines[0]);
    assert_eq!(lines[1]["ok"], true);
    assert!(r.stderr.contains("1 of 2 orchestrators failed"), "{}", r.stderr);

    let text = run(&["get-orchestrator-info", DEAD, &orch]);
    assert_eq!(text.code, Some(0));
    assert!(text.stdout.contains("error: cannot connect"), "{}", text.stdout);
    assert!(text.stdout.contains("noop: warm true"), "{}", text.stdout);

    let all_dead = run(&["get-orchestrator-info", DEAD]);
    assert_eq!(all_dead.code, Some(1), "{all_dead:?}");
    assert!(all_dead.stderr.contains("error: no orchestrator answered"), "{}", all_dead.stderr);
}

#[test]
fn select_lists_candidates_and_every_rejection() {
    // Offchain: go's orchestrators hand BYOC job tokens to unsigned senders only then.
    let net = LocalNet::start(&["--offchain"]);
    let orch = net.url("orchestrator");
    let list = format!("{orch},{DEAD}");
    let r = run(&["select-orchestrator", "--orchestrator", &list, "--caps", "byoc/text-reversal"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("1 candidate(s)"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("1. {orch}")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{DEAD}: /process/token: connection failed")), "{}", r.stdout);

    let r = run(&["select-orchestrator", "--orchestrator", &list, "--caps", "byoc/nope"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("no orchestrator can take the job"), "{}", r.stdout);
    assert!(r.stdout.contains("no available capacity for BYOC capability \"nope\""), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{DEAD}: /process/token: connection failed")), "{}", r.stdout);
    assert!(r.stderr.contains("error: no orchestrator available (2 rejected)"), "{}", r.stderr);

    // The price ceiling is a rejection reason too (the BYOC price is 100 wei per second); an
    // on-chain orchestrator wants a signed sender, so the signer comes along.
    let paid = LocalNet::start(&[]);
    let r = run(&[
        "select-orchestrator",
        "--orchestrator",
        &paid.url("orchestrator"),
        "--signer",
        &paid.url("signer"),
        "--caps",
        "byoc/text-reversal",
        "--max-price",
        "1",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("price"), "{}", r.stdout);
    // Unsigned, an on-chain orchestrator refuses the token request, as go's does.
    let r = run(&[
        "select-orchestrator",
        "--orchestrator",
        &paid.url("orchestrator"),
        "--caps",
        "byoc/text-reversal",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("Invalid eth address header"), "{}", r.stdout);
}

/// `--orchestrator-tls` against a TLS `local-network` child, with `--pin-store` files standing in
/// for an orchestrator restart (a pinned fingerprint that is not the one presented).
#[test]
fn orchestrator_tls_modes_on_the_command_line() {
    let net = LocalNet::start_tls(&[]);
    let orch = net.url("orchestrator");
    let addr = orch.trim_start_matches("https://").to_owned();
    let dir = std::env::temp_dir().join(format!("lpgw-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pin_file = dir.join("pins.json");
    let _ = std::fs::remove_file(&pin_file);
    let pins = pin_file.to_str().unwrap();
    let info = |extra: &[&str]| {
        let mut args = vec!["get-orchestrator-info", "--format", "json", addr.as_str()];
        args.extend_from_slice(extra);
        run(&args)
    };

    // First contact pins the certificate and the ETH identity.
    let r = info(&["--pin-store", pins]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let eth = v[0]["eth_address"].as_str().unwrap().to_owned();
    let read =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&pin_file).unwrap()).unwrap() };
    let pinned = read()[&addr].clone();
    assert!(pinned["address"].as_str().unwrap().eq_ignore_ascii_case(&eth), "{pinned}");
    let real = pinned["fingerprint"].as_str().unwrap().to_owned();
    let restarted = |address: &str| {
        let file = serde_json::json!({ &addr: { "fingerprint": "00".repeat(32), "address": address } });
        std::fs::write(&pin_file, file.to_string()).unwrap();
    };

    // Default: the new certificate names the pinned identity, so it is re-pinned, told once.
    restarted(&eth);
    let r = info(&["--pin-store", pins]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stderr.matches("presented a new TLS certificate").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: orchestrator") && r.stderr.contains("--orchestrator-tls strict"),
        "{}",
        r.stderr
    );
    assert_eq!(read()[&addr]["fingerprint"].as_str(), Some(real.as_str()), "re-pinned in the file");

    // Strict refuses the change.
    restarted(&eth);
    let r = info(&["--orchestrator-tls", "strict", "--pin-store", pins]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.all().contains(&format!("certificate of {addr} changed")) && r.all().contains("strict"),
        "{r:?}"
    );

    // Another ETH identity is refused by the default too.
    restarted("0x1111111111111111111111111111111111111111");
    let r = info(&["--pin-store", pins]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.all().contains("names ETH address"), "{r:?}");
    assert!(!r.stderr.contains("presented a new TLS certificate"), "{}", r.stderr);

    // CA mode refuses the self-signed orchestrator.
    let ca = gateway_testkit::tls::TestCa::generate("cli test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.certificate_pem).unwrap();
    let r = info(&["--orchestrator-tls", "ca", "--orchestrator-ca", ca_file.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.all().contains("not trusted by the configured certificate authorities"), "{r:?}");
    assert!(!r.stderr.contains("ERROR"), "the refusal is told once, as the orchestrator's error: {r:?}");

    // Contradictions and bad files are usage errors; --insecure still works, with a warning.
    for bad in [
        vec!["--insecure", "--orchestrator-tls", "strict"],
        vec!["--orchestrator-tls", "ca", "--pin-store", pins],
        vec!["--orchestrator-tls", "ca", "--orchestrator-ca", pins],
    ] {
        let r = info(&bad);
        assert_eq!(r.code, Some(2), "{bad:?}: {r:?}");
    }
    let r = info(&["--insecure"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stderr.matches("warning: --orchestrator-tls insecure").count(), 1, "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
