//! Ethereum keys for the local network: secp256k1 signing in go-livepeer's convention and
//! address recovery, so signatures made by the local signer are checked by the local
//! orchestrator exactly as on the real network (65 bytes, `v` = 27/28, low `s` only).

use gateway_core::eth::{checksum_address, keccak256, signature_digest};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};

/// A secp256k1 key with its Ethereum address.
#[derive(Clone)]
pub struct EthKey {
    signing: SigningKey,
    address: [u8; 20],
}

impl std::fmt::Debug for EthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EthKey({})", self.checksum_address())
    }
}

impl EthKey {
    /// A fresh random key.
    pub fn random() -> EthKey {
        let mut seed = [0u8; 32];
        loop {
            rand::fill(&mut seed);
            if let Some(k) = Self::from_secret(&seed) {
                return k;
            }
        }
    }

    /// The key with this 32-byte secret, if it is a valid scalar.
    pub fn from_secret(secret: &[u8; 32]) -> Option<EthKey> {
        let signing = SigningKey::from_slice(secret).ok()?;
        let address = address_of(signing.verifying_key());
        Some(EthKey { signing, address })
    }

    /// The 20-byte address.
    pub fn address(&self) -> [u8; 20] {
        self.address
    }

    /// The EIP-55 address string.
    pub fn checksum_address(&self) -> String {
        checksum_address(&self.address)
    }

    /// go-livepeer's `Sign(msg)`: personal-sign of keccak256(msg); 65 bytes `r ‖ s ‖ v`, v = 27/28.
    pub fn sign(&self, msg: &[u8]) -> [u8; 65] {
        let digest = signature_digest(msg);
        // Signing a 32-byte prehash with a valid key cannot fail; k256 emits low-s signatures.
        let (sig, recid) = self.signing.sign_prehash_recoverable(&digest).expect("prehash signing");
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + recid.to_byte();
        out
    }
}

/// The address of a public key: the last 20 bytes of keccak256 of its uncompressed coordinates.
fn address_of(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

/// The address that signed `msg` (go-livepeer convention), or `None` for a malformed, high-s
/// or unrecoverable signature.
pub fn recover_signer(msg: &[u8], sig: &[u8]) -> Option<[u8; 20]> {
    if sig.len() != 65 || !(27..=28).contains(&sig[64]) {
        return None;
    }
    let signature = Signature::from_slice(&sig[..64]).ok()?;
    if signature.normalize_s().is_some() {
        return None; // high s: go-livepeer rejects these
    }
    let recid = RecoveryId::from_byte(sig[64] - 27)?;
    let key = VerifyingKey::recover_from_prehash(&signature_digest(msg), &signature, recid).ok()?;
    Some(address_of(&key))
}

/// Whether `sig` over `msg` was made by `address`.
pub fn verify(msg: &[u8], sig: &[u8], address: &[u8; 20]) -> bool {
    recover_signer(msg, sig).is_some_and(|a| &a == address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_address() {
        // secret = 1 → the well-known address of the generator point.
        let mut secret = [0u8; 32];
        secret[31] = 1;
        let key = EthKey::from_secret(&secret).unwrap();
        assert_eq!(key.checksum_address(), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    }

    #[test]
    fn sign_and_recover() {
        let key = EthKey::random();
        let sig = key.sign(b"message");
        assert!(matches!(sig[64], 27 | 28));
        assert_eq!(recover_signer(b"message", &sig), Some(key.address()));
        assert!(verify(b"message", &sig, &key.address()));
        assert!(!verify(b"other", &sig, &key.address()));
        let mut bad = sig;
        bad[64] = 29;
        assert_eq!(recover_signer(b"message", &bad), None);
        assert_eq!(recover_signer(b"message", &sig[..64]), None);
    }
}
