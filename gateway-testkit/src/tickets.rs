//! go-livepeer's probabilistic-micropayment (pm) rules, shared by the local signer (which mints
//! tickets) and the local orchestrator (which receives them), plus the simulated chain clock
//! both read.
//!
//! Everything hashed or signed follows go-livepeer byte for byte (`pm/ticket.go`,
//! `pm/recipient.go`, `pm/validator.go`), so a go orchestrator accepts the tickets the local
//! signer mints and the local orchestrator accepts a go signer's:
//! - [`Ticket::hash`]: keccak-256 of the tightly packed ticket; the signature is personal_sign
//!   over that 32-byte hash ([`Ticket::sign`], [`Ticket::verify`]).
//! - [`recipient_rand`]: HMAC-SHA256 under the orchestrator's secret of everything the ticket
//!   params are bound to (seed, sender, face value, win probability, expiration block, price,
//!   expiration params); [`recipient_rand_hash`] is what the orchestrator publishes.
//! - [`ticket_ev`], [`win_prob_for`]: exact rationals and integers, as go's `big.Rat`/`big.Int`
//!   (the maximum win probability is 2^256 − 1, not 2^256).
//! - [`rat_string`], [`parse_rat`]: go's `big.Rat` text form, used for balances in signer state.

use std::time::{SystemTime, UNIX_EPOCH};

use gateway_core::eth::{keccak256, signature_digest};
use gateway_core::lp_rpc::{Payment, PriceInfo, SegData, TicketExpirationParams, TicketParams};
use hmac::{Hmac, Mac};
use num_bigint::{BigInt, BigUint};
use num_traits::{One, ToPrimitive, Zero};
use sha2::Sha256;
use thiserror::Error;

use crate::keys::{self, EthKey};

/// An exact rational, go's `big.Rat` (always kept reduced, denominator positive).
pub type Rat = num_rational::BigRational;

/// Seconds per simulated L1 block.
pub const BLOCK_TIME_SECS: u64 = 12;
/// Simulated L1 blocks per protocol round (the round is the ticket's creation round).
pub const BLOCKS_PER_ROUND: u64 = 100;
/// Ticket parameters expire this many L1 blocks after they are issued (go-livepeer
/// `paramsExpirationBlock`).
pub const TICKET_PARAMS_VALIDITY_BLOCKS: u64 = 40;
/// A sender treats ticket parameters as expired when this many blocks or fewer are left (go-livepeer
/// `paramsExpiryBuffer`); the signer then answers 480.
pub const PARAMS_EXPIRY_BUFFER_BLOCKS: u64 = 1;
/// Sender nonces an orchestrator accepts per `recipientRand` (go-livepeer `maxSenderNonces`).
pub const MAX_SENDER_NONCES: usize = 600;
/// Auth tokens are valid this long.
pub const AUTH_TOKEN_VALIDITY_SECS: i64 = 30 * 60;
/// The signer asks for a refresh (480) when less than this share of the validity is left (10%).
pub const AUTH_TOKEN_REFRESH_WINDOW_SECS: i64 = AUTH_TOKEN_VALIDITY_SECS / 10;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The simulated L1 block number at unix time `secs` (go-livepeer's `LastSeenL1Block`).
pub fn block_at(secs: i64) -> u64 {
    secs.max(0) as u64 / BLOCK_TIME_SECS
}

/// The simulated chain's last initialized round and its block hash at unix time `secs`: what an
/// orchestrator puts in the ticket params it issues, and what a sender substitutes when the
/// orchestrator sent none (go-livepeer `ticketExpirationsParams`, `sender.expirationParams`).
pub fn expiration_params_at(secs: i64) -> TicketExpirationParams {
    let round = block_at(secs) / BLOCKS_PER_ROUND;
    let round_block = round * BLOCKS_PER_ROUND;
    TicketExpirationParams {
        creation_round: round as i64,
        creation_round_block_hash: keccak256(&round_block.to_be_bytes()).to_vec(),
    }
}

/// go's `big.Int.Bytes()` of a number: big-endian without leading zeros; zero is empty.
pub fn be_bytes(n: u128) -> Vec<u8> {
    minimal_be(&n.to_be_bytes()).to_vec()
}

/// Reads a big-endian unsigned number of at most 16 bytes (saturating above).
pub fn from_be_bytes(b: &[u8]) -> u128 {
    if b.len() > 16 && b[..b.len() - 16].iter().any(|x| *x != 0) {
        return u128::MAX;
    }
    b.iter().fold(0u128, |acc, x| (acc << 8) | u128::from(*x))
}

/// `bytes` without leading zeros: what go's `new(big.Int).SetBytes(b).Bytes()` gives back.
pub fn minimal_be(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// go's `ethcommon.LeftPadBytes(b, 32)`: zeros in front up to 32 bytes; longer input is kept whole.
pub fn left_pad32(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32usize.saturating_sub(bytes.len())];
    out.extend_from_slice(bytes);
    out
}

/// go's `BytesToAddress` / `BytesToHash`: the last `N` bytes, left-padded with zeros when shorter.
pub fn fixed_bytes<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let take = b.len().min(N);
    out[N - take..].copy_from_slice(&b[b.len() - take..]);
    out
}

