//! Helpers shared by the testkit's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// An HTTP client for tests (plain HTTP and self-signed HTTPS alike).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().tls_danger_accept_invalid_certs(true).no_proxy().build().expect("client")
}

/// The Python interpreter with the official SDK.
pub fn python() -> PathBuf {
    livepeer_gateway_testkit::python::interpreter()
}

/// Signs `job` through the signer's `/sign-byoc-job` at `signer_url`, as a gateway does: the
/// signer's address becomes the sender and its signature over the V1 encoding the `sig`.
pub async fn sign_byoc_job(
    http: &reqwest::Client,
    signer_url: &str,
    mut job: gateway_core::jobs::JobRequest,
) -> gateway_core::jobs::JobRequest {
    let body = gateway_core::signer::SignByocJobRequest {
        id: job.id.clone(),
        capability: job.capability.clone(),
        request: job.request.clone(),
        parameters: job.parameters.clone(),
        timeout_seconds: job.timeout_seconds,
    };
    let url = format!("{signer_url}{}", gateway_core::signer::SIGN_BYOC_JOB_PATH);
    let signed: gateway_core::signer::SignByocJobResponse =
        http.post(url).json(&body).send().await.unwrap().json().await.unwrap();
    job.sender = signed.sender;
    job.sig = signed.signature;
    job
}
