//! The pin store: per `host:port`, the certificate and the ETH identity first seen there, and
//! the rules for a certificate change ([`PinStore::observe`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gateway_core::eth::{checksum_address, parse_address};
use gateway_core::lp_rpc::OrchestratorInfo;
use serde::{Deserialize, Serialize};

/// Target of the re-pin warning, so a program that reports re-pins itself (the CLI does) can
use super::*;

pub(super) fn short(fingerprint: &str) -> String {
    format!("{}…", &fingerprint[..12.min(fingerprint.len())])
}

/// The pin store key of a host and port: `host:port`, host in lower case and without IPv6
/// brackets (as rustls names the server).
pub(crate) fn pin_key(host: &str, port: u16) -> String {
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
    pub(super) fn new(fingerprint: &str) -> Pin {
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
pub(super) fn identity(bytes: &[u8]) -> Option<[u8; 20]> {
    let a: [u8; 20] = bytes.try_into().ok()?;
    (a != [0; 20]).then_some(a)
}

impl PinStore {
    pub(super) fn with(pins: BTreeMap<String, Pin>, path: Option<PathBuf>) -> PinStore {
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pin>> {
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
    pub(super) fn check_handshake(
        &self,
        origin: &str,
        presented: &str,
        rule: HandshakeRule,
    ) -> Result<(), TrustError> {
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
    pub(crate) fn check_recipient(&self, origin: &str, recipient: &[u8]) -> Result<(), TrustError> {
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

    pub(super) fn save(&self) {
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

pub(super) fn check_recipient(
    origin: &str,
    pin: &Pin,
    recipient: Option<[u8; 20]>,
) -> Result<(), TrustError> {
    match (pin.recipient, recipient) {
        (Some(p), Some(r)) if p != r => {
            Err(TrustError::RecipientChanged { origin: origin.to_owned(), pinned: p, claimed: r })
        }
        _ => Ok(()),
    }
}
