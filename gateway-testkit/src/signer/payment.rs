//! `/generate-live-payment`: go-livepeer's `GenerateLivePayment` checks in its order, billing
//! per payment type, and tickets minted with go-livepeer's exact arithmetic.

use base64::Engine;
use gateway_core::capabilities::capabilities_to_queries;
use gateway_core::eth::keccak256;
use gateway_core::jobs::LV2V_PIXELS_PER_SECOND;
use gateway_core::lp_rpc::{
    from_base64, to_base64, Capabilities, OrchestratorInfo, Payment, PriceInfo, SegData,
    TicketExpirationParams, TicketParams, TicketSenderParams,
};
use gateway_core::signer::{
    GenerateLivePaymentResponse, PaymentType, SignerState, BYOC_MIN_PRELOAD_SECONDS,
    LV2V_INITIAL_PAYMENT_SECONDS, MAX_TICKETS_PER_PAYMENT,
};
use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::routes::{hex_0x, lowercase_keys, random_id, ApiError};
use super::state::{parse_state_object, PaymentState};
use super::Inner;
use crate::keys::verify;
use crate::tickets::{
    block_at, expiration_params_at, fixed_bytes, minimal_be, parse_rat, rat_string, ticket_ev, Rat, Ticket,
    AUTH_TOKEN_REFRESH_WINDOW_SECS, PARAMS_EXPIRY_BUFFER_BLOCKS,
};

/// Seconds a `live` payment bills on a session's first call (go-livepeer `RemoteType_Live`).
const LIVE_INITIAL_PAYMENT_SECONDS: f64 = 10.0;
/// `maxPrice.unit` go-livepeer requires per payment type (`parseRemotePaymentMaxPrice`).
const MAX_PRICE_UNIT_LIVE: &str = "seconds";
const MAX_PRICE_UNIT_LV2V: &str = "720p-pixel-seconds";
const MAX_PRICE_UNIT_FIXED: &str = "fixed";
/// The only `maxPrice.currency` go-livepeer accepts.
const MAX_PRICE_CURRENCY: &str = "wei";
/// The prefix go-livepeer puts on `shouldRefreshSession` errors.
const REFRESH_CHECK_FAILED: &str = "remote signer could not check whether to refresh session";

/// The `/generate-live-payment` body after key lower-casing. Numbers keep Go's integer types so
/// a fraction or an out-of-range value is a 400, as with Go's decoder.
#[derive(Deserialize)]
struct PaymentBody {
    #[serde(default)]
    orchestrator: Option<String>,
    #[serde(default)]
    state: Option<Value>,
    #[serde(default, rename = "manifestid")]
    manifest_id: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default, rename = "inpixels")]
    in_pixels: Option<i64>,
    #[serde(default, rename = "type")]
    payment_type: Option<String>,
    #[serde(default, rename = "maxprice")]
    max_price: Option<Value>,
    #[serde(default)]
    capabilities: Option<String>,
    #[serde(default, rename = "preloadseconds")]
    preload_seconds: Option<i64>,
}

/// `maxPrice` as go-livepeer validates it: positive decimal (number or numeric string), currency
/// `wei`, unit matching the payment type. Compared against `pricePerUnit / pixelsPerUnit`.
fn parse_max_price(value: Option<&Value>, kind: PaymentType) -> Result<Option<f64>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let Value::Object(fields) = value else {
        return Err(ApiError::BadRequest(format!(
            "maxPrice must be an object, got {}",
            gateway_core::error::json_type_name(value)
        )));
    };
    let fields = lowercase_keys(fields.clone());
    let price = match fields.get("price") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|p| p.is_finite() && *p > 0.0)
    .ok_or_else(|| ApiError::BadRequest("maxPrice.price must be a positive decimal".into()))?;
    let text = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("").trim().to_lowercase();
    if text("currency") != MAX_PRICE_CURRENCY {
        return Err(ApiError::BadRequest("maxPrice.currency must be wei".into()));
    }
    let (expected_unit, type_name) = match kind {
        PaymentType::Live => (MAX_PRICE_UNIT_LIVE, "live"),
        PaymentType::Lv2v => (MAX_PRICE_UNIT_LV2V, "lv2v"),
        PaymentType::Fixed => (MAX_PRICE_UNIT_FIXED, "fixed"),
        // go-livepeer HEAD has no unit for these (BYOC is not on HEAD at all).
        PaymentType::Byoc | PaymentType::Pixels => {
            return Err(ApiError::BadRequest("maxPrice requires payment type live, lv2v, or fixed".into()))
        }
    };
    if text("unit") != expected_unit {
        return Err(ApiError::BadRequest(format!(
            "maxPrice.unit must be {expected_unit} for payment type {type_name}"
        )));
    }
    Ok(Some(price))
}

