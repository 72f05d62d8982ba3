//! The recipient side of payments, as go-livepeer's orchestrator (`core/orchestrator.go`) and
//! `pm.recipient` do it: auth tokens, ticket parameters bound to a sender and a price, receiving
//! tickets (recipient, recipientRand, signature, nonce replay, expiry) and crediting their
//! expected value, and segment credentials.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use gateway_core::capabilities::check_compatible;
use gateway_core::eth::{checksum_address, keccak256};
use gateway_core::jobs;
use gateway_core::lp_rpc::{self, AuthToken, Payment, PriceInfo, SegData, TicketParams};
use num_bigint::BigUint;
use num_traits::{Signed, Zero};
use prost::Message;

use super::{header, Inner, Reject, SenderNonces};
use crate::keys;
use crate::tickets::{
    be_bytes, biguint_bytes, block_at, expiration_params_at, fixed_bytes, from_be_bytes, price_rat,
    rat_to_f64, recipient_rand, recipient_rand_hash, unix_now, win_prob_for, Rat, Ticket,
    AUTH_TOKEN_VALIDITY_SECS, MAX_SENDER_NONCES, TICKET_PARAMS_VALIDITY_BLOCKS,
};

/// go-livepeer's face value when the configured one is below the EV: EV × `evMultiplier`.
const EV_MULTIPLIER: u32 = 100;

/// Why one ticket was not credited (go-livepeer `ReceiveTicket`). A fatal error ends the payment
/// at once; after a non-fatal one the remaining tickets are still received (their nonces count)
/// but no longer credited.
enum ReceiveError {
    Fatal(String),
    NonFatal(String),
}

impl Inner {
    pub(super) fn auth_token(&self, session_id: Option<String>) -> AuthToken {
        let session_id = session_id.unwrap_or_else(|| hex::encode(rand::random::<[u8; 4]>()));
        let expiration = unix_now() + AUTH_TOKEN_VALIDITY_SECS;
        AuthToken { token: self.auth_mac(&session_id, expiration), session_id, expiration }
    }

    pub(super) fn auth_mac(&self, session_id: &str, expiration: i64) -> Vec<u8> {
        let mut m = self.secret.to_vec();
        m.extend_from_slice(session_id.as_bytes());
        m.extend_from_slice(&expiration.to_be_bytes());
        keccak256(&m).to_vec()
    }

    pub(super) fn check_auth_token(&self, token: Option<&AuthToken>) -> Result<(), String> {
        let t = token.ok_or("missing auth token")?;
        if t.token != self.auth_mac(&t.session_id, t.expiration) {
            return Err("invalid auth token".into());
        }
        if t.expiration < unix_now() {
            return Err("expired auth token".into());
        }
        Ok(())
    }

    /// The face value go-livepeer's recipient settles on: the configured one, or EV × 100 when
    /// that is below the EV.
    fn face_value(&self) -> BigUint {
        let (face, ev) = (self.config.ticket_face_value_wei, self.config.ticket_ev_wei);
        if face < ev {
            BigUint::from(ev) * EV_MULTIPLIER
        } else {
            BigUint::from(face)
        }
    }

    /// go-livepeer's `recipient.TicketParams(sender, price)`: a random seed; the face value and
    /// win probability for the configured EV (both zero when the price is zero); an expiration
    /// block 40 blocks ahead; the simulated chain's round; and a `recipient_rand_hash` that binds
    /// all of it to `sender` and `price`. A payment drawn on these params only passes from that
    /// sender, at that price, with these expiration params.
    pub(super) fn ticket_params(&self, sender: &[u8; 20], price: &PriceInfo) -> TicketParams {
        // go's `RatPriceInfo` fails on a zero denominator; the double quotes such a price as free.
        let price = price_rat(price).unwrap_or_else(Rat::zero);
        let (face_value, win_prob) = if price.is_positive() {
            let face = self.face_value();
            let win = win_prob_for(&face, &BigUint::from(self.config.ticket_ev_wei));
            (face, win)
        } else {
            (BigUint::zero(), BigUint::zero())
        };
        let now = unix_now();
        let mut params = TicketParams {
            recipient: self.key.address().to_vec(),
            face_value: biguint_bytes(&face_value),
            win_prob: biguint_bytes(&win_prob),
            recipient_rand_hash: Vec::new(),
            seed: biguint_bytes(&BigUint::from_bytes_be(&rand::random::<[u8; 32]>())),
            expiration_block: be_bytes(u128::from(block_at(now) + TICKET_PARAMS_VALIDITY_BLOCKS)),
            expiration_params: Some(expiration_params_at(now)),
        };
        let rand = recipient_rand(
            &self.recipient_secret,
            &params,
            sender,
            &price,
            params.expiration_params.as_ref(),
        );
        params.recipient_rand_hash = recipient_rand_hash(&rand).to_vec();
        params
    }

