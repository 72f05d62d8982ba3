//! CA-verified orchestrators: WebPKI roots (system and/or given) and the verifier built on them.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Target of the re-pin warning, so a program that reports re-pins itself (the CLI does) can
use super::*;

/// A CA configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustConfigError {
    /// A PEM input held no certificate, or a malformed one.
    #[error("invalid CA certificate PEM: {0}")]
    InvalidPem(String),
    /// The roots could not be loaded or used (no system roots and none given, a bad root).
    #[error("cannot set up CA verification: {0}")]
    Verifier(String),
}

/// Root certificates for [`OrchestratorTrust::CertificateAuthority`].
#[derive(Debug, Clone, Default)]
pub struct CaRoots {
    system: bool,
    extra: Vec<CertificateDer<'static>>,
}

impl CaRoots {
    /// The platform's roots (the same verifier reqwest uses for signers), plus any added.
    pub fn system() -> CaRoots {
        CaRoots { system: true, extra: Vec::new() }
    }

    /// Only the roots added (a private network's own CA).
    pub fn none() -> CaRoots {
        CaRoots::default()
    }

    /// Adds every certificate in `pem` as a root.
    pub fn with_pem(mut self, pem: &[u8]) -> Result<CaRoots, TrustConfigError> {
        let before = self.extra.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            self.extra.push(cert.map_err(|e| TrustConfigError::InvalidPem(e.to_string()))?);
        }
        if self.extra.len() == before {
            return Err(TrustConfigError::InvalidPem("no CERTIFICATE block".into()));
        }
        Ok(self)
    }

    /// Adds a DER certificate as a root.
    pub fn with_der(mut self, der: impl Into<Vec<u8>>) -> CaRoots {
        self.extra.push(CertificateDer::from(der.into()));
        self
    }
}

/// A WebPKI verifier over [`CaRoots`], built once.
#[derive(Clone)]
pub struct CaVerifier {
    pub(super) inner: Arc<dyn ServerCertVerifier>,
    system: bool,
    extra: usize,
}

impl fmt::Debug for CaVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaVerifier")
            .field("system_roots", &self.system)
            .field("extra_roots", &self.extra)
            .finish()
    }
}

impl CaVerifier {
    /// Loads the roots (system roots through rustls-platform-verifier, as reqwest does).
    pub fn new(roots: CaRoots) -> Result<CaVerifier, TrustConfigError> {
        let provider = provider();
        let (system, extra) = (roots.system, roots.extra.len());
        let inner: Arc<dyn ServerCertVerifier> = if roots.system {
            Arc::new(
                rustls_platform_verifier::Verifier::new_with_extra_roots(roots.extra, provider)
                    .map_err(|e| TrustConfigError::Verifier(e.to_string()))?,
            )
        } else {
            if roots.extra.is_empty() {
                return Err(TrustConfigError::Verifier("no root certificates given".into()));
            }
            let mut store = rustls::RootCertStore::empty();
            for cert in roots.extra {
                store.add(cert).map_err(|e| TrustConfigError::Verifier(e.to_string()))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| TrustConfigError::Verifier(e.to_string()))?
        };
        Ok(CaVerifier { inner, system, extra })
    }
}