/// go's `Bytes()` of a `big.Int` (zero is empty; `BigUint::to_bytes_be` would give `[0]`).
pub fn biguint_bytes(n: &BigUint) -> Vec<u8> {
    if n.is_zero() {
        Vec::new()
    } else {
        n.to_bytes_be()
    }
}

/// A protobuf big-integer field as a number.
pub fn biguint(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_be(bytes)
}

/// go-livepeer's `maxWinProb`: 2^256 − 1, the win probability of a ticket that always wins.
pub fn max_win_prob() -> BigUint {
    (BigUint::one() << 256u32) - 1u32
}

/// The expected value of one ticket in wei: `faceValue × winProb / (2^256 − 1)`, exactly
/// (go-livepeer `ticketEV`).
pub fn ticket_ev(face_value: &[u8], win_prob: &[u8]) -> Rat {
    let num = BigInt::from(biguint(face_value) * biguint(win_prob));
    Rat::new(num, BigInt::from(max_win_prob()))
}

/// The win probability an orchestrator advertises for `face_value` so that a ticket is worth
/// `ev` (go-livepeer `recipient.winProb`): `ev × ⌈(2^256 − 1) / faceValue⌉`, the whole range when
/// the face value equals the EV, zero for a zero face value.
pub fn win_prob_for(face_value: &BigUint, ev: &BigUint) -> BigUint {
    if face_value.is_zero() {
        return BigUint::zero();
    }
    if face_value == ev {
        return max_win_prob();
    }
    let max = max_win_prob();
    let (quotient, remainder) = (&max / face_value, &max % face_value);
    // go tests `remainder.Int64() != 0`, which only sees the low 64 bits of the remainder.
    let low64 = remainder.iter_u64_digits().next().unwrap_or(0);
    if low64 != 0 {
        ev * (quotient + 1u32)
    } else {
        ev * quotient
    }
}

/// A price as go's `big.NewRat(pricePerUnit, pixelsPerUnit)`; `None` when `pixelsPerUnit` is 0
/// (go-livepeer `common.RatPriceInfo` errors: "pixels per unit is 0").
pub fn price_rat(price: &PriceInfo) -> Option<Rat> {
    (price.pixels_per_unit != 0)
        .then(|| Rat::new(BigInt::from(price.price_per_unit), BigInt::from(price.pixels_per_unit)))
}

/// go's `big.Rat.RatString`: `"a/b"`, or `"a"` when the denominator is 1.
pub fn rat_string(r: &Rat) -> String {
    if r.denom().is_one() {
        r.numer().to_string()
    } else {
        format!("{}/{}", r.numer(), r.denom())
    }
}

/// go's `big.Rat.SetString` for what signer state holds: an integer, `"a/b"` (b ≠ 0), or a
/// decimal such as `"-12.5"`. `None` when it does not parse.
pub fn parse_rat(s: &str) -> Option<Rat> {
    let s = s.trim();
    if let Some((num, den)) = s.split_once('/') {
        let (num, den): (BigInt, BigInt) = (num.parse().ok()?, den.parse().ok()?);
        return (!den.is_zero()).then(|| Rat::new(num, den));
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.chars().all(|c| c.is_ascii_digit()) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let negative = int.starts_with('-');
    let int_digits = int.trim_start_matches(['-', '+']);
    let digits = format!("{int_digits}{frac}");
    let magnitude: BigInt = if digits.is_empty() { BigInt::zero() } else { digits.parse().ok()? };
    let scale = num_traits::pow(BigInt::from(10u32), frac.len());
    let r = Rat::new(magnitude, scale);
    Some(if negative { -r } else { r })
}

/// A rational as `f64` (balances on the orchestrator double are `f64`).
pub fn rat_to_f64(r: &Rat) -> f64 {
    r.to_f64().unwrap_or(0.0)
}

/// go-livepeer's `TicketExpirationParams.AuxData`: the creation round left-padded to 32 bytes,
/// then the round's block hash; empty when both are zero.
pub fn aux_data(creation_round: i64, block_hash: &[u8; 32]) -> Vec<u8> {
    if creation_round == 0 && block_hash == &[0u8; 32] {
        return Vec::new();
    }
    // `big.NewInt(round).Bytes()` is the absolute value.
    let mut out = left_pad32(&be_bytes(u128::from(creation_round.unsigned_abs())));
    out.extend_from_slice(block_hash);
    out
}

/// The aux data of optional protobuf expiration params (absent reads as zero).
pub fn aux_data_of(expiration: Option<&TicketExpirationParams>) -> Vec<u8> {
    let round = expiration.map_or(0, |e| e.creation_round);
    let hash = expiration.map_or([0u8; 32], |e| fixed_bytes(&e.creation_round_block_hash));
    aux_data(round, &hash)
}

/// One ticket as go-livepeer's `pm.Ticket` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The orchestrator's address.
    pub recipient: [u8; 20],
    /// The paying address.
    pub sender: [u8; 20],
    /// Face value in wei (big-endian, any leading zeros are ignored).
    pub face_value: Vec<u8>,
    /// Win probability over 2^256 − 1 (big-endian).
    pub win_prob: Vec<u8>,
    /// The sender's nonce.
    pub sender_nonce: u32,
    /// keccak256 of the orchestrator's `recipientRand`.
    pub recipient_rand_hash: [u8; 32],
    /// Creation round of the expiration params.
    pub creation_round: i64,
    /// Block hash of the creation round.
    pub creation_round_block_hash: [u8; 32],
}

