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

use super::{header, Inner, PaymentRoute, Reject, SenderNonces};
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

    /// go-livepeer's `orchestrator.ProcessPayment`: receives every ticket and credits the
    /// expected value of those received before the first error to `(payment sender, key)`. 400
    /// with go-livepeer's message on an error (tickets credited before it stay credited). The
    /// ledger records what was credited under `route`.
    pub(super) fn process_payment(
        &self,
        payment: &Payment,
        key: &str,
        route: PaymentRoute,
    ) -> Result<[u8; 20], Reject> {
        let bad = |m: String| Reject(StatusCode::BAD_REQUEST, m);
        let sender: [u8; 20] = fixed_bytes(&payment.sender);
        if self.config.offchain {
            return Ok(sender);
        }
        if payment.sender.is_empty() && payment.ticket_params.is_some() {
            return Err(bad("Could not find Sender for payment".into()));
        }
        let Some(params) = &payment.ticket_params else {
            // No ticket params: a price of 0, nothing to credit (go still fixes the price).
            self.fix_price(sender, key, &Rat::zero());
            return Ok(sender);
        };
        let price = match &payment.expected_price {
            None => Err("expected price is nil"),
            Some(p) => price_rat(p).ok_or("pixels per unit is 0"),
        }
        .map_err(|e| bad(format!("invalid expected price sent with payment err={e:?}")))?;
        self.fix_price(sender, key, &price);
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
            let mut book = self.sender_nonces.lock().unwrap_or_else(|e| e.into_inner());
            // go-livepeer forgets a rand's nonces once its params expire, when a block arrives.
            if book.cleaned_at_block < last_seen {
                book.by_rand.retain(|_, n| n.expiration_block > last_seen);
                book.cleaned_at_block = last_seen;
            }
            let nonces = &mut book.by_rand;
            for tsp in &payment.ticket_sender_params {
                let ticket = Ticket::new(params, Some(expiration), &sender, tsp.sender_nonce);
                let received =
                    self.receive_ticket(&ticket, &tsp.sig, &rand, expiration_block, last_seen, nonces);
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
        let refused = fatal.or(receive_error);
        if credited > 0 {
            let wei = rat_to_f64(&credit);
            *self
                .balances
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((sender, key.to_owned()))
                .or_insert(0.0) += wei;
            self.counters.tickets_accepted.fetch_add(credited, Ordering::Relaxed);
            self.ledger.credit(route, credited, wei, refused.is_none());
        }
        if let Some(m) = refused {
            return Err(bad(m));
        }
        if credited > 0 {
            self.counters.payments_accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(sender)
    }

    /// go's `setFixedPricePerSession`: the first payment of `(sender, manifest)` fixes its
    /// price (a reduced fraction, as go's `big.Rat` keeps it), even when its tickets fail.
    fn fix_price(&self, sender: [u8; 20], manifest: &str, price: &Rat) {
        let reduced = PriceInfo {
            price_per_unit: price.numer().try_into().unwrap_or(i64::MAX),
            pixels_per_unit: price.denom().try_into().unwrap_or(1),
            ..Default::default()
        };
        let mut fixed = self.fixed_prices.lock().unwrap_or_else(|e| e.into_inner());
        fixed.entry((sender, manifest.to_owned())).or_insert(reduced);
    }

    /// The price fixed for `(sender, manifest)` by its first payment (go's `Balances.FixedPrice`).
    pub(super) fn fixed_price(&self, sender: &[u8; 20], manifest: &str) -> Option<PriceInfo> {
        let fixed = self.fixed_prices.lock().unwrap_or_else(|e| e.into_inner());
        fixed.get(&(*sender, manifest.to_owned())).cloned()
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

#[cfg(test)]
mod tests {
    use gateway_core::lp_rpc::TicketSenderParams;

    use super::*;
    use crate::keys::EthKey;
    use crate::orchestrator::{LocalOrchestrator, OrchestratorConfig};
    use crate::trickle_server::{TrickleConfig, TrickleServer};

    /// An orchestrator that is not served (the trickle server needs a runtime).
    fn orchestrator() -> LocalOrchestrator {
        let trickle = TrickleServer::new(TrickleConfig::default());
        LocalOrchestrator::new(OrchestratorConfig::default(), "http://127.0.0.1:1".into(), trickle)
    }

    fn price() -> PriceInfo {
        PriceInfo { price_per_unit: 100, pixels_per_unit: 1, ..Default::default() }
    }

    /// A payment from `key` on `params` with the given nonces, signed as go's sender signs.
    fn payment(key: &EthKey, params: &TicketParams, nonces: impl IntoIterator<Item = u32>) -> Payment {
        let expiration = params.expiration_params.clone();
        let ticket_sender_params = nonces
            .into_iter()
            .map(|n| TicketSenderParams {
                sender_nonce: n,
                sig: Ticket::new(params, expiration.as_ref(), &key.address(), n).sign(key).to_vec(),
            })
            .collect();
        Payment {
            ticket_params: Some(TicketParams { expiration_params: None, ..params.clone() }),
            sender: key.address().to_vec(),
            expiration_params: expiration,
            ticket_sender_params,
            expected_price: Some(price()),
        }
    }

    #[tokio::test]
    async fn issued_params_follow_gos_recipient() {
        let orch = orchestrator();
        let inner = &orch.inner;
        let sender = [7u8; 20];
        let p = inner.ticket_params(&sender, &price());
        assert_eq!(p.recipient, orch.address().to_vec());
        assert_eq!(p.face_value, be_bytes(1_200_000_000_000_000));
        assert_eq!(
            crate::tickets::ticket_ev(&p.face_value, &p.win_prob).round(),
            Rat::from_integer(8_000_000_000u64.into())
        );
        let rand = recipient_rand(
            &inner.recipient_secret,
            &p,
            &sender,
            &Rat::from_integer(100.into()),
            p.expiration_params.as_ref(),
        );
        assert_eq!(p.recipient_rand_hash, recipient_rand_hash(&rand).to_vec());
        assert_ne!(inner.ticket_params(&sender, &price()).seed, p.seed, "a fresh seed each time");
        // Free: no face value, no win probability.
        let free = inner.ticket_params(&sender, &PriceInfo { pixels_per_unit: 1, ..Default::default() });
        assert!(free.face_value.is_empty() && free.win_prob.is_empty());
    }

    #[tokio::test]
    async fn expired_params_use_up_the_nonce_and_credit_nothing() {
        let orch = orchestrator();
        let inner = &orch.inner;
        let key = EthKey::random();
        // Both payments below must fall in one simulated block (12 s).
        if unix_now() % crate::tickets::BLOCK_TIME_SECS as i64 >= 10 {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        }
        // Params whose expiration block is the current block: expired for go's recipient
        // (expirationBlock <= last seen block), but correctly bound to this sender.
        let mut params = inner.ticket_params(&key.address(), &price());
        params.expiration_block = be_bytes(u128::from(block_at(unix_now())));
        let rand = recipient_rand(
            &inner.recipient_secret,
            &params,
            &key.address(),
            &Rat::from_integer(100.into()),
            params.expiration_params.as_ref(),
        );
        params.recipient_rand_hash = recipient_rand_hash(&rand).to_vec();
        let p = payment(&key, &params, [1]);
        let err = inner.process_payment(&p, "cap", PaymentRoute::ByocPayment).unwrap_err();
        assert_eq!((err.0, err.1.as_str()), (StatusCode::BAD_REQUEST, "TicketParams expired"));
        assert_eq!(orch.balance(&key.address(), "cap"), 0.0);
        // go counts the nonce before the expiry check; the entry goes when the next block comes.
        let again = inner.process_payment(&p, "cap", PaymentRoute::ByocPayment).unwrap_err();
        assert!(again.1.starts_with("invalid ticket senderNonce: already seen"), "{}", again.1);
    }

    #[tokio::test]
    async fn at_most_600_nonces_per_recipient_rand() {
        let orch = orchestrator();
        let inner = &orch.inner;
        let key = EthKey::random();
        let params = inner.ticket_params(&key.address(), &price());
        inner.process_payment(&payment(&key, &params, 1..=600), "cap", PaymentRoute::ByocPayment).unwrap();
        let ev = rat_to_f64(&crate::tickets::ticket_ev(&params.face_value, &params.win_prob));
        assert!((orch.balance(&key.address(), "cap") - 600.0 * ev).abs() < 1e3);
        let err = inner
            .process_payment(&payment(&key, &params, [601]), "cap", PaymentRoute::ByocPayment)
            .unwrap_err();
        let who = checksum_address(&key.address());
        assert_eq!(err.1, format!("invalid ticket senderNonce: too many values sender={who} nonce=601"));
    }

    #[tokio::test]
    async fn credit_stops_at_the_first_error_but_later_nonces_count() {
        let orch = orchestrator();
        let inner = &orch.inner;
        let key = EthKey::random();
        let params = inner.ticket_params(&key.address(), &price());
        inner.process_payment(&payment(&key, &params, [2]), "cap", PaymentRoute::ByocPayment).unwrap();
        let one = orch.balance(&key.address(), "cap");
        // 1 is credited, 2 was seen, 3 is received but no longer credited.
        let err = inner
            .process_payment(&payment(&key, &params, [1, 2, 3]), "cap", PaymentRoute::ByocPayment)
            .unwrap_err();
        assert!(err.1.contains("already seen") && err.1.ends_with("nonce=2"), "{}", err.1);
        assert!((orch.balance(&key.address(), "cap") - 2.0 * one).abs() < 1.0);
        let third = inner
            .process_payment(&payment(&key, &params, [3]), "cap", PaymentRoute::ByocPayment)
            .unwrap_err();
        assert!(third.1.ends_with("nonce=3"), "{}", third.1);
        // Missing expiration params: go panics (the connection is dropped).
        let mut bare = payment(&key, &params, [4]);
        bare.expiration_params = None;
        assert_eq!(
            inner.process_payment(&bare, "cap", PaymentRoute::ByocPayment).unwrap_err().0,
            Reject::panic_status()
        );
    }
}
