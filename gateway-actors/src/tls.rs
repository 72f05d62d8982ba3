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

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

use gateway_core::eth::{checksum_address, keccak256, parse_address};
use gateway_core::lp_rpc::OrchestratorInfo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, OtherError, SignatureScheme};
use serde::{Deserialize, Serialize};

/// Target of the re-pin warning, so a program that reports re-pins itself (the CLI does) can
/// silence the log line and print its own.
pub const REPIN_LOG_TARGET: &str = "gateway_actors::tls::repin";

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

fn short(fingerprint: &str) -> String {
    format!("{}…", &fingerprint[..12.min(fingerprint.len())])
}

/// The pin store key of a host and port: `host:port`, host in lower case and without IPv6
/// brackets (as rustls names the server).
pub fn pin_key(host: &str, port: u16) -> String {
    format!("{}:{port}", host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

/// What is pinned for one `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pin {
    /// Certificate fingerprint ([`fingerprint`]).
    pub fingerprint: String,
    /// The orchestrator's ETH address (`OrchestratorInfo.address`), once seen.
    pub address: Option<[u8; 20]>,
    /// The ticket recipient, once seen (go: `-ethOrchAddr`, else the address).
    pub recipient: Option<[u8; 20]>,
}

impl Pin {
    fn new(fingerprint: &str) -> Pin {
        Pin { fingerprint: fingerprint.to_owned(), ..Default::default() }
    }
}

/// A certificate change accepted under [`OrchestratorTrust::Pinned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repin {
    /// `host:port`.
    pub origin: String,
    /// The fingerprint pinned before.
    pub previous: String,
    /// The new fingerprint.
    pub fingerprint: String,
    /// The pinned address the answer named, if one is pinned.
    pub address: Option<[u8; 20]>,
    /// The ticket recipient its payments are bound to.
    pub recipient: [u8; 20],
}

impl fmt::Display for Repin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "orchestrator {} presented a new TLS certificate ({} replaces {}); ",
            self.origin,
            short(&self.fingerprint),
            short(&self.previous)
        )?;
        match self.address {
            Some(a) => {
                write!(f, "re-pinned because it names the pinned ETH address {}", checksum_address(&a))?
            }
            None => f.write_str("re-pinned because it names the pinned ticket recipient")?,
        }
        write!(
            f,
            "; tickets still go only to {}. A claimed address is not a proof of identity: use strict pinning to refuse certificate changes",
            checksum_address(&self.recipient)
        )
    }
}

/// What a `GetOrchestrator` answer did to the pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Nothing was pinned for the origin: certificate and identity are pinned now.
    FirstUse,
    /// The pinned certificate and identity (identity fields seen for the first time recorded).
    Known,
    /// A new certificate was accepted and pinned.
    Repinned(Repin),
}

type RepinHook = Arc<dyn Fn(&Repin) + Send + Sync>;

struct PinInner {
    pins: Mutex<BTreeMap<String, Pin>>,
    path: Option<PathBuf>,
    on_repin: Mutex<Option<RepinHook>>,
}

/// Certificate and identity pins by `host:port` (several orchestrators often share one host).
/// Cheap to clone; clones share the pins.
#[derive(Clone)]
pub struct PinStore {
    inner: Arc<PinInner>,
}

impl fmt::Debug for PinStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinStore").field("pins", &self.lock().len()).field("path", &self.inner.path).finish()
    }
}

/// A pin store file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("pin store {path}: {reason}")]
pub struct PinStoreError {
    path: String,
    reason: String,
}

/// One entry of the pin file: the old form (a fingerprint) or the current one.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PinFileEntry {
    Fingerprint(String),
    Pin {
        fingerprint: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient: Option<String>,
    },
}

/// The 20-byte identity in `bytes`, if it is one (empty, malformed and zero count as none: go's
/// offchain orchestrators send the zero address).
fn identity(bytes: &[u8]) -> Option<[u8; 20]> {
    let a: [u8; 20] = bytes.try_into().ok()?;
    (a != [0; 20]).then_some(a)
}

impl PinStore {
    fn with(pins: BTreeMap<String, Pin>, path: Option<PathBuf>) -> PinStore {
        PinStore { inner: Arc::new(PinInner { pins: Mutex::new(pins), path, on_repin: Mutex::new(None) }) }
    }

