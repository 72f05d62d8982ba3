//! `call-runner` (issue 17): one paid call to a live runner's app registered with a separate
//! `local-network`: a single-shot runner's events streamed line by line, a persistent runner
//! called in a session of its own (released after), busy runners skipped until none is left,
//! an unreachable runner's 502 as exit 1, and bad arguments refused before anything is paid.

mod common;

use common::{run, LocalNet};
use gateway_actors::http::HttpClients;
use gateway_actors::live_runners::{RunnerCall, RunnerRegistration};
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::{Gateway, GatewayConfig};
use gateway_core::runners::{HeartbeatRequest, RunnerFilter, RunnerPriceInfo, MODE_SINGLE_SHOT};
use gateway_core::token::NetworkSettings;
use gateway_testkit::runner_app::RunnerApp;

struct Fixture {
    net: LocalNet,
    rt: tokio::runtime::Runtime,
    app: RunnerApp,
    regs: Vec<RunnerRegistration>,
}

impl Fixture {
    fn start() -> Fixture {
        let net = LocalNet::start(&[]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let app = rt.block_on(RunnerApp::start()).unwrap();
        Fixture { net, rt, app, regs: Vec::new() }
    }

    /// Registers `app` (capacity 1, $0.036 an hour) in front of the echo app, or `url`.
    fn register(&mut self, app: &str, mode: &str, url: Option<&str>) -> String {
        let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
        let heartbeat = HeartbeatRequest {
            runner_url: url.unwrap_or(&self.app.url).into(),
            app: app.into(),
            mode: mode.into(),
            capacity: 1,
            price_info: RunnerPriceInfo { price: 0.036.into(), currency: "usd".into(), unit: "hour".into() },
            ..Default::default()
        };
        let (orch, secret) = (self.net.url("orchestrator"), self.net.urls["runner_secret"].as_str().unwrap());
        let reg = self.rt.block_on(RunnerRegistration::register(&clients, &orch, secret, heartbeat)).unwrap();
        let id = reg.runner_id().to_owned();
        self.regs.push(reg);
        id
    }

    fn call(&self, extra: &[&str]) -> common::Run {
        let (orch, signer) = (self.net.url("orchestrator"), self.net.url("signer"));
        let mut args = vec!["call-runner", "--orchestrator", &orch, "--signer", &signer];
        args.extend_from_slice(extra);
        run(&args)
    }
}

#[test]
fn a_single_shot_runner_streams_its_events_and_a_persistent_one_gets_a_session_for_the_call() {
    let mut fx = Fixture::start();
    fx.register("gen", MODE_SINGLE_SHOT, None);
    let r = fx.call(&["--app", "gen", "--path", "v1/events?count=3&interval_ms=100", "--events"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["i"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    let session = lines[0]["session"].as_str().unwrap();
    assert!(
        r.stderr.contains(&format!("answered HTTP 200 (text/event-stream), session {session}")),
        "{}",
        r.stderr
    );

    let runner_id = fx.register("chat", "persistent", None);
    let r = fx.call(&["--app", "chat", "--path", "v1/echo", "--data", r#"{"q":"hi"}"#, "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(
        (v["body"]["method"].as_str(), v["body"]["path"].as_str()),
        (Some("POST"), Some("/runner/v1/echo"))
    );
    assert_eq!(v["body"]["body"], r#"{"q":"hi"}"#);
    assert_eq!(v["body"]["session"]["Livepeer-Session-Id"], v["session_id"], "{v}");
    // The session was stopped after the call: the runner is free again.
    let r = run(&["runners", "--orchestrator", &fx.net.url("orchestrator"), "--app", "chat", "--json"]);
    let list: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(list[0]["runner"]["capacity_used"], 0, "{list}");
    assert_eq!(list[0]["runner"]["url"], format!("{}/apps/{runner_id}/session", fx.net.url("orchestrator")));
}

#[test]
fn busy_runners_are_skipped_until_none_is_left_and_a_dead_one_is_exit_1() {
    let mut fx = Fixture::start();
    fx.register("busy", MODE_SINGLE_SHOT, None);
    fx.register("busy", MODE_SINGLE_SHOT, None);
    // Hold both runners with slow calls of our own.
    let network = NetworkSettings {
        orchestrators: vec![fx.net.url("orchestrator")],
        signer: Some(fx.net.url("signer")),
        ..Default::default()
    };
    let held = fx.rt.block_on(async {
        let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
        let filter = RunnerFilter { apps: vec!["busy".into()], gpus: vec![] };
        let mut held = Vec::new();
        for candidate in gw.discover_runners(&filter).await.unwrap().runners {
            let call = RunnerCall::get("events?count=2&interval_ms=20000");
            let mut answer = gw.call_runner(&candidate, call).await.unwrap();
            answer.next_event().await.unwrap();
            held.push(answer);
        }
        (gw, held)
    });
    assert_eq!(held.1.len(), 2);
    let r = fx.call(&["--app", "busy"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.matches("trying the next runner").count(), 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no runner took the call (last: no capacity available for runner)"),
        "{}",
        r.stderr
    );
    drop(held);

    // A runner the orchestrator cannot reach: its 502 is printed and the exit is 1.
    fx.register("gone", MODE_SINGLE_SHOT, Some("http://127.0.0.1:1/app"));
    let r = fx.call(&["--app", "gone", "--data", "x"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("answered HTTP 502"), "{}", r.stderr);
    assert!(r.stderr.contains("the runner's app answered HTTP 502"), "{}", r.stderr);
}

#[test]
fn bad_arguments_are_usage_errors_and_no_match_is_exit_1() {
    let fx = Fixture::start();
    for (args, says) in [
        (&["--app", "x", "--header", "no colon"][..], "is not `Name: value`"),
        (&["--app", "x", "--method", "BAD METHOD"][..], "is not an HTTP method"),
        (&["--app", "x", "--data-file", "/nonexistent/body"][..], "cannot read /nonexistent/body"),
    ] {
        let r = fx.call(args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    let r = fx.call(&["--app", "nothing-serves-this"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no runner serves nothing-serves-this"), "{}", r.stderr);
}
