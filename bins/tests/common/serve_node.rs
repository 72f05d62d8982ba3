//! A `livepeer-gateway serve` child for the node's tests, and what they share: the local
//! network they point it at (in this process, so a test sees what its orchestrator was sent),
//! a plain HTTP client, and answers read whole.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gateway_testkit::network::{LocalNetwork, NetworkConfig};

/// The node, serving until dropped (killed then).
pub struct ServeNode {
    /// The process (its standard error is piped, for tests that read it).
    pub child: Child,
    /// Its base URL.
    pub url: String,
    /// Its RTMP address, when started with `--rtmp-listen`.
    pub rtmp: Option<String>,
}

impl ServeNode {
    /// Starts `serve` on the first orchestrator of `net` and its signer, with `extra` options
    /// and `env`; waits for the line saying where it listens.
    pub fn start(net: &LocalNetwork, extra: &[&str], env: &[(&str, &str)]) -> ServeNode {
        let orch = net.orchestrator_urls()[0].clone();
        let signer = net.signer_url();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--orchestrator", &orch, "--signer", &signer];
        args.extend_from_slice(extra);
        ServeNode::run(&args, env)
    }

    /// Runs the binary with `args` (a `serve` command line) and `--json`, and `env`; waits for
    /// the line saying where it listens.
    pub fn run(args: &[&str], env: &[(&str, &str)]) -> ServeNode {
        let mut child = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
            .envs(env.iter().copied())
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let rtmp = v["rtmp"].as_str().map(str::to_owned);
        ServeNode { child, url: v["listen"].as_str().unwrap().to_owned(), rtmp }
    }

    /// `{url}/live/video-to-video/{path}`.
    pub fn live(&self, path: &str) -> String {
        format!("{}/live/video-to-video/{path}", self.url)
    }

    /// The RTMP address (`rtmp://…`); panics without `--rtmp-listen`.
    pub fn rtmp(&self) -> &str {
        self.rtmp.as_deref().expect("started with --rtmp-listen")
    }
}

impl Drop for ServeNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One orchestrator (no TLS) with status events every 200 ms, and its signer.
pub async fn network() -> LocalNetwork {
    LocalNetwork::start(network_config()).await.unwrap()
}

/// What [`network`] starts, for a test that changes it first.
pub fn network_config() -> NetworkConfig {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.event_interval = Duration::from_millis(200);
    config
}

/// A plain HTTP client (no proxy).
pub fn client() -> reqwest::Client {
    let _ = gateway_actors::tls::provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The status and the body of `req`'s answer.
pub async fn answer(req: reqwest::RequestBuilder) -> (u16, String) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
