//! A plaintext local network with a known signer key, and the calls the conformance tests make
//! to its orchestrator over real HTTP: jobs signed by the signer (or locally, where a test needs
//! a job the signer will not sign), payments minted by the signer, raw answers.

use std::time::Duration;

use base64::Engine;
use gateway_core::capabilities::{build_capabilities, CapabilityQuery};
use gateway_core::jobs::{self, JobRequest};
use gateway_core::lp_rpc::orchestrator_client::OrchestratorClient;
use gateway_core::lp_rpc::{self, OrchestratorInfo, OrchestratorRequest};
use gateway_core::signer::BYOC_JOB_V1_PREFIX;
use livepeer_gateway_testkit::keys::EthKey;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};
use livepeer_gateway_testkit::orchestrator::GoVersion;
use serde_json::{json, Value};

use crate::common;

/// The BYOC capability the local network registers.
pub const CAP: &str = livepeer_gateway_testkit::workers::TEXT_REVERSAL;
/// Its capacity (`OrchestratorConfig::default`).
pub const CAPACITY: i64 = 64;
/// Its price in wei per second (`OrchestratorConfig::default`).
pub const PRICE: i64 = 100;
/// go's minimum balance on every priced route: 60 s of price.
pub const MIN_BALANCE: f64 = 60.0 * PRICE as f64;

/// A running network and a client for it.
pub struct Net {
    pub net: LocalNetwork,
    pub http: reqwest::Client,
    /// The orchestrator's base URL.
    pub orch: String,
    /// The signer's key (jobs it signs name this sender).
    pub key: EthKey,
}

/// An answer: status, headers, body text. `Err` when the connection dropped without one.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Status and body, the pair most assertions compare.
    pub fn pair(&self) -> (u16, &str) {
        (self.status, self.body.as_str())
    }
}

/// Starts a plaintext network whose signer signs with a key the test knows.
pub async fn start(tweak: impl FnOnce(&mut NetworkConfig)) -> Net {
    let key = EthKey::random();
    let mut config = NetworkConfig { tls: false, ..Default::default() };
    config.signer.key = Some(key.clone());
    tweak(&mut config);
    let net = LocalNetwork::start(config).await.expect("network starts");
    let orch = net.orchestrator_urls()[0].clone();
    Net { net, http: common::http(), orch, key }
}

/// A stream job on [`CAP`]: `request` names the stream, `parameters` is `{}`.
pub fn stream_job(id: &str) -> JobRequest {
    JobRequest {
        id: id.into(),
        request: json!({ "stream_id": id }).to_string(),
        parameters: "{}".into(),
        capability: CAP.into(),
        timeout_seconds: 70,
        ..Default::default()
    }
}

/// A `Livepeer` header from arbitrary JSON (base64 of its text).
pub fn raw_job_header(job: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(job.to_string())
}

