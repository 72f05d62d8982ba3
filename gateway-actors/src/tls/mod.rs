//! Who the gateway trusts: system roots for signers and discovery, and for orchestrators one of
//! four policies ([`OrchestratorTrust`]).
//!
//! go-livepeer orchestrators serve a self-signed certificate that they **regenerate at every
//! start** (`server/cert.go`, `getCert`: "for now, just generate a new cert every time"), and
//! go's gateways skip verification (`InsecureSkipVerify` in `server/segment_rpc.go`). Pinning
//! the first certificate forever therefore locks out every orchestrator that restarts. The
//! policies:
//!
//! - [`OrchestratorTrust::Pinned`] (the default): per `host:port` the pin store remembers the
//!   certificate *and* the orchestrator's ETH identity (the `address` of its `GetOrchestrator`
//!   answer and the ticket `recipient`). While the certificate is unchanged it is ordinary
//!   trust-on-first-use, and an identity change on that certificate is refused. A new
//!   certificate is accepted only on a `GetOrchestrator` connection, and re-pinned (with a
//!   warning) only once that answer names the pinned address and the pinned ticket recipient;
//!   until then, HTTP connections to the new certificate are refused. A different identity is
//!   refused.
//! - [`OrchestratorTrust::Strict`]: the pin is the certificate; any change is refused until an
//!   operator removes the pin ([`PinStore::forget`]).
//! - [`OrchestratorTrust::CertificateAuthority`]: WebPKI chain and name checks against system
//!   roots and/or roots the caller provides ([`CaRoots`]), for orchestrators with real
//!   certificates.
//! - [`OrchestratorTrust::Insecure`]: any certificate (go-livepeer's and the Python SDK's
//!   behaviour).
//!
//! What the `Pinned` re-pin does and does not prove: nothing in `GetOrchestrator` is signed by
//! the orchestrator's ETH key (go signs only transcoded segment hashes, a flow this gateway does
//! not use), so naming the pinned address is a *claim*, which anyone who knows the public
//! address can make. What the rule guarantees is narrower and real: every ticket made from
//! answers over pinned connections names the recipient first pinned for that `host:port`, and
//! winning tickets pay that recipient on chain, so whoever answers there cannot redirect
//! payments to itself; a different operator behind the same address (a reassigned IP, a moved
//! DNS name) is refused instead of silently trusted; and every certificate change is logged. It
//! does **not** stop an active attacker on the path, at any time (not only at restarts), from
//! presenting its own certificate, naming the pinned identity, being re-pinned (with the
//! warning) and then reading or altering media: use `Strict` (or `CertificateAuthority`) for
//! that.

use std::sync::{Arc, Mutex, Once};

use gateway_core::eth::{checksum_address, keccak256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, OtherError, SignatureScheme};

mod ca;
mod pins;
#[cfg(test)]
mod tests;

pub use ca::*;
use pins::short;
pub use pins::*;

/// Target of the re-pin warning, so a program that reports re-pins itself (the CLI does) can
/// silence the log line and print its own.
pub const REPIN_LOG_TARGET: &str = "livepeer_gateway_actors::tls::repin";

/// The crypto provider every TLS config here uses (ring: pure, no C toolchain beyond cc).
pub fn provider() -> Arc<CryptoProvider> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // reqwest looks up the process default when it builds a client; make it ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How orchestrator certificates are checked (see the module docs for what each protects).
#[derive(Debug, Clone)]
pub enum OrchestratorTrust {
    /// Default: pin certificate and ETH identity per `host:port`; a new certificate is
    /// re-pinned, with a warning, once `GetOrchestrator` over it names the pinned identity.
    Pinned(PinStore),
    /// Pin the first certificate per `host:port`; refuse any change.
    Strict(PinStore),
    /// Verify the chain and name against certificate authorities.
    CertificateAuthority(CaVerifier),
    /// Accept any certificate (go-livepeer's and the Python SDK's behaviour).
    Insecure,
}

impl Default for OrchestratorTrust {
    fn default() -> Self {
        OrchestratorTrust::Pinned(PinStore::in_memory())
    }
}