/// A price ceiling and where it came from, for the 481 message.
#[derive(Clone, Copy)]
struct Ceiling {
    source: &'static str,
    wei_per_unit: f64,
}

/// Billable units for this call (go-livepeer's per-type rules). `elapsed` is seconds since the
/// session's last payment, `None` on the first.
fn billable_units(
    kind: PaymentType,
    elapsed: Option<f64>,
    in_pixels: Option<i64>,
    preload_seconds: Option<i64>,
    price: &PriceInfo,
) -> Result<i64, ApiError> {
    // Go treats a non-positive elapsed time (first call, or a clock that went backwards) as
    // "first call".
    let elapsed = elapsed.filter(|e| *e > 0.0);
    let units = match kind {
        PaymentType::Lv2v => {
            let secs = elapsed.unwrap_or(LV2V_INITIAL_PAYMENT_SECONDS as f64);
            // `as` saturates: an absurd elapsed time cannot wrap to a negative count.
            (secs * LV2V_PIXELS_PER_SECOND as f64) as i64
        }
        PaymentType::Live => elapsed.unwrap_or(LIVE_INITIAL_PAYMENT_SECONDS).ceil() as i64,
        PaymentType::Fixed => 1,
        PaymentType::Pixels => in_pixels.unwrap_or(0),
        PaymentType::Byoc => {
            let secs = match elapsed {
                None => preload_seconds.unwrap_or(0).max(i64::from(BYOC_MIN_PRELOAD_SECONDS)) as f64,
                Some(e) => e.max(1.0),
            };
            (secs.ceil() as i64)
                .checked_mul(price.pixels_per_unit)
                .ok_or_else(|| ApiError::BadRequest("billable units overflow".into()))?
        }
    };
    if units <= 0 {
        return Err(ApiError::BadRequest("missing billable unit or job type".into()));
    }
    Ok(units)
}

/// What one successful call produced.
pub(super) struct Minted {
    pub(super) response: GenerateLivePaymentResponse,
    pub(super) tickets: u32,
}