/// go's `FlattenBYOCJob`, written out independently of the crates under test.
pub fn v1_message(job: &JobRequest) -> Vec<u8> {
    let mut out = BYOC_JOB_V1_PREFIX.to_vec();
    out.extend_from_slice(&job.timeout_seconds.to_be_bytes());
    for field in [&job.id, &job.capability, &job.request, &job.parameters] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

impl Net {
    /// The signer's address (the sender of every job and payment it signs).
    pub fn sender(&self) -> [u8; 20] {
        self.key.address()
    }

    /// The sender's balance on [`CAP`], as the orchestrator keeps it.
    pub fn balance(&self) -> f64 {
        self.net.orchestrator().balance(&self.sender(), CAP)
    }

    /// Signs `job` through the signer's `/sign-byoc-job`, as a gateway does.
    pub async fn sign(&self, job: JobRequest) -> JobRequest {
        common::sign_byoc_job(&self.http, &self.net.signer_url(), job).await
    }

    /// Signs `job` with the signer's key directly, over what `version` verifies (for jobs the
    /// signer refuses to sign, such as an empty id, and for master's message).
    pub fn sign_locally(&self, mut job: JobRequest, version: GoVersion) -> JobRequest {
        let msg = match version {
            GoVersion::Pr3869 => v1_message(&job),
            GoVersion::Master => format!("{}{}", job.request, job.parameters).into_bytes(),
        };
        job.sender = self.key.checksum_address();
        job.sig = format!("0x{}", hex::encode(self.key.sign(&msg)));
        job
    }

    /// GetOrchestrator as a gateway asks before paying: signed, for `byoc/<CAP>`.
    pub async fn info(&self, caps: Option<&str>) -> OrchestratorInfo {
        let id = self.identity().await;
        let req = OrchestratorRequest {
            address: self.sender().to_vec(),
            sig: hex::decode(id["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap(),
            capabilities: caps.map(|q| build_capabilities(&[q.parse::<CapabilityQuery>().unwrap()])),
            ignore_capacity_check: true,
        };
        self.grpc(req).await.unwrap()
    }

    /// A raw GetOrchestrator.
    pub async fn grpc(&self, req: OrchestratorRequest) -> Result<OrchestratorInfo, tonic::Status> {
        let endpoint = tonic::transport::Endpoint::from_shared(self.orch.clone()).unwrap();
        let channel = endpoint.connect().await.expect("connect");
        OrchestratorClient::new(channel).get_orchestrator(req).await.map(|r| r.into_inner())
    }

    async fn identity(&self) -> Value {
        self.http
            .post(format!("{}/sign-orchestrator-info", self.net.signer_url()))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A `Livepeer-Payment` for [`CAP`] minted by the signer for `seconds` of usage.
    pub async fn payment(&self, seconds: i64) -> String {
        let info = self.info(Some(&format!("byoc/{CAP}"))).await;
        let caps = lp_rpc::to_base64(&build_capabilities(&[CapabilityQuery::byoc(CAP).unwrap()]));
        let body = json!({
            "orchestrator": lp_rpc::to_base64(&info), "type": "byoc",
            "capabilities": caps, "preloadSeconds": seconds,
        });
        let resp = self
            .http
            .post(format!("{}/generate-live-payment", self.net.signer_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        resp.json::<Value>().await.unwrap()["payment"].as_str().unwrap().to_owned()
    }

    /// `method path` with the job header (raw), an optional payment and an optional body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        job_header: Option<&str>,
        payment: Option<&str>,
        body: Option<&[u8]>,
    ) -> reqwest::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{path}", self.orch));
        if let Some(h) = job_header {
            req = req.header(jobs::HEADER_JOB, h);
        }
        if let Some(p) = payment {
            req = req.header(jobs::HEADER_PAYMENT, p);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_vec());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        Ok(Answer { status, headers, body })
    }

    /// `POST path` with a job, an optional payment and an optional body; panics on a dropped
    /// connection.
    pub async fn post(
        &self,
        path: &str,
        job: &JobRequest,
        payment: Option<&str>,
        body: Option<&[u8]>,
    ) -> Answer {
        self.send(reqwest::Method::POST, path, Some(&job.to_header()), payment, body)
            .await
            .expect("an answer")
    }

    /// `GET /process/token` with the signer's identity for `capability`.
    pub async fn token(&self, capability: &str) -> Answer {
        let id = self.identity().await;
        let eth = jobs::EthAddressHeader {
            addr: id["address"].as_str().unwrap().into(),
            sig: id["signature"].as_str().unwrap().into(),
        };
        self.token_with(Some(&eth.to_header()), Some(capability)).await
    }

    /// `GET /process/token` with raw headers.
    pub async fn token_with(&self, eth: Option<&str>, capability: Option<&str>) -> Answer {
        let mut req = self.http.get(format!("{}{}", self.orch, jobs::PROCESS_TOKEN_PATH));
        if let Some(e) = eth {
            req = req.header(jobs::HEADER_ETH_ADDRESS, e);
        }
        if let Some(c) = capability {
            req = req.header(jobs::HEADER_CAPABILITY, c);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Answer { status, headers, body: resp.text().await.unwrap() }
    }

    /// `available_capacity` in the token for [`CAP`] (go leaves it out at 0).
    pub async fn available_capacity(&self) -> i64 {
        let t = self.token(CAP).await;
        let v: Value = serde_json::from_str(&t.body).unwrap();
        v.get("available_capacity").map(|c| c.as_i64().unwrap()).unwrap_or(0)
    }

    /// Polls `cond` every 20 ms for up to 20 s.
    pub async fn wait_for(&self, what: &str, mut cond: impl FnMut(&Net) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !cond(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The error an `encoding/json` decode of a non-object `request` gives.
pub fn request_details_error(kind: &str) -> String {
    format!(
        "Unable to unmarshal job request details err=json: cannot unmarshal {kind} into Go value of type byoc.JobRequestDetails"
    )
}