impl OrchestratorTrust {
    /// CA-verified trust with these roots.
    pub fn certificate_authority(roots: CaRoots) -> Result<OrchestratorTrust, TrustConfigError> {
        Ok(OrchestratorTrust::CertificateAuthority(CaVerifier::new(roots)?))
    }

    /// The pin store of `Pinned` and `Strict`.
    pub fn pins(&self) -> Option<&PinStore> {
        match self {
            OrchestratorTrust::Pinned(p) | OrchestratorTrust::Strict(p) => Some(p),
            _ => None,
        }
    }

    /// The policy's name as the CLI spells it (`pinned`, `strict`, `ca`, `insecure`).
    pub fn name(&self) -> &'static str {
        match self {
            OrchestratorTrust::Pinned(_) => "pinned",
            OrchestratorTrust::Strict(_) => "strict",
            OrchestratorTrust::CertificateAuthority(_) => "ca",
            OrchestratorTrust::Insecure => "insecure",
        }
    }
}

/// An orchestrator's certificate or identity is not trusted under the policy. Carried through
/// rustls and reqwest as a typed error; find it with [`trust_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// `Strict`: the certificate differs from the pinned one.
    #[error(
        "certificate of {origin} changed (pinned {}, presented {}); strict pinning refuses certificate changes: if the orchestrator really changed it, remove its pin",
        short(pinned),
        short(presented)
    )]
    CertificateChanged {
        /// `host:port`.
        origin: String,
        /// Pinned fingerprint.
        pinned: String,
        /// Presented fingerprint.
        presented: String,
    },
    /// `Pinned`: a new certificate on a connection that cannot confirm it (HTTP); it becomes
    /// usable once `GetOrchestrator` over it names the pinned identity.
    #[error(
        "certificate of {origin} changed (pinned {}, presented {}) and is not confirmed yet: GetOrchestrator must first name the pinned ETH identity",
        short(pinned),
        short(presented)
    )]
    CertificateUnconfirmed {
        /// `host:port`.
        origin: String,
        /// Pinned fingerprint.
        pinned: String,
        /// Presented fingerprint.
        presented: String,
    },
    /// `Pinned`: a new certificate, but no ETH identity was pinned with the old one (for example
    /// an offchain orchestrator), so nothing can confirm it.
    #[error(
        "certificate of {origin} changed (pinned {}, presented {}) and no ETH identity was pinned to confirm it; if the orchestrator really changed it, remove its pin",
        short(pinned),
        short(presented)
    )]
    NoPinnedIdentity {
        /// `host:port`.
        origin: String,
        /// Pinned fingerprint.
        pinned: String,
        /// Presented fingerprint.
        presented: String,
    },
    /// The orchestrator names another ETH address than the pinned one.
    #[error(
        "{origin} names ETH address {} but {} is pinned{}; refused",
        claimed.map(|a| checksum_address(&a)).unwrap_or_else(|| "none".into()),
        checksum_address(pinned),
        if *certificate_changed { " and its certificate changed" } else { "" }
    )]
    IdentityChanged {
        /// `host:port`.
        origin: String,
        /// Pinned address.
        pinned: [u8; 20],
        /// Address in the answer (`None`: none or malformed).
        claimed: Option<[u8; 20]>,
        /// Whether this answer came over a new certificate.
        certificate_changed: bool,
    },
    /// The orchestrator names another ticket recipient than the pinned one.
    #[error(
        "{origin} names ticket recipient {} but {} is pinned; refused: tickets only ever go to the pinned recipient",
        checksum_address(claimed),
        checksum_address(pinned)
    )]
    RecipientChanged {
        /// `host:port`.
        origin: String,
        /// Pinned recipient.
        pinned: [u8; 20],
        /// Recipient in the answer.
        claimed: [u8; 20],
    },
    /// `CertificateAuthority`: the chain or name did not verify.
    #[error("certificate of {origin} is not trusted by the configured certificate authorities: {reason}")]
    NotTrustedByCa {
        /// `host:port`.
        origin: String,
        /// What WebPKI said (unknown issuer, expired, wrong name, ...).
        reason: String,
    },
}

