//! The recipient side of payments: auth tokens, ticket parameters, crediting tickets to
//! balances and checking segment credentials.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, StatusCode};
use gateway_core::capabilities::check_compatible;
use gateway_core::eth::keccak256;
use gateway_core::jobs;
use gateway_core::lp_rpc::{self, AuthToken, Payment, SegData, TicketExpirationParams, TicketParams};

use super::{header, Inner, Reject};
use crate::keys;
use crate::tickets::{
    be_bytes, block_at, ticket_params_expired, unix_now, AUTH_TOKEN_VALIDITY_SECS,
    TICKET_PARAMS_VALIDITY_BLOCKS,
};

/// Most sender nonces an orchestrator accepts per ticket-params set.
const MAX_NONCES_PER_PARAMS: usize = 600;

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

    pub(super) fn ticket_params(&self) -> TicketParams {
        let mut seed = [0u8; 16];
        rand::fill(&mut seed);
        let mut rand_input = self.secret.to_vec();
        rand_input.extend_from_slice(&seed);
        let now = unix_now();
        // win_prob = 2^256 / win_odds, as a 32-byte big-endian number.
        let mut win_prob = [0xffu8; 32];
        let odds = u128::from(self.config.win_odds.max(1));
        let top = u128::MAX / odds;
        win_prob[..16].copy_from_slice(&top.to_be_bytes());
        let params = TicketParams {
            recipient: self.key.address().to_vec(),
            face_value: be_bytes(self.config.ticket_face_value),
            win_prob: win_prob.to_vec(),
            recipient_rand_hash: keccak256(&rand_input).to_vec(),
            seed: seed.to_vec(),
            expiration_block: be_bytes(u128::from(block_at(now) + TICKET_PARAMS_VALIDITY_BLOCKS)),
            expiration_params: Some(TicketExpirationParams {
                creation_round: (block_at(now) / 100) as i64,
                creation_round_block_hash: keccak256(&block_at(now).to_be_bytes()).to_vec(),
            }),
        };
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(params.recipient_rand_hash.clone(), (params.clone(), HashSet::new()));
        params
    }

    /// Decodes and checks `Livepeer-Payment`; credits the tickets' expected value to
    /// `(sender, key)`. Returns the sender (all zeros when the payment is empty).
    pub(super) fn accept_payment(&self, headers: &HeaderMap, key: &str) -> Result<[u8; 20], Reject> {
        let raw = header(headers, jobs::HEADER_PAYMENT).unwrap_or("");
        let payment: Payment = if raw.trim().is_empty() {
            Payment::default()
        } else {
            lp_rpc::from_base64("payment", raw)
                .map_err(|e| Reject(StatusCode::PAYMENT_REQUIRED, e.to_string()))?
        };
        if payment.ticket_sender_params.is_empty() {
            let sender = payment.sender.as_slice().try_into().unwrap_or([0u8; 20]);
            return Ok(sender);
        }
        if self.config.offchain {
            return Ok(payment.sender.as_slice().try_into().unwrap_or([0u8; 20]));
        }
        let verified = crate::signer::verify_payment(&payment)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))?;
        let (sender, nonces) = (verified.sender, verified.nonces);
        let params = payment
            .ticket_params
            .as_ref()
            .ok_or_else(|| Reject(StatusCode::BAD_REQUEST, "missing ticket params".into()))?;
        if params.recipient != self.key.address() {
            return Err(Reject(StatusCode::BAD_REQUEST, "invalid ticket recipient".into()));
        }
        if ticket_params_expired(params, unix_now()) {
            return Err(Reject(StatusCode::BAD_REQUEST, "TicketParams expired".into()));
        }
        let ev = {
            let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
            let Some((ours, seen)) = issued.get_mut(&params.recipient_rand_hash) else {
                return Err(Reject(StatusCode::BAD_REQUEST, "invalid recipientRandHash".into()));
            };
            if ours.face_value != params.face_value || ours.win_prob != params.win_prob {
                return Err(Reject(StatusCode::BAD_REQUEST, "ticket params do not match".into()));
            }
            for n in &nonces {
                if !seen.insert(*n) {
                    return Err(Reject(
                        StatusCode::BAD_REQUEST,
                        "invalid ticket senderNonce: already seen".into(),
                    ));
                }
            }
            if seen.len() > MAX_NONCES_PER_PARAMS {
                return Err(Reject(
                    StatusCode::BAD_REQUEST,
                    "invalid ticket senderNonce: too many values".into(),
                ));
            }
            ours.expected_value_wei()
        };
        *self
            .balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((sender, key.to_owned()))
            .or_insert(0.0) += ev * nonces.len() as f64;
        self.counters.payments_accepted.fetch_add(1, Ordering::Relaxed);
        self.counters.tickets_accepted.fetch_add(nonces.len() as u64, Ordering::Relaxed);
        Ok(sender)
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