impl Ticket {
    /// The ticket with nonce `sender_nonce` that `sender` draws on `params`, with the expiration
    /// params a payment carries beside them (go-livepeer `pm.NewTicket`, address and hash fields
    /// read as `BytesToAddress` / `BytesToHash`).
    pub fn new(
        params: &TicketParams,
        expiration: Option<&TicketExpirationParams>,
        sender: &[u8],
        sender_nonce: u32,
    ) -> Ticket {
        Ticket {
            recipient: fixed_bytes(&params.recipient),
            sender: fixed_bytes(sender),
            face_value: minimal_be(&params.face_value).to_vec(),
            win_prob: minimal_be(&params.win_prob).to_vec(),
            sender_nonce,
            recipient_rand_hash: fixed_bytes(&params.recipient_rand_hash),
            creation_round: expiration.map_or(0, |e| e.creation_round),
            creation_round_block_hash: expiration
                .map_or([0u8; 32], |e| fixed_bytes(&e.creation_round_block_hash)),
        }
    }

    /// go-livepeer's `Ticket.flatten`: recipient ‖ sender ‖ faceValue ‖ winProb ‖ senderNonce
    /// (each number left-padded to 32 bytes) ‖ recipientRandHash ‖ aux data (168 or 232 bytes).
    pub fn flatten(&self) -> Vec<u8> {
        let aux = aux_data(self.creation_round, &self.creation_round_block_hash);
        let mut buf = Vec::with_capacity(168 + aux.len());
        buf.extend_from_slice(&self.recipient);
        buf.extend_from_slice(&self.sender);
        buf.extend_from_slice(&left_pad32(minimal_be(&self.face_value)));
        buf.extend_from_slice(&left_pad32(minimal_be(&self.win_prob)));
        buf.extend_from_slice(&left_pad32(&be_bytes(u128::from(self.sender_nonce))));
        buf.extend_from_slice(&self.recipient_rand_hash);
        buf.extend_from_slice(&aux);
        buf
    }

    /// go-livepeer's `Ticket.Hash`: plain keccak-256 of [`Ticket::flatten`].
    pub fn hash(&self) -> [u8; 32] {
        keccak256(&self.flatten())
    }

    /// What the signature covers: personal_sign over the 32-byte hash,
    /// `keccak256("\x19Ethereum Signed Message:\n32" ‖ hash)`.
    pub fn signature_digest(&self) -> [u8; 32] {
        signature_digest(&self.flatten())
    }

    /// The sender's signature (65 bytes, `v` = 27/28, low `s`).
    pub fn sign(&self, key: &EthKey) -> [u8; 65] {
        // `EthKey::sign(m)` is personal_sign over keccak256(m), i.e. over the ticket hash.
        key.sign(&self.flatten())
    }

    /// Whether `sig` is the sender's signature over this ticket (go-livepeer `VerifySig`).
    pub fn verify(&self, sig: &[u8]) -> bool {
        keys::verify(&self.flatten(), sig, &self.sender)
    }

    /// The ticket's expected value in wei.
    pub fn ev(&self) -> Rat {
        ticket_ev(&self.face_value, &self.win_prob)
    }
}