/// The [`TrustError`] behind an error, if any: walks the source chain, looking inside I/O
/// errors and rustls errors (the way a refusal travels through tokio-rustls, hyper and reqwest).
pub fn trust_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a TrustError> {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<TrustError>() {
            return Some(t);
        }
        if let Some(rustls::Error::Other(OtherError(inner))) = err.downcast_ref::<rustls::Error>() {
            if let Some(t) = trust_error(inner.as_ref()) {
                return Some(t);
            }
        }
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            // `io::Error::source` skips the wrapped error itself.
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(t) = trust_error(inner) {
                return Some(t);
            }
        }
        next = err.source();
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandshakeRule {
    /// Accept a changed certificate for now (a `GetOrchestrator` connection under `Pinned`).
    Provisional,
    /// Refuse a changed certificate until a `GetOrchestrator` answer confirms it.
    Unconfirmed,
    /// Refuse a changed certificate.
    Strict,
}

/// Fingerprint of a certificate (keccak-256 of the DER, hex).
pub fn fingerprint(cert: &[u8]) -> String {
    hex::encode(keccak256(cert))
}

/// Which kind of connection a TLS config is for.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// HTTP (jobs, trickle, BYOC tokens): never accepts an unconfirmed certificate.
    Data,
    /// `GetOrchestrator`: under `Pinned` a changed certificate is accepted provisionally and
    /// recorded here (`host:port`, fingerprint) for the answer's check.
    Probe(Arc<Mutex<Option<(String, String)>>>),
}

#[derive(Debug)]
struct OrchestratorVerifier {
    trust: OrchestratorTrust,
    provider: Arc<CryptoProvider>,
    /// The port this config connects to; rustls only tells the verifier the host.
    port: u16,
    role: Role,
}

fn refuse(e: TrustError) -> rustls::Error {
    rustls::Error::Other(OtherError(Arc::new(e)))
}

impl ServerCertVerifier for OrchestratorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let origin = pin_key(&server_name.to_str(), self.port);
        let fp = || fingerprint(end_entity);
        let record = |fp: &str| {
            if let Role::Probe(slot) = &self.role {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((origin.clone(), fp.to_owned()));
            }
        };
        match &self.trust {
            OrchestratorTrust::Insecure => Ok(ServerCertVerified::assertion()),
            OrchestratorTrust::CertificateAuthority(ca) => ca
                .inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| match e {
                    rustls::Error::InvalidCertificate(c) => {
                        refuse(TrustError::NotTrustedByCa { origin: origin.clone(), reason: c.to_string() })
                    }
                    other => other,
                }),
            OrchestratorTrust::Strict(pins) => {
                let fp = fp();
                pins.check_handshake(&origin, &fp, HandshakeRule::Strict).map_err(refuse)?;
                record(&fp);
                Ok(ServerCertVerified::assertion())
            }
            OrchestratorTrust::Pinned(pins) => {
                let fp = fp();
                let rule = match self.role {
                    Role::Probe(_) => HandshakeRule::Provisional,
                    Role::Data => HandshakeRule::Unconfirmed,
                };
                pins.check_handshake(&origin, &fp, rule).map_err(refuse)?;
                record(&fp);
                Ok(ServerCertVerified::assertion())
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

/// TLS client config for HTTP connections to orchestrators on `port`, with the given ALPN
/// protocols. Pins are per `host:port`, so a config serves one port. Under `Pinned` a changed
/// certificate is refused here until a `GetOrchestrator` answer confirmed it.
pub(crate) fn orchestrator_client_config(
    trust: &OrchestratorTrust,
    alpn: &[&[u8]],
    port: u16,
) -> rustls::ClientConfig {
    client_config(trust, alpn, port, Role::Data)
}

pub(crate) fn client_config(
    trust: &OrchestratorTrust,
    alpn: &[&[u8]],
    port: u16,
    role: Role,
) -> rustls::ClientConfig {
    let provider = provider();
    let verifier =
        Arc::new(OrchestratorVerifier { trust: trust.clone(), provider: provider.clone(), port, role });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}
