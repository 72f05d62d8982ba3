//! Ethereum conventions the protocol relies on: keccak-256, EIP-55 checksummed addresses and
//! go-livepeer's signature hash ("personal sign" of keccak-256 of the message).
//!
//! Signing and recovery need a secp256k1 implementation and live with the signer (the local
//! network in `gateway-testkit`); here are only the hashes both sides must agree on.

use sha3::{Digest, Keccak256};

/// Keccak-256 (Ethereum's hash, not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The digest go-livepeer signs for `msg`: `keccak256("\x19Ethereum Signed Message:\n32" ‖ keccak256(msg))`.
pub fn signature_digest(msg: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(28 + 32);
    buf.extend_from_slice(b"\x19Ethereum Signed Message:\n32");
    buf.extend_from_slice(&keccak256(msg));
    keccak256(&buf)
}

/// EIP-55 mixed-case checksum form (`0x…`) of a 20-byte address.
pub fn checksum_address(address: &[u8; 20]) -> String {
    let lower = hex::encode(address);
    let hash = keccak256(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if c.is_ascii_alphabetic() && nibble >= 8 { c.to_ascii_uppercase() } else { c });
    }
    out
}

/// Parses a `0x`-prefixed (or bare) hex address of exactly 20 bytes.
pub fn parse_address(s: &str) -> Option<[u8; 20]> {
    let hex_part = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let bytes = hex::decode(hex_part).ok()?;
    bytes.try_into().ok()
}

/// Parses a `0x`-prefixed (or bare) hex string into bytes.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let hex_part = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    hex::decode(hex_part).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_known_vectors() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            hex::encode(keccak256(b"abc")),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
        );
    }

    #[test]
    fn eip55_vectors() {
        // Test vectors from EIP-55.
        for expected in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let addr = parse_address(expected).unwrap();
            assert_eq!(checksum_address(&addr), expected);
        }
        assert_eq!(parse_address("0x1234"), None);
        assert_eq!(parse_address("zz"), None);
    }

    #[test]
    fn signature_digest_matches_eth_personal_sign() {
        // personal_sign over a 32-byte hash: prefix "\x19Ethereum Signed Message:\n32".
        let msg = b"hello";
        let mut manual = b"\x19Ethereum Signed Message:\n32".to_vec();
        manual.extend_from_slice(&keccak256(msg));
        assert_eq!(signature_digest(msg), keccak256(&manual));
    }
}