/// go-livepeer's `recipient.rand`: HMAC-SHA256 under the orchestrator's `secret` of
/// `seed ‖ sender ‖ faceValue ‖ winProb ‖ expirationBlock ‖ price.num ‖ price.denom ‖ auxData`,
/// numbers in minimal big-endian form (no padding, no length prefixes). `params` gives the seed,
/// face value, win probability and expiration block; its own `expiration_params` are ignored in
/// favour of `expiration` (at payment time they travel beside the ticket params).
pub fn recipient_rand(
    secret: &[u8; 32],
    params: &TicketParams,
    sender: &[u8; 20],
    price: &Rat,
    expiration: Option<&TicketExpirationParams>,
) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC key");
    mac.update(minimal_be(&params.seed));
    mac.update(sender);
    mac.update(minimal_be(&params.face_value));
    mac.update(minimal_be(&params.win_prob));
    mac.update(minimal_be(&params.expiration_block));
    mac.update(&biguint_bytes(price.numer().magnitude()));
    mac.update(&biguint_bytes(price.denom().magnitude()));
    mac.update(&aux_data_of(expiration));
    mac.finalize().into_bytes().into()
}

/// go-livepeer's `recipientRandHash`: keccak256 of the rand left-padded to 32 bytes.
pub fn recipient_rand_hash(rand: &[u8; 32]) -> [u8; 32] {
    keccak256(&left_pad32(minimal_be(rand)))
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

// ---------------------------------------------------------------------------------------------
// Sender-side check of a whole payment, for tests
// ---------------------------------------------------------------------------------------------

/// A payment whose tickets were all signed by its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPayment {
    /// The paying address (the signer's).
    pub sender: [u8; 20],
    /// Tickets in the payment (0 for a ticket-less payment).
    pub ticket_count: usize,
    /// Expected value of one ticket in wei (exact value rounded to `f64`).
    pub ticket_ev_wei: f64,
    /// Each ticket's sender nonce, in payment order.
    pub nonces: Vec<u32>,
    /// The ticket params' `recipient_rand_hash` the nonces belong to (empty without tickets).
    pub recipient_rand_hash: Vec<u8>,
}

impl VerifiedPayment {
    /// The credit the payment is worth: tickets × EV.
    pub fn total_ev_wei(&self) -> f64 {
        self.ticket_count as f64 * self.ticket_ev_wei
    }
}

/// Why [`verify_payment`] refused a payment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentRejection {
    /// `sender` is not a 20-byte address.
    #[error("payment sender is {0} bytes, expected 20")]
    BadSender(usize),
    /// Tickets without the ticket params they were drawn on.
    #[error("payment has {0} tickets but no ticket params")]
    MissingTicketParams(usize),
    /// A ticket's signature does not recover to `sender`.
    #[error("ticket {index} (nonce {nonce}) is not signed by the payment sender")]
    BadTicketSignature {
        /// Position in the payment.
        index: usize,
        /// Its sender nonce.
        nonce: u32,
    },
    /// The same nonce twice in one payment.
    #[error("sender nonce {0} appears twice in the payment")]
    DuplicateNonce(u32),
}

/// Checks that every ticket of `payment` was signed by `payment.sender` over go-livepeer's
/// ticket hash (with the payment's expiration params), and reports what it is worth. The
/// recipient's own checks (recipientRand, expiry, nonce replay) are the orchestrator's.
pub fn verify_payment(payment: &Payment) -> Result<VerifiedPayment, PaymentRejection> {
    let sender: [u8; 20] = payment
        .sender
        .as_slice()
        .try_into()
        .map_err(|_| PaymentRejection::BadSender(payment.sender.len()))?;
    let tickets = &payment.ticket_sender_params;
    let Some(params) = &payment.ticket_params else {
        if tickets.is_empty() {
            return Ok(VerifiedPayment {
                sender,
                ticket_count: 0,
                ticket_ev_wei: 0.0,
                nonces: Vec::new(),
                recipient_rand_hash: Vec::new(),
            });
        }
        return Err(PaymentRejection::MissingTicketParams(tickets.len()));
    };
    let mut nonces = Vec::with_capacity(tickets.len());
    for (index, t) in tickets.iter().enumerate() {
        if nonces.contains(&t.sender_nonce) {
            return Err(PaymentRejection::DuplicateNonce(t.sender_nonce));
        }
        let ticket = Ticket::new(params, payment.expiration_params.as_ref(), &sender, t.sender_nonce);
        if !ticket.verify(&t.sig) {
            return Err(PaymentRejection::BadTicketSignature { index, nonce: t.sender_nonce });
        }
        nonces.push(t.sender_nonce);
    }
    Ok(VerifiedPayment {
        sender,
        ticket_count: tickets.len(),
        ticket_ev_wei: rat_to_f64(&ticket_ev(&params.face_value, &params.win_prob)),
        nonces,
        recipient_rand_hash: params.recipient_rand_hash.clone(),
    })
}

#[cfg(test)]
mod tests;
