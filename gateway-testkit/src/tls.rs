//! Self-signed TLS for the local orchestrator, generated at start like go-livepeer's.
//!
//! Orchestrators on the real network serve HTTPS and gRPC with a self-signed certificate, so a
//! gateway must cope with certificates no CA vouches for (skip-verify or trust-on-first-use).
//! The local network does the same, offering HTTP/2 and HTTP/1.1 through ALPN.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A freshly generated self-signed certificate and the server config that serves it.
#[derive(Clone)]
pub struct SelfSignedTls {
    /// DER of the certificate (what a client pins).
    pub certificate_der: Vec<u8>,
    /// rustls server configuration with ALPN `h2` and `http/1.1`.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for SelfSignedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSignedTls").field("certificate_bytes", &self.certificate_der.len()).finish()
    }
}

/// TLS setup failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TlsError(String);

impl SelfSignedTls {
    /// A certificate for `localhost` and `127.0.0.1` (plus `extra_names`).
    pub fn generate(extra_names: &[String]) -> Result<SelfSignedTls, TlsError> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(extra_names.iter().cloned());
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError(e.to_string()))?;
        let cert_der: CertificateDer<'static> = certified.cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)
            .map_err(|e| TlsError(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(SelfSignedTls { certificate_der: cert_der.to_vec(), server_config: Arc::new(config) })
    }
}
