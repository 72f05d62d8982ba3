//! Self-signed TLS for the local orchestrator, generated at start like go-livepeer's.
//!
//! Orchestrators on the real network serve HTTPS and gRPC with a self-signed certificate, so a
//! gateway must cope with certificates no CA vouches for (skip-verify or trust-on-first-use).
//! The local network does the same, offering HTTP/2 and HTTP/1.1 through ALPN. [`TestCa`]
//! issues certificates instead, for orchestrators a gateway verifies against a CA.

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

fn names(extra_names: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(extra_names.iter().cloned());
    names
}

impl SelfSignedTls {
    /// A certificate for `localhost` and `127.0.0.1` (plus `extra_names`).
    pub fn generate(extra_names: &[String]) -> Result<SelfSignedTls, TlsError> {
        let certified =
            rcgen::generate_simple_self_signed(names(extra_names)).map_err(|e| TlsError(e.to_string()))?;
        let cert_der: CertificateDer<'static> = certified.cert.der().clone();
        Self::serve(vec![cert_der], &certified.signing_key)
    }

    /// A certificate for `localhost` and `127.0.0.1` (plus `extra_names`) issued by `ca`; the
    /// server sends the CA certificate after its own, as real servers send intermediates.
    pub fn issued_by(ca: &TestCa, extra_names: &[String]) -> Result<SelfSignedTls, TlsError> {
        let err = |e: rcgen::Error| TlsError(e.to_string());
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut params = rcgen::CertificateParams::new(names(extra_names)).map_err(err)?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem).map_err(err)?;
        let issuer = rcgen::Issuer::new(ca.params.clone(), ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        let chain = vec![cert.der().clone(), CertificateDer::from(ca.certificate_der.clone())];
        Self::serve(chain, &key)
    }

    fn serve(chain: Vec<CertificateDer<'static>>, key: &rcgen::KeyPair) -> Result<SelfSignedTls, TlsError> {
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate_der = chain[0].to_vec();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| TlsError(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(SelfSignedTls { certificate_der, server_config: Arc::new(config) })
    }
}

/// A certificate authority for tests of CA-verified orchestrators: give the network
/// ([`crate::network::NetworkConfig::certificate_authority`]) and the client its certificate.
#[derive(Clone)]
pub struct TestCa {
    /// DER of the CA certificate (the root a client trusts).
    pub certificate_der: Vec<u8>,
    /// The same, PEM.
    pub certificate_pem: String,
    params: rcgen::CertificateParams,
    key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("certificate_bytes", &self.certificate_der.len()).finish()
    }
}

impl TestCa {
    /// A fresh self-signed CA named `name`.
    pub fn generate(name: &str) -> Result<TestCa, TlsError> {
        let err = |e: rcgen::Error| TlsError(e.to_string());
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(TestCa {
            certificate_der: cert.der().to_vec(),
            certificate_pem: cert.pem(),
            params,
            key_pem: key.serialize_pem(),
        })
    }
}