impl Inner {
    /// go-livepeer's `GenerateLivePayment`, step by step and in its order.
    pub(super) fn mint(&self, fields: Map<String, Value>) -> Result<Minted, ApiError> {
        let req: PaymentBody = serde_json::from_value(Value::Object(fields))
            .map_err(|e| ApiError::BadRequest(format!("invalid payment request: {e}")))?;

        // 1. Orchestrator info, capabilities, price and ticket params.
        let encoded_info = req.orchestrator.as_deref().filter(|s| !s.trim().is_empty());
        let info: OrchestratorInfo = from_base64(
            "orchestrator",
            encoded_info.ok_or_else(|| ApiError::BadRequest("missing orchestrator".into()))?,
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let caps: Option<Capabilities> = match req.capabilities.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(c) => Some(from_base64("capabilities", c).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        let price = info
            .price_info
            .clone()
            .filter(|p| p.price_per_unit != 0 && p.pixels_per_unit != 0)
            .ok_or_else(|| ApiError::BadRequest("missing or zero priceInfo".into()))?;
        if price.price_per_unit < 0 || price.pixels_per_unit < 0 {
            return Err(ApiError::BadRequest("negative priceInfo".into()));
        }
        let params = info
            .ticket_params
            .clone()
            .ok_or_else(|| ApiError::BadRequest("missing ticketParams in OrchestratorInfo".into()))?;
        let orchestrator: [u8; 20] = fixed_bytes(&info.address);
        let job_type = req.payment_type.unwrap_or_default();
        let app = req.app.unwrap_or_default();

        // 2. State: verify, parse, check it belongs to this orchestrator, app and type.
        let (state_bytes, state_sig) = parse_state_object(req.state.as_ref())?;
        let has_state = !state_bytes.is_empty() || !state_sig.is_empty();
        let mut state = if has_state {
            if !verify(&state_bytes, &state_sig, &self.key.address()) {
                return Err(ApiError::BadRequest("invalid sig".into()));
            }
            let mut state: PaymentState = serde_json::from_slice(&state_bytes)
                .map_err(|_| ApiError::BadRequest("invalid state".into()))?;
            if gateway_core::eth::parse_address(&state.orchestrator_address) != Some(orchestrator) {
                return Err(ApiError::BadRequest("orchestratorAddress mismatch".into()));
            }
            if state.app != app {
                return Err(ApiError::BadRequest("app mismatch".into()));
            }
            if !state.payment_type.is_empty() && state.payment_type != job_type {
                return Err(ApiError::BadRequest("job type mismatch".into()));
            }
            state.payment_type = job_type.clone();
            state.sequence_number = state.sequence_number.saturating_add(1);
            state
        } else {
            PaymentState {
                state_id: random_id(),
                pm_session_id: String::new(),
                last_update_unix_nano: 0,
                orchestrator_address: hex_0x(&orchestrator),
                app,
                sender_nonce: 0,
                balance: String::new(),
                initial_price_per_unit: price.price_per_unit,
                initial_pixels_per_unit: price.pixels_per_unit,
                payment_type: job_type.clone(),
                sequence_number: 0,
            }
        };

        // The manifest in the segment credentials: BYOC pins the state id; otherwise the
        // caller's, required once there is state. Not compared with anything: go-livepeer's
        // state does not hold a manifest id, so a new one on a later call is accepted.
        let (sent_manifest, sent_type) = (req.manifest_id.clone(), job_type.clone());
        self.count(|s| {
            s.last_manifest_id = sent_manifest;
            s.last_payment_type = Some(sent_type);
        });
        let manifest_id = match req.manifest_id.filter(|m| !m.is_empty()) {
            _ if job_type == "byoc" => state.state_id.clone(),
            Some(m) => m,
            None if has_state => return Err(ApiError::BadRequest("missing manifestID".into())),
            None => random_id(),
        };
        // go-livepeer ignores a balance it cannot parse.
        let balance = parse_rat(&state.balance).unwrap_or_else(Rat::zero);
        // Nonces continue only on the ticket params the state's nonce belongs to.
        let pm_session_id = hex_0x(&fixed_bytes::<32>(&params.recipient_rand_hash));
        let nonce = if state.pm_session_id == pm_session_id { state.sender_nonce } else { 0 };

        // 3. Refresh (480) when the auth token is about to expire or the ticket params expired.
        let now_nanos = self.now_nanos();
        let now_secs = now_nanos.div_euclid(1_000_000_000);
        self.check_refresh(&info, &params, now_secs)?;

        // 4. Billable units.
        let kind = serde_json::from_value::<PaymentType>(Value::String(job_type.clone()))
            .ok()
            .filter(|k| *k != PaymentType::Byoc || self.go_version == crate::GoVersion::Pr3869)
            .ok_or_else(|| ApiError::BadRequest(gateway_core::signer::INVALID_JOB_TYPE_MESSAGE.into()))?;
        let elapsed = (state.last_update_unix_nano > 0)
            .then(|| now_nanos.saturating_sub(state.last_update_unix_nano) as f64 / 1e9);
        let units = billable_units(kind, elapsed, req.in_pixels, req.preload_seconds, &price)?;

        // 5. Price ceilings (481): configured, requested, and the session's initial price.
        let request_max = parse_max_price(req.max_price.as_ref(), kind)?;
        self.check_price(&price, &state, has_state, request_max)?;

        // 6. Fee at the initial price; tickets to bring the credit up to max(fee, EV).
        let fee = Rat::new(
            BigInt::from(units) * BigInt::from(state.initial_price_per_unit),
            BigInt::from(state.initial_pixels_per_unit),
        );
        let ev = ticket_ev(&params.face_value, &params.win_prob);
        let tickets = tickets_needed(&fee, &ev, &balance)?;

        // 7. Tickets: nonces nonce+1 ..= nonce+n (wrapping, like Go's atomic.AddUint32).
        let payment = self.payment(&params, &price, nonce, tickets, now_secs);

        // 8. Segment credentials for an empty segment. go-livepeer puts the literal `invalid`
        // in `profiles` while signing over an empty profile list; the shared message function
        // signs the field as sent, so the double leaves it empty and the two agree.
        let mut seg = SegData {
            manifest_id: manifest_id.clone().into_bytes(),
            seq: 0,
            hash: keccak256(&[]).to_vec(),
            capabilities: caps.clone(),
            auth_token: info.auth_token.clone(),
            ..Default::default()
        };
        seg.sig = self.key.sign(&crate::tickets::seg_data_message(&seg)).to_vec();

        // 9. New state, signed over its exact JSON bytes.
        let new_balance = &balance + Rat::from_integer(BigInt::from(tickets)) * &ev - &fee;
        state.balance = rat_string(&new_balance);
        state.last_update_unix_nano = now_nanos;
        state.pm_session_id = pm_session_id;
        state.sender_nonce = nonce.wrapping_add(tickets);
        let state_json =
            serde_json::to_vec(&state).map_err(|e| ApiError::Internal(format!("encode state: {e}")))?;
        let state_sig = self.key.sign(&state_json);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

        tracing::debug!(
            payment_type = %job_type,
            manifest_id = %manifest_id,
            seq = state.sequence_number,
            units,
            fee = %rat_string(&fee),
            tickets,
            balance = %state.balance,
            caps = ?caps.as_ref().map(capabilities_to_queries),
            "signer minted payment"
        );
        Ok(Minted {
            response: GenerateLivePaymentResponse {
                payment: to_base64(&payment),
                seg_creds: to_base64(&seg),
                state: SignerState(serde_json::json!({"State": b64(&state_json), "Sig": b64(&state_sig)})),
            },
            tickets,
        })
    }

    /// go-livepeer's `shouldRefreshSession` for a signer: 480 when the auth token is in the last
    /// 10% of its validity or the ticket params are about to expire; 400 for the other ticket
    /// params problems a sender checks (`sender.ValidateTicketParams` for one ticket).
    fn check_refresh(
        &self,
        info: &OrchestratorInfo,
        params: &TicketParams,
        now_secs: i64,
    ) -> Result<(), ApiError> {
        let cannot_check = |why: String| ApiError::BadRequest(format!("{REFRESH_CHECK_FAILED}: {why}"));
        let auth_token = info.auth_token.as_ref().ok_or_else(|| cannot_check("missing auth token".into()))?;
        let refresh = || ApiError::RefreshSession {
            orchestrator_url: Some(info.transcoder.clone()),
            reason: "refresh session for remote signer".into(),
        };
        if now_secs > auth_token.expiration.saturating_sub(AUTH_TOKEN_REFRESH_WINDOW_SECS) {
            return Err(refresh());
        }
        let expiration_block = BigInt::from_bytes_be(num_bigint::Sign::Plus, &params.expiration_block);
        if expiration_block.is_zero() {
            return Err(cannot_check("ticketParams expiration block is 0".into()));
        }
        let left = expiration_block - BigInt::from(block_at(now_secs));
        if left <= BigInt::from(PARAMS_EXPIRY_BUFFER_BLOCKS) {
            return Err(refresh());
        }
        let ev = ticket_ev(&params.face_value, &params.win_prob);
        if !ev.is_positive() {
            return Ok(());
        }
        let face = crate::tickets::biguint(&params.face_value);
        if ev >= Rat::from_integer(BigInt::from(face.clone())) {
            return Err(cannot_check(format!("ticket faceValue too low faceValue={face}")));
        }
        Ok(())
    }

    /// 481 when the orchestrator's price is above a ceiling: the signer's configured one, the
    /// request's `maxPrice`, or (with state) the session's initial price.
    fn check_price(
        &self,
        price: &PriceInfo,
        state: &PaymentState,
        has_state: bool,
        request_max: Option<f64>,
    ) -> Result<(), ApiError> {
        let orch_price = price.price_per_unit as f64 / price.pixels_per_unit as f64;
        if has_state && (state.initial_price_per_unit <= 0 || state.initial_pixels_per_unit <= 0) {
            return Err(ApiError::BadRequest("invalid initial price in state".into()));
        }
        let initial_price = state.initial_price_per_unit as f64 / state.initial_pixels_per_unit as f64;
        // Exact rational comparison: an unchanged price must never read as a rise.
        let above_initial = i128::from(price.price_per_unit) * i128::from(state.initial_pixels_per_unit)
            > i128::from(state.initial_price_per_unit) * i128::from(price.pixels_per_unit);
        let configured = [
            self.max_price_wei_per_unit
                .map(|p| Ceiling { source: "configured maximum price", wei_per_unit: p }),
            request_max.map(|p| Ceiling { source: "request maxPrice", wei_per_unit: p }),
        ];
        let exceeded =
            (has_state && above_initial) || configured.iter().flatten().any(|c| orch_price > c.wei_per_unit);
        if !exceeded {
            return Ok(());
        }
        let initial =
            has_state.then_some(Ceiling { source: "initial session price", wei_per_unit: initial_price });
        let ceilings = [configured[0], configured[1], initial];
        let lowest = ceilings
            .iter()
            .flatten()
            .min_by(|a, b| a.wei_per_unit.total_cmp(&b.wei_per_unit))
            .map(|c| format!("{} ceiling {:.3}", c.source, c.wei_per_unit))
            .unwrap_or_default();
        Err(ApiError::PriceExceeded(format!("orchestrator price {orch_price:.3} exceeds {lowest}")))
    }

    /// go-livepeer's `genPayment`: `tickets` tickets with nonces `nonce + 1 ..`, signed over the
    /// ticket hash. The expiration params are the orchestrator's, or the simulated chain's at
    /// `now` when it sent none or zero ones (go-livepeer's `CreateTicketBatch` substitutes its own).
    fn payment(
        &self,
        params: &TicketParams,
        price: &PriceInfo,
        nonce: u32,
        tickets: u32,
        now_secs: i64,
    ) -> Payment {
        let expiration = params
            .expiration_params
            .clone()
            .filter(|e| e.creation_round != 0 && fixed_bytes::<32>(&e.creation_round_block_hash) != [0u8; 32])
            .unwrap_or_else(|| expiration_params_at(now_secs));
        let sender = self.key.address();
        let ticket_sender_params = (1..=tickets)
            .map(|i| {
                let sender_nonce = nonce.wrapping_add(i);
                let ticket = Ticket::new(params, Some(&expiration), &sender, sender_nonce);
                TicketSenderParams { sender_nonce, sig: ticket.sign(&self.key).to_vec() }
            })
            .collect();
        Payment {
            // The fields as go's `big.Int.Bytes()` and `Address/Hash.Bytes()` give them; the
            // expiration params travel beside the ticket params, not inside.
            ticket_params: Some(TicketParams {
                recipient: fixed_bytes::<20>(&params.recipient).to_vec(),
                face_value: minimal_be(&params.face_value).to_vec(),
                win_prob: minimal_be(&params.win_prob).to_vec(),
                recipient_rand_hash: fixed_bytes::<32>(&params.recipient_rand_hash).to_vec(),
                seed: minimal_be(&params.seed).to_vec(),
                expiration_block: minimal_be(&params.expiration_block).to_vec(),
                expiration_params: None,
            }),
            sender: sender.to_vec(),
            expiration_params: Some(TicketExpirationParams {
                creation_round: expiration.creation_round,
                creation_round_block_hash: fixed_bytes::<32>(&expiration.creation_round_block_hash).to_vec(),
            }),
            ticket_sender_params,
            expected_price: Some(price.clone()),
        }
    }
}

/// go-livepeer's `newBalanceUpdate` and `Balance.StageUpdate`: the credit must reach
/// `max(fee, EV)`; 482 when the existing credit already does (or the EV is zero), else
/// `⌈(minCredit − existing) / EV⌉` tickets, at most 100.
fn tickets_needed(fee: &Rat, ev: &Rat, existing: &Rat) -> Result<u32, ApiError> {
    let min_credit = if ev > fee { ev } else { fee };
    if existing >= min_credit || ev.is_zero() {
        return Err(ApiError::NoTickets);
    }
    let needed = ((min_credit - existing) / ev).ceil().to_integer();
    if needed > BigInt::from(MAX_TICKETS_PER_PAYMENT) {
        return Err(ApiError::BadRequest(format!(
            "numTickets {needed} exceeds maximum of {MAX_TICKETS_PER_PAYMENT}"
        )));
    }
    // 1..=100 here.
    needed.to_u32().ok_or_else(|| ApiError::Internal("ticket count".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(ppu: i64, ppx: i64) -> PriceInfo {
        PriceInfo { price_per_unit: ppu, pixels_per_unit: ppx, ..Default::default() }
    }

    #[test]
    fn billable_units_per_type() {
        let p = price(10, 3);
        let lv2v_60 = 60 * LV2V_PIXELS_PER_SECOND as i64;
        assert_eq!(billable_units(PaymentType::Lv2v, None, None, None, &p).unwrap(), lv2v_60);
        assert_eq!(billable_units(PaymentType::Lv2v, Some(0.0), None, None, &p).unwrap(), lv2v_60);
        assert_eq!(
            billable_units(PaymentType::Lv2v, Some(2.5), None, None, &p).unwrap(),
            (2.5 * LV2V_PIXELS_PER_SECOND as f64) as i64
        );
        assert_eq!(billable_units(PaymentType::Live, None, None, None, &p).unwrap(), 10);
        assert_eq!(billable_units(PaymentType::Live, Some(4.2), None, None, &p).unwrap(), 5);
        assert_eq!(billable_units(PaymentType::Fixed, Some(99.0), None, None, &p).unwrap(), 1);
        assert_eq!(billable_units(PaymentType::Pixels, None, Some(1234), None, &p).unwrap(), 1234);
        assert!(billable_units(PaymentType::Pixels, None, None, None, &p).is_err());
        assert!(billable_units(PaymentType::Pixels, None, Some(-5), None, &p).is_err());
        // BYOC: preload floored at 60 s, later at least 1 s, times pixelsPerUnit.
        assert_eq!(billable_units(PaymentType::Byoc, None, None, Some(10), &p).unwrap(), 60 * 3);
        assert_eq!(billable_units(PaymentType::Byoc, None, None, Some(90), &p).unwrap(), 90 * 3);
        assert_eq!(billable_units(PaymentType::Byoc, Some(0.2), None, None, &p).unwrap(), 3);
        assert_eq!(billable_units(PaymentType::Byoc, Some(7.1), None, None, &p).unwrap(), 8 * 3);
        assert!(billable_units(PaymentType::Byoc, None, None, Some(i64::MAX), &price(1, i64::MAX)).is_err());
    }

    #[test]
    fn max_price_validation() {
        let mp = |v: Value, k| parse_max_price(Some(&v), k);
        let ok = serde_json::json!({"price": 2.5, "currency": "WEI", "unit": "720p-pixel-seconds"});
        assert_eq!(mp(ok, PaymentType::Lv2v).unwrap(), Some(2.5));
        let as_string = serde_json::json!({"price": "7", "currency": "wei", "unit": "seconds"});
        assert_eq!(mp(as_string, PaymentType::Live).unwrap(), Some(7.0));
        let wrong_unit = serde_json::json!({"price": 1, "currency": "wei", "unit": "seconds"});
        assert!(mp(wrong_unit, PaymentType::Fixed).unwrap_err().to_string().contains("must be fixed"));
        assert!(mp(serde_json::json!({"price": 0, "currency": "wei", "unit": "fixed"}), PaymentType::Fixed)
            .is_err());
        assert!(mp(serde_json::json!({"price": 1, "currency": "eth", "unit": "fixed"}), PaymentType::Fixed)
            .is_err());
        assert!(mp(serde_json::json!("cheap"), PaymentType::Fixed).is_err());
        assert_eq!(parse_max_price(Some(&Value::Null), PaymentType::Fixed).unwrap(), None);
    }

    #[test]
    fn ticket_count_is_go_exact() {
        let r = |n: i64, d: i64| Rat::new(n.into(), d.into());
        // Exactly on a boundary: 3 tickets, not 4 (no float rounding).
        assert_eq!(tickets_needed(&r(30, 1), &r(10, 1), &Rat::zero()).unwrap(), 3);
        assert_eq!(tickets_needed(&r(31, 1), &r(10, 1), &Rat::zero()).unwrap(), 4);
        // The EV is the floor: a tiny fee still buys one ticket.
        assert_eq!(tickets_needed(&r(1, 3), &r(10, 1), &Rat::zero()).unwrap(), 1);
        // Existing credit counts, and covering max(fee, EV) needs nothing.
        assert_eq!(tickets_needed(&r(30, 1), &r(10, 1), &r(5, 1)).unwrap(), 3);
        assert!(matches!(tickets_needed(&r(30, 1), &r(10, 1), &r(30, 1)), Err(ApiError::NoTickets)));
        assert!(matches!(tickets_needed(&r(5, 1), &r(10, 1), &r(10, 1)), Err(ApiError::NoTickets)));
        // A zero EV never mints.
        assert!(matches!(tickets_needed(&r(30, 1), &Rat::zero(), &Rat::zero()), Err(ApiError::NoTickets)));
        // 100 is the most.
        assert_eq!(tickets_needed(&r(1000, 1), &r(10, 1), &Rat::zero()).unwrap(), 100);
        let over = tickets_needed(&r(1001, 1), &r(10, 1), &Rat::zero()).unwrap_err();
        assert_eq!(over.to_string(), "numTickets 101 exceeds maximum of 100");
    }
}