    /// Pins that last as long as the process.
    pub fn in_memory() -> PinStore {
        PinStore::with(BTreeMap::new(), None)
    }

    /// Pins kept in a JSON file (`{"host:port": {"fingerprint", "address", "recipient"}}`;
    /// the older `{"host:port": "fingerprint"}` is read too), loaded now and saved on change.
    pub fn persistent(path: impl Into<PathBuf>) -> Result<PinStore, PinStoreError> {
        let path = path.into();
        let err = |reason: String| PinStoreError { path: path.display().to_string(), reason };
        let file: BTreeMap<String, PinFileEntry> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        let mut pins = BTreeMap::new();
        for (key, entry) in file {
            let pin = match entry {
                PinFileEntry::Fingerprint(fingerprint) => Pin::new(&fingerprint),
                PinFileEntry::Pin { fingerprint, address, recipient } => {
                    let parse = |field: &str, v: Option<String>| match v {
                        None => Ok(None),
                        Some(s) => parse_address(&s)
                            .map(Some)
                            .ok_or_else(|| err(format!("{key}: {field} is not a 20-byte hex address"))),
                    };
                    Pin {
                        fingerprint,
                        address: parse("address", address)?,
                        recipient: parse("recipient", recipient)?,
                    }
                }
            };
            pins.insert(key, pin);
        }
        Ok(PinStore::with(pins, Some(path)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pin>> {
        self.inner.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pinned fingerprint of `origin` (`host:port`).
    pub fn get(&self, origin: &str) -> Option<String> {
        self.lock().get(origin).map(|p| p.fingerprint.clone())
    }

    /// Everything pinned for `origin`.
    pub fn pin(&self, origin: &str) -> Option<Pin> {
        self.lock().get(origin).cloned()
    }

    /// Forgets `origin` (after an operator confirmed a certificate or identity change).
    pub fn forget(&self, origin: &str) {
        self.lock().remove(origin);
        self.save();
    }

    /// Calls `hook` on every re-pin (after the warning is logged), e.g. to tell a user.
    pub fn on_repin(&self, hook: impl Fn(&Repin) + Send + Sync + 'static) {
        *self.inner.on_repin.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
    }

    /// The handshake check. First use pins the certificate; the pinned one passes; a different
    /// one passes only when `provisional` (a `GetOrchestrator` connection under `Pinned`, whose
    /// answer [`PinStore::observe`] then judges), else it is refused with `refusal`'s error.
    fn check_handshake(&self, origin: &str, presented: &str, rule: HandshakeRule) -> Result<(), TrustError> {
        let mut pins = self.lock();
        let pinned = match pins.get(origin) {
            None => {
                pins.insert(origin.to_owned(), Pin::new(presented));
                drop(pins);
                self.save();
                return Ok(());
            }
            Some(p) if p.fingerprint == presented => return Ok(()),
            Some(p) => p.fingerprint.clone(),
        };
        let (origin, presented) = (origin.to_owned(), presented.to_owned());
        match rule {
            HandshakeRule::Provisional => Ok(()),
            HandshakeRule::Unconfirmed => {
                Err(TrustError::CertificateUnconfirmed { origin, pinned, presented })
            }
            HandshakeRule::Strict => Err(TrustError::CertificateChanged { origin, pinned, presented }),
        }
    }

    /// Judges a `GetOrchestrator` answer that came over a connection presenting certificate
    /// `presented` to `origin`. On the pinned certificate, identity fields seen for the first
    /// time are recorded and a changed one is refused. On another certificate (`allow_repin`,
    /// i.e. `Pinned`), the certificate is re-pinned, with a warning, when the answer names the
    /// pinned address (if one is pinned) and the pinned ticket recipient (or, none pinned yet,
    /// the pinned address), and refused otherwise; after a re-pin the recipient is fixed.
    pub fn observe(
        &self,
        origin: &str,
        presented: &str,
        info: &OrchestratorInfo,
        allow_repin: bool,
    ) -> Result<Observation, TrustError> {
        let address = identity(&info.address);
        let recipient = info.ticket_params.as_ref().and_then(|t| identity(&t.recipient));
        let mut pins = self.lock();
        let Some(pin) = pins.get_mut(origin) else {
            pins.insert(origin.to_owned(), Pin { fingerprint: presented.to_owned(), address, recipient });
            drop(pins);
            self.save();
            return Ok(Observation::FirstUse);
        };
        if pin.fingerprint == presented {
            if let (Some(p), a) = (pin.address, address) {
                if a.is_some_and(|a| a != p) {
                    return Err(TrustError::IdentityChanged {
                        origin: origin.to_owned(),
                        pinned: p,
                        claimed: a,
                        certificate_changed: false,
                    });
                }
            }
            check_recipient(origin, pin, recipient)?;
            let changed = (pin.address.is_none() && address.is_some())
                || (pin.recipient.is_none() && recipient.is_some());
            pin.address = pin.address.or(address);
            pin.recipient = pin.recipient.or(recipient);
            drop(pins);
            if changed {
                self.save();
            }
            return Ok(Observation::Known);
        }

        let (origin_s, pinned_fp, presented_s) =
            (origin.to_owned(), pin.fingerprint.clone(), presented.to_owned());
        if !allow_repin {
            return Err(TrustError::CertificateChanged {
                origin: origin_s,
                pinned: pinned_fp,
                presented: presented_s,
            });
        }
        let Some(expected_recipient) = pin.recipient.or(pin.address) else {
            return Err(TrustError::NoPinnedIdentity {
                origin: origin_s,
                pinned: pinned_fp,
                presented: presented_s,
            });
        };
        if let Some(p) = pin.address {
            if address != Some(p) {
                return Err(TrustError::IdentityChanged {
                    origin: origin_s,
                    pinned: p,
                    claimed: address,
                    certificate_changed: true,
                });
            }
        }
        match recipient {
            Some(r) if r != expected_recipient => {
                return Err(TrustError::RecipientChanged {
                    origin: origin_s,
                    pinned: expected_recipient,
                    claimed: r,
                })
            }
            // Something pinned must be named: the address (checked above) or the recipient.
            None if pin.address.is_none() => {
                return Err(TrustError::NoPinnedIdentity {
                    origin: origin_s,
                    pinned: pinned_fp,
                    presented: presented_s,
                })
            }
            _ => {}
        }
        let repin = Repin {
            origin: origin_s,
            previous: pinned_fp.clone(),
            fingerprint: presented_s.clone(),
            address: pin.address,
            recipient: expected_recipient,
        };
        pin.fingerprint = presented_s.clone();
        pin.address = pin.address.or(address);
        pin.recipient = Some(expected_recipient);
        // The same old certificate pinned under another name (the transcoder URL's host, say)
        // belongs to the same server: it moves along.
        for other in pins.values_mut() {
            if other.fingerprint == pinned_fp {
                other.fingerprint = presented_s.clone();
                other.recipient = other.recipient.or(Some(expected_recipient));
            }
        }
        drop(pins);
        self.save();
        tracing::warn!(
            target: REPIN_LOG_TARGET,
            origin = %repin.origin,
            previous = %short(&repin.previous),
            fingerprint = %short(&repin.fingerprint),
            recipient = %checksum_address(&repin.recipient),
            "{repin}"
        );
        let hook = self.inner.on_repin.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(&repin);
        }
        Ok(Observation::Repinned(repin))
    }

    /// Checks a ticket recipient that came over a pinned connection to `origin` (a BYOC job
    /// token): recorded if none is pinned yet, refused if another one is.
    pub fn check_recipient(&self, origin: &str, recipient: &[u8]) -> Result<(), TrustError> {
        let Some(recipient) = identity(recipient) else { return Ok(()) };
        let mut pins = self.lock();
        let Some(pin) = pins.get_mut(origin) else { return Ok(()) };
        check_recipient(origin, pin, Some(recipient))?;
        if pin.recipient.is_none() {
            pin.recipient = Some(recipient);
            drop(pins);
            self.save();
        }
        Ok(())
    }

    fn save(&self) {
        let Some(path) = &self.inner.path else { return };
        let file: BTreeMap<String, PinFileEntry> = self
            .lock()
            .iter()
            .map(|(k, p)| {
                let entry = PinFileEntry::Pin {
                    fingerprint: p.fingerprint.clone(),
                    address: p.address.map(|a| checksum_address(&a)),
                    recipient: p.recipient.map(|a| checksum_address(&a)),
                };
                (k.clone(), entry)
            })
            .collect();
        let Ok(json) = serde_json::to_vec_pretty(&file) else { return };
        // Write beside and rename, so a crash never leaves half a file.
        let tmp = path.with_extension("json.tmp");
        if let Err(e) = std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, path)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot save certificate pins");
        }
    }
}

fn check_recipient(origin: &str, pin: &Pin, recipient: Option<[u8; 20]>) -> Result<(), TrustError> {
    match (pin.recipient, recipient) {
        (Some(p), Some(r)) if p != r => {
            Err(TrustError::RecipientChanged { origin: origin.to_owned(), pinned: p, claimed: r })
        }
        _ => Ok(()),
    }
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
    inner: Arc<dyn ServerCertVerifier>,
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
pub fn orchestrator_client_config(
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

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::lp_rpc::TicketParams;

    const A: [u8; 20] = [0xaa; 20];
    const B: [u8; 20] = [0xbb; 20];
    const R: [u8; 20] = [0xcc; 20];

    fn info(address: [u8; 20], recipient: Option<[u8; 20]>) -> OrchestratorInfo {
        OrchestratorInfo {
            address: address.to_vec(),
            ticket_params: recipient.map(|r| TicketParams { recipient: r.to_vec(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn strict_pins_then_refuses_a_change() {
        let pins = PinStore::in_memory();
        let strict = HandshakeRule::Strict;
        assert!(pins.check_handshake("o1", "aaaa", strict).is_ok());
        assert!(pins.check_handshake("o1", "aaaa", strict).is_ok());
        let err = pins.check_handshake("o1", "bbbb", strict).unwrap_err();
        assert!(matches!(err, TrustError::CertificateChanged { .. }), "{err}");
        assert!(pins.check_handshake("o2", "bbbb", strict).is_ok());
        pins.forget("o1");
        assert!(pins.check_handshake("o1", "bbbb", strict).is_ok());
    }

    #[test]
    fn pinned_refuses_unconfirmed_data_connections_and_lets_probes_through() {
        let pins = PinStore::in_memory();
        pins.check_handshake("o", "f1", HandshakeRule::Unconfirmed).unwrap();
        let e = pins.check_handshake("o", "f2", HandshakeRule::Unconfirmed).unwrap_err();
        assert!(matches!(e, TrustError::CertificateUnconfirmed { .. }), "{e}");
        pins.check_handshake("o", "f2", HandshakeRule::Provisional).unwrap();
        assert_eq!(pins.get("o").as_deref(), Some("f1"), "a provisional handshake pins nothing");
    }

    #[test]
    fn repin_needs_the_pinned_address_and_recipient() {
        let pins = PinStore::in_memory();
        assert_eq!(pins.observe("o", "f1", &info(A, Some(A)), true), Ok(Observation::FirstUse));
        assert_eq!(pins.observe("o", "f1", &info(A, Some(A)), true), Ok(Observation::Known));
        // Same certificate, other identity: refused in every mode.
        let e = pins.observe("o", "f1", &info(B, Some(A)), true).unwrap_err();
        assert!(matches!(e, TrustError::IdentityChanged { certificate_changed: false, .. }), "{e}");
        let e = pins.observe("o", "f1", &info(A, Some(B)), true).unwrap_err();
        assert!(matches!(e, TrustError::RecipientChanged { .. }), "{e}");
        // New certificate: strict refuses; pinned needs the same address and recipient.
        let e = pins.observe("o", "f2", &info(A, Some(A)), false).unwrap_err();
        assert!(matches!(e, TrustError::CertificateChanged { .. }), "{e}");
        let e = pins.observe("o", "f2", &info(B, Some(B)), true).unwrap_err();
        assert!(matches!(e, TrustError::IdentityChanged { certificate_changed: true, .. }), "{e}");
        let e = pins.observe("o", "f2", &info(A, Some(B)), true).unwrap_err();
        assert!(matches!(e, TrustError::RecipientChanged { .. }), "{e}");
        assert_eq!(pins.get("o").as_deref(), Some("f1"), "refusals change nothing");

        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        pins.on_repin(move |r| sink.lock().unwrap().push(r.clone()));
        let Ok(Observation::Repinned(r)) = pins.observe("o", "f2", &info(A, Some(A)), true) else {
            panic!("not re-pinned")
        };
        assert_eq!((r.previous.as_str(), r.fingerprint.as_str(), r.recipient), ("f1", "f2", A));
        assert!(r.to_string().contains("not a proof"), "{r}");
        assert_eq!(pins.get("o").as_deref(), Some("f2"));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(pins.observe("o", "f2", &info(A, None), true), Ok(Observation::Known));
        assert_eq!(seen.lock().unwrap().len(), 1, "warned once");
    }

    #[test]
    fn repin_with_a_separate_recipient_and_without_identity() {
        // go's -ethOrchAddr: the address signs, tickets pay another recipient.
        let pins = PinStore::in_memory();
        pins.observe("o", "f1", &info(A, Some(R)), true).unwrap();
        assert!(matches!(pins.observe("o", "f2", &info(A, Some(R)), true), Ok(Observation::Repinned(_))));
        // No ticket params in the answer: the address alone confirms, the recipient stays.
        assert!(matches!(pins.observe("o", "f3", &info(A, None), true), Ok(Observation::Repinned(_))));
        assert_eq!(pins.pin("o").unwrap().recipient, Some(R));

        // Offchain orchestrators send the zero address: nothing to confirm a change with.
        pins.observe("z", "f1", &info([0; 20], None), true).unwrap();
        let e = pins.observe("z", "f2", &info([0; 20], None), true).unwrap_err();
        assert!(matches!(e, TrustError::NoPinnedIdentity { .. }), "{e}");

        // Only a recipient pinned (a BYOC token): it must be named on the new certificate,
        // and an address alone does not confirm.
        pins.check_handshake("t", "f1", HandshakeRule::Unconfirmed).unwrap();
        pins.check_recipient("t", &R).unwrap();
        assert!(pins.check_recipient("t", &B).is_err());
        let e = pins.observe("t", "f2", &info(A, None), true).unwrap_err();
        assert!(matches!(e, TrustError::NoPinnedIdentity { .. }), "{e}");
        assert!(matches!(pins.observe("t", "f2", &info(A, Some(R)), true), Ok(Observation::Repinned(_))));
    }

    #[test]
    fn a_repin_moves_other_names_of_the_same_certificate() {
        let pins = PinStore::in_memory();
        pins.observe("1.2.3.4:8935", "f1", &info(A, Some(A)), true).unwrap();
        pins.check_handshake("o.example:8935", "f1", HandshakeRule::Unconfirmed).unwrap();
        pins.observe("1.2.3.4:8935", "f2", &info(A, Some(A)), true).unwrap();
        assert_eq!(pins.get("o.example:8935").as_deref(), Some("f2"));
    }

    #[test]
    fn persistent_pins_survive_reload_and_read_the_old_format() {
        let dir = std::env::temp_dir().join(format!("lpgw-pins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pins.json");
        let _ = std::fs::remove_file(&path);
        let a = PinStore::persistent(&path).unwrap();
        a.observe("o", "f1", &info(A, Some(R)), true).unwrap();
        let b = PinStore::persistent(&path).unwrap();
        assert_eq!(b.pin("o"), Some(Pin { fingerprint: "f1".into(), address: Some(A), recipient: Some(R) }));
        assert!(b.check_handshake("o", "f2", HandshakeRule::Strict).is_err());

        std::fs::write(&path, br#"{"old:1": "f9"}"#).unwrap();
        let c = PinStore::persistent(&path).unwrap();
        assert_eq!(c.pin("old:1"), Some(Pin::new("f9")));
        std::fs::write(&path, b"not json").unwrap();
        assert!(PinStore::persistent(&path).is_err());
        std::fs::write(&path, br#"{"o:1": {"fingerprint": "f", "address": "0x12"}}"#).unwrap();
        assert!(PinStore::persistent(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn trust_errors_are_found_through_io_and_rustls_wrappers() {
        let e = TrustError::CertificateUnconfirmed {
            origin: "o:1".into(),
            pinned: "a".into(),
            presented: "b".into(),
        };
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refuse(e.clone()));
        assert_eq!(trust_error(&io), Some(&e));
        let plain = std::io::Error::other("nothing");
        assert_eq!(trust_error(&plain), None);
    }

    #[test]
    fn ca_roots_parse_pem_and_refuse_empty_input() {
        assert!(matches!(CaRoots::none().with_pem(b"nothing"), Err(TrustConfigError::InvalidPem(_))));
        assert!(matches!(CaVerifier::new(CaRoots::none()), Err(TrustConfigError::Verifier(_))));
        assert_eq!(pin_key("[::1]", 8935), "::1:8935");
        assert_eq!(pin_key("O.Example", 1), "o.example:1");
    }
}
