//! The signed session state a client carries from one payment to the next.

use base64::Engine;
use gateway_core::signer::SignerState;
use num_traits::Zero;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::routes::{base64_field, lowercase_keys, ApiError};
use crate::tickets::{parse_rat, rat_to_f64, Rat};

/// The signed session state carried by the client between payments. Field names follow
/// go-livepeer's `RemotePaymentState`, except `LastUpdateUnixNano` (see the module docs).
/// Public so tests can inspect what a payment left behind; clients must treat it as opaque.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentState {
    /// Random id of the payment session (the manifest id for BYOC).
    #[serde(rename = "StateID")]
    pub state_id: String,
    /// `0x` hex of the ticket params' `recipient_rand_hash` the nonce belongs to.
    #[serde(rename = "PMSessionID", default)]
    pub pm_session_id: String,
    /// Unix nanoseconds of the last payment; 0 before the first.
    #[serde(rename = "LastUpdateUnixNano", default)]
    pub last_update_unix_nano: i64,
    /// The orchestrator the session pays, `0x` and lowercase hex as Go's `common.Address` marshals.
    #[serde(rename = "OrchestratorAddress")]
    pub orchestrator_address: String,
    /// Application label pinned at the first call.
    #[serde(rename = "App", default)]
    pub app: String,
    /// Last sender nonce used with `PMSessionID`.
    #[serde(rename = "SenderNonce", default)]
    pub sender_nonce: u32,
    /// Credit in wei the orchestrator holds beyond what has been billed: an exact rational as
    /// go's `big.Rat.RatString` writes it (`"500"`, `"1031/4"`).
    #[serde(rename = "Balance", default)]
    pub balance: String,
    /// `pricePerUnit` of the session's first orchestrator info.
    #[serde(rename = "InitialPricePerUnit")]
    pub initial_price_per_unit: i64,
    /// `pixelsPerUnit` of the session's first orchestrator info.
    #[serde(rename = "InitialPixelsPerUnit")]
    pub initial_pixels_per_unit: i64,
    /// Payment type string (`lv2v`, `live`, `fixed`, `byoc`, or empty).
    #[serde(rename = "Type", default)]
    pub payment_type: String,
    /// 0 on the first payment, then +1 per call.
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: u64,
}

/// Why a [`SignerState`] could not be read back as a [`PaymentState`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateDecodeError {
    /// `State` is missing or not a string.
    #[error("state has no State string")]
    MissingState,
    /// `State` is not base64.
    #[error("State is not base64")]
    Base64,
    /// `State` is not the expected JSON.
    #[error("State is not a payment state: {0}")]
    Json(String),
}

impl PaymentState {
    /// Decodes the `State` half of a signer state without checking its signature (for tests).
    pub fn decode(state: &SignerState) -> Result<PaymentState, StateDecodeError> {
        let encoded = state.0.get("State").and_then(Value::as_str).ok_or(StateDecodeError::MissingState)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| StateDecodeError::Base64)?;
        serde_json::from_slice(&bytes).map_err(|e| StateDecodeError::Json(e.to_string()))
    }

    /// `Balance` exactly; 0 when empty, `None` when it does not parse.
    pub fn balance_rat(&self) -> Option<Rat> {
        if self.balance.is_empty() {
            return Some(Rat::zero());
        }
        parse_rat(&self.balance)
    }

    /// `Balance` as wei, rounded to `f64`.
    pub fn balance_wei(&self) -> Option<f64> {
        self.balance_rat().map(|b| rat_to_f64(&b))
    }
}

/// The `state` object: `{"State": base64 JSON, "Sig": base64 signature}`, any key casing.
pub(super) fn parse_state_object(value: Option<&Value>) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    match value {
        None | Some(Value::Null) => Ok((Vec::new(), Vec::new())),
        Some(Value::Object(fields)) => {
            let fields = lowercase_keys(fields.clone());
            Ok((
                base64_field(fields.get("state"), "state.State")?,
                base64_field(fields.get("sig"), "state.Sig")?,
            ))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "state must be an object, got {}",
            gateway_core::error::json_type_name(other)
        ))),
    }
}
