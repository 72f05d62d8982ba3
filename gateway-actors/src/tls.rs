//! Who the gateway trusts: system roots for signers and discovery, trust-on-first-use pins for
//! orchestrators.
//!
//! Orchestrators serve self-signed certificates, so no CA can vouch for them. go-livepeer and the
//! Python SDK skip verification; we pin instead: the first certificate seen for a `host:port`
//! is remembered (optionally in a file that survives restarts), and a different certificate later
//! is refused with a clear error. [`OrchestratorTrust::Insecure`] restores the skip-verify
//! behaviour for networks that rotate certificates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

use gateway_core::eth::keccak256;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The crypto provider every TLS config here uses (ring: pure, no C toolchain beyond cc).
pub fn provider() -> Arc<CryptoProvider> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // reqwest looks up the process default when it builds a client; make it ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How orchestrator certificates are checked.
#[derive(Debug, Clone)]
pub enum OrchestratorTrust {
    /// Pin the first certificate per host; refuse a different one later.
    TrustOnFirstUse(PinStore),
    /// Accept any certificate (go-livepeer's and the Python SDK's behaviour).
    Insecure,
}

impl Default for OrchestratorTrust {
    fn default() -> Self {
        OrchestratorTrust::TrustOnFirstUse(PinStore::in_memory())
    }
}

/// Pinned certificate fingerprints (keccak-256 of the DER), by `host:port` (several
/// orchestrators often share one host).
#[derive(Debug, Clone)]
pub struct PinStore {
    pins: Arc<Mutex<BTreeMap<String, String>>>,
    path: Option<PathBuf>,
}

/// A pin store file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("pin store {path}: {reason}")]
pub struct PinStoreError {
    path: String,
    reason: String,
}

impl PinStore {
    /// Pins that last as long as the process.
    pub fn in_memory() -> PinStore {
        PinStore { pins: Arc::default(), path: None }
    }

    /// Pins kept in a JSON file (`{"host": "fingerprint"}`), loaded now and saved on change.
    pub fn persistent(path: impl Into<PathBuf>) -> Result<PinStore, PinStoreError> {
        let path = path.into();
        let err = |reason: String| PinStoreError { path: path.display().to_string(), reason };
        let pins = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(PinStore { pins: Arc::new(Mutex::new(pins)), path: Some(path) })
    }

    /// The pinned fingerprint of `host`.
    pub fn get(&self, host: &str) -> Option<String> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner()).get(host).cloned()
    }

    /// Forgets `host` (after an operator confirmed a certificate change).
    pub fn forget(&self, host: &str) {
        self.pins.lock().unwrap_or_else(|e| e.into_inner()).remove(host);
        self.save();
    }

    fn check_or_pin(&self, host: &str, fingerprint: &str) -> Result<(), String> {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        match pins.get(host) {
            Some(p) if p == fingerprint => Ok(()),
            Some(p) => Err(format!(
                "certificate of {host} changed (pinned {}…, got {}…); if the orchestrator really rotated its certificate, remove its pin",
                &p[..12.min(p.len())],
                &fingerprint[..12.min(fingerprint.len())]
            )),
            None => {
                pins.insert(host.to_owned(), fingerprint.to_owned());
                drop(pins);
                self.save();
                Ok(())
            }
        }
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Ok(json) = serde_json::to_vec_pretty(&pins) {
            if let Err(e) = std::fs::write(path, json) {
                tracing::warn!(path = %path.display(), error = %e, "cannot save certificate pins");
            }
        }
    }
}

/// Fingerprint of a certificate.
pub fn fingerprint(cert: &[u8]) -> String {
    hex::encode(keccak256(cert))
}

#[derive(Debug)]
struct OrchestratorVerifier {
    trust: OrchestratorTrust,
    provider: Arc<CryptoProvider>,
    /// The port this config connects to; rustls only tells the verifier the host.
    port: u16,
}

impl ServerCertVerifier for OrchestratorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            OrchestratorTrust::Insecure => Ok(ServerCertVerified::assertion()),
            OrchestratorTrust::TrustOnFirstUse(pins) => {
                let key = format!("{}:{}", server_name.to_str(), self.port);
                pins.check_or_pin(&key, &fingerprint(end_entity))
                    .map(|_| ServerCertVerified::assertion())
                    .map_err(rustls::Error::General)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS client config for orchestrators on `port` (HTTP and gRPC), with the given ALPN protocols.
/// Pins are per `host:port`, so a config serves one port.
pub fn orchestrator_client_config(
    trust: &OrchestratorTrust,
    alpn: &[&[u8]],
    port: u16,
) -> rustls::ClientConfig {
    let provider = provider();
    let verifier = Arc::new(OrchestratorVerifier { trust: trust.clone(), provider: provider.clone(), port });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tofu_pins_then_refuses_a_change() {
        let pins = PinStore::in_memory();
        assert!(pins.check_or_pin("o1", "aaaa").is_ok());
        assert!(pins.check_or_pin("o1", "aaaa").is_ok());
        let err = pins.check_or_pin("o1", "bbbb").unwrap_err();
        assert!(err.contains("changed"), "{err}");
        assert!(pins.check_or_pin("o2", "bbbb").is_ok());
        pins.forget("o1");
        assert!(pins.check_or_pin("o1", "bbbb").is_ok());
    }

    #[test]
    fn persistent_pins_survive_reload() {
        let dir = std::env::temp_dir().join(format!("lpgw-pins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pins.json");
        let _ = std::fs::remove_file(&path);
        let a = PinStore::persistent(&path).unwrap();
        a.check_or_pin("o", "f1").unwrap();
        let b = PinStore::persistent(&path).unwrap();
        assert_eq!(b.get("o").as_deref(), Some("f1"));
        assert!(b.check_or_pin("o", "f2").is_err());
        std::fs::write(&path, b"not json").unwrap();
        assert!(PinStore::persistent(&path).is_err());
    }
}
