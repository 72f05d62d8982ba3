//! What the local signer and the local orchestrator must agree on to pay and be paid:
//! a simulated block clock, ticket and segment-credential messages, and auth-token expiry.
//!
//! go-livepeer's exact ticket hash is a chain detail that a gateway never computes (tickets are
//! opaque to it), so the double uses its own well-defined message layout; signatures over it are
//! real secp256k1 signatures that the orchestrator verifies by recovering the sender.

use std::time::{SystemTime, UNIX_EPOCH};

use gateway_core::eth::keccak256;
use gateway_core::lp_rpc::{SegData, TicketParams};

/// Seconds per simulated L1 block.
pub const BLOCK_TIME_SECS: u64 = 12;
/// Ticket parameters expire this many blocks after they are issued.
pub const TICKET_PARAMS_VALIDITY_BLOCKS: u64 = 40;
/// Auth tokens are valid this long.
pub const AUTH_TOKEN_VALIDITY_SECS: i64 = 30 * 60;
/// The signer asks for a refresh (480) when less than this share of the validity is left (10%).
pub const AUTH_TOKEN_REFRESH_WINDOW_SECS: i64 = AUTH_TOKEN_VALIDITY_SECS / 10;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The simulated block number at unix time `secs`.
pub fn block_at(secs: i64) -> u64 {
    secs.max(0) as u64 / BLOCK_TIME_SECS
}

/// Big-endian minimal bytes of a number, as protobuf big-int fields carry it.
pub fn be_bytes(n: u128) -> Vec<u8> {
    let b = n.to_be_bytes();
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len() - 1);
    b[first..].to_vec()
}

/// Reads a big-endian unsigned number of at most 16 bytes (saturating above).
pub fn from_be_bytes(b: &[u8]) -> u128 {
    if b.len() > 16 && b[..b.len() - 16].iter().any(|x| *x != 0) {
        return u128::MAX;
    }
    b.iter().fold(0u128, |acc, x| (acc << 8) | u128::from(*x))
}

/// Whether ticket parameters have expired at unix time `now`.
pub fn ticket_params_expired(params: &TicketParams, now: i64) -> bool {
    from_be_bytes(&params.expiration_block) < u128::from(block_at(now))
}

/// The message a ticket signature covers.
pub fn ticket_message(params: &TicketParams, sender: &[u8], nonce: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(200);
    m.extend_from_slice(b"LP_LOCAL_TICKET_V1");
    for field in
        [&params.recipient[..], sender, &params.face_value, &params.win_prob, &params.recipient_rand_hash]
    {
        m.extend_from_slice(&(field.len() as u32).to_be_bytes());
        m.extend_from_slice(field);
    }
    m.extend_from_slice(&nonce.to_be_bytes());
    keccak256(&m).to_vec()
}

/// The message a `SegData` signature covers (go-livepeer's layout: manifest id, seq padded to
/// 32 bytes, data hash, then the profiles bytes).
pub fn seg_data_message(seg: &SegData) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&seg.manifest_id);
    let mut seq = [0u8; 32];
    seq[24..].copy_from_slice(&seg.seq.to_be_bytes());
    m.extend_from_slice(&seq);
    m.extend_from_slice(&seg.hash);
    m.extend_from_slice(hex::encode(&seg.profiles).as_bytes());
    keccak256(&m).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_helpers() {
        assert_eq!(be_bytes(0), vec![0]);
        assert_eq!(be_bytes(0x0102), vec![1, 2]);
        assert_eq!(from_be_bytes(&[1, 2]), 0x0102);
        assert_eq!(from_be_bytes(&[0; 32]), 0);
        assert_eq!(from_be_bytes(&[1; 32]), u128::MAX);
    }

    #[test]
    fn expiry() {
        let now = 1_700_000_000;
        let p =
            TicketParams { expiration_block: be_bytes(u128::from(block_at(now)) + 1), ..Default::default() };
        assert!(!ticket_params_expired(&p, now));
        assert!(ticket_params_expired(&p, now + 3 * BLOCK_TIME_SECS as i64));
    }

    #[test]
    fn ticket_message_binds_nonce_and_sender() {
        let p = TicketParams { recipient: vec![1; 20], face_value: vec![9], ..Default::default() };
        assert_ne!(ticket_message(&p, &[2; 20], 1), ticket_message(&p, &[2; 20], 2));
        assert_ne!(ticket_message(&p, &[2; 20], 1), ticket_message(&p, &[3; 20], 1));
    }
}