    /// go-livepeer's `getPayment`: `Livepeer-Payment` as base64 protobuf; an absent or empty header
    /// is an empty payment. 402 when it does not decode.
    pub(super) fn decode_payment(headers: &HeaderMap) -> Result<Payment, Reject> {
        let raw = header(headers, jobs::HEADER_PAYMENT).unwrap_or("").trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| Reject(StatusCode::PAYMENT_REQUIRED, format!("base64 decode error: {e}")))?;
        Payment::decode(bytes.as_slice())
            .map_err(|e| Reject(StatusCode::PAYMENT_REQUIRED, format!("protobuf unmarshal error: {e}")))
    }

    /// Decodes `Livepeer-Payment` ([`Inner::decode_payment`]) and processes it
    /// ([`Inner::process_payment`]). Returns the sender (all zeros when the payment is empty).
    pub(super) fn accept_payment(&self, headers: &HeaderMap, key: &str) -> Result<[u8; 20], Reject> {
        let payment = Self::decode_payment(headers)?;
        self.process_payment(&payment, key)
    }

    /// go-livepeer's `orchestrator.ProcessPayment`: receives every ticket and credits the
    /// expected value of those received before the first error to `(payment sender, key)`. 400
    /// with go-livepeer's message on an error (tickets credited before it stay credited).
    pub(super) fn process_payment(&self, payment: &Payment, key: &str) -> Result<[u8; 20], Reject> {
        let bad = |m: String| Reject(StatusCode::BAD_REQUEST, m);
        let sender: [u8; 20] = fixed_bytes(&payment.sender);
        if self.config.offchain {
            return Ok(sender);
        }
        if payment.sender.is_empty() && payment.ticket_params.is_some() {
            return Err(bad("Could not find Sender for payment".into()));
        }
        let Some(params) = &payment.ticket_params else {
            return Ok(sender); // no ticket params: a price of 0, nothing to credit
        };
        let price = match &payment.expected_price {
            None => Err("expected price is nil"),
            Some(p) => price_rat(p).ok_or("pixels per unit is 0"),
        }
        .map_err(|e| bad(format!("invalid expected price sent with payment err={e:?}")))?;
        let Some(expiration) = &payment.expiration_params else {
            // go-livepeer reads `payment.ExpirationParams.CreationRound` without a nil check.
            return Err(Reject::panic("payment with ticket params but no expiration params"));
        };

        let last_seen = u128::from(block_at(unix_now()));
        let rand = recipient_rand(&self.recipient_secret, params, &sender, &price, Some(expiration));
        let expiration_block = from_be_bytes(&params.expiration_block);
        let mut credit = Rat::zero();
        let mut credited = 0u64;
        let mut receive_error = None;
        let mut fatal = None;
        {
            let mut nonces = self.sender_nonces.lock().unwrap_or_else(|e| e.into_inner());
            // go-livepeer forgets a rand's nonces once its params expire.
            nonces.retain(|_, n| n.expiration_block > last_seen);
            for tsp in &payment.ticket_sender_params {
                let ticket = Ticket::new(params, Some(expiration), &sender, tsp.sender_nonce);
                let received =
                    self.receive_ticket(&ticket, &tsp.sig, &rand, expiration_block, last_seen, &mut nonces);
                match received {
                    Ok(()) => {}
                    Err(ReceiveError::Fatal(m)) => {
                        fatal = Some(m);
                        break;
                    }
                    Err(ReceiveError::NonFatal(m)) => receive_error = Some(m),
                }
                if receive_error.is_none() {
                    credit += ticket.ev();
                    credited += 1;
                }
            }
        }
        if credited > 0 {
            *self
                .balances
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((sender, key.to_owned()))
                .or_insert(0.0) += rat_to_f64(&credit);
            self.counters.tickets_accepted.fetch_add(credited, Ordering::Relaxed);
        }
        if let Some(m) = fatal.or(receive_error) {
            return Err(bad(m));
        }
        if credited > 0 {
            self.counters.payments_accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(sender)
    }

    /// go-livepeer's `recipient.ReceiveTicket` after the rand is computed: the validator's
    /// checks, the nonce bookkeeping, then expiry (a ticket on expired params still uses up its
    /// nonce).
    fn receive_ticket(
        &self,
        ticket: &Ticket,
        sig: &[u8],
        rand: &[u8; 32],
        expiration_block: u128,
        last_seen_block: u128,
        nonces: &mut HashMap<[u8; 32], SenderNonces>,
    ) -> Result<(), ReceiveError> {
        use ReceiveError::{Fatal, NonFatal};
        if ticket.recipient != self.key.address() {
            return Err(Fatal("invalid ticket recipient".into()));
        }
        if ticket.sender == [0u8; 20] {
            return Err(Fatal("invalid ticket sender".into()));
        }
        if recipient_rand_hash(rand) != ticket.recipient_rand_hash {
            return Err(Fatal("invalid recipientRand for ticket recipientRandHash".into()));
        }
        if !ticket.verify(sig) {
            return Err(NonFatal("invalid ticket signature".into()));
        }
        let entry =
            nonces.entry(*rand).or_insert_with(|| SenderNonces { seen: HashSet::new(), expiration_block });
        let (sender, nonce) = (checksum_address(&ticket.sender), ticket.sender_nonce);
        if entry.seen.contains(&nonce) {
            return Err(NonFatal(format!(
                "invalid ticket senderNonce: already seen sender={sender} nonce={nonce}"
            )));
        }
        if entry.seen.len() >= MAX_SENDER_NONCES {
            return Err(NonFatal(format!(
                "invalid ticket senderNonce: too many values sender={sender} nonce={nonce}"
            )));
        }
        entry.seen.insert(nonce);
        if expiration_block <= last_seen_block {
            return Err(NonFatal("TicketParams expired".into()));
        }
        Ok(())
    }

    /// Decodes and checks `Livepeer-Segment` (403 on failure).
    pub(super) fn check_segment(&self, headers: &HeaderMap, sender: &[u8; 20]) -> Result<SegData, Reject> {
        let forbidden = |m: String| Reject(StatusCode::FORBIDDEN, m);
        let raw = header(headers, jobs::HEADER_SEGMENT)
            .ok_or_else(|| forbidden("missing Livepeer-Segment".into()))?;
        let seg: SegData =
            lp_rpc::from_base64("segment credentials", raw).map_err(|e| forbidden(e.to_string()))?;
        self.check_auth_token(seg.auth_token.as_ref()).map_err(forbidden)?;
        if !self.config.offchain && sender != &[0u8; 20] && !seg.sig.is_empty() {
            let msg = crate::tickets::seg_data_message(&seg);
            if !keys::verify(&msg, &seg.sig, sender) {
                return Err(forbidden("invalid segment signature".into()));
            }
        }
        if let Some(caps) = &seg.capabilities {
            check_compatible(caps, Some(&self.capabilities()))
                .map_err(|e| forbidden(format!("incompatible capabilities: {e}")))?;
        }
        Ok(seg)
    }

    pub(super) fn debit(&self, sender: [u8; 20], key: &str, wei: f64) -> f64 {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let b = balances.entry((sender, key.to_owned())).or_insert(0.0);
        *b -= wei;
        *b
    }
}
