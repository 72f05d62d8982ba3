//! Helpers shared by the testkit's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// An HTTP client for tests (plain HTTP and self-signed HTTPS alike).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().tls_danger_accept_invalid_certs(true).no_proxy().build().expect("client")
}

/// The Python interpreter of the venv with the official SDK (`scripts/setup.sh` creates it).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("LPGW_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs the official Python SDK)",
        p.display()
    );
    p
}
