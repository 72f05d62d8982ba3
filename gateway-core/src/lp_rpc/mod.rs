//! go-livepeer's `net` protobuf package: `Orchestrator.GetOrchestrator` and the messages that
//! travel in headers (`Payment`, `SegData`) and bodies (`PaymentResult`).
//!
//! `net.rs` is generated from `proto/lp_rpc.proto` and committed, so building needs no `protoc`.
//! Regenerate it after editing the proto with
//! `cargo run --manifest-path tools/protogen/Cargo.toml`.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod net;

pub use net::*;

use base64::Engine;
use prost::Message;

use thiserror::Error;

/// A base64 protobuf value (header or signer field) that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// Not base64.
    #[error("{what}: not base64 ({reason})")]
    Base64 {
        /// Which value.
        what: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// Not a valid protobuf message of the expected type.
    #[error("{what}: not a valid protobuf message ({reason})")]
    Decode {
        /// Which value.
        what: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// A required field is missing.
    #[error("{what}: missing {field}")]
    MissingField {
        /// Which message.
        what: &'static str,
        /// Which field.
        field: &'static str,
    },
}

/// gRPC path of `GetOrchestrator`.
pub const GET_ORCHESTRATOR_PATH: &str = "/net.Orchestrator/GetOrchestrator";

/// Base64 (standard alphabet) of a message's protobuf bytes: the form used in the
/// `Livepeer-Payment` / `Livepeer-Segment` headers and the signer's `orchestrator` field.
pub fn to_base64<M: Message>(msg: &M) -> String {
    base64::engine::general_purpose::STANDARD.encode(msg.encode_to_vec())
}

/// Decodes a base64 protobuf value; `what` names it in errors.
pub fn from_base64<M: Message + Default>(what: &'static str, value: &str) -> Result<M, ProtoError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| ProtoError::Base64 { what, reason: e.to_string() })?;
    M::decode(bytes.as_slice()).map_err(|e| ProtoError::Decode { what, reason: e.to_string() })
}

/// Interprets big-endian unsigned bytes (ticket face value, win probability) as an `f64`.
/// Precise enough for price and expected-value estimates, never used for signing.
pub fn big_endian_to_f64(bytes: &[u8]) -> f64 {
    bytes.iter().fold(0.0, |acc, b| acc * 256.0 + f64::from(*b))
}

impl TicketParams {
    /// Expected value of one ticket in wei: `face_value * win_prob / 2^256`. Always finite and
    /// non-negative: the win probability is capped at 1 and an absurdly long face value (both
    /// are uint256 on the wire) saturates at `f64::MAX`.
    pub fn expected_value_wei(&self) -> f64 {
        let win = (big_endian_to_f64(&self.win_prob) / 2f64.powi(256)).min(1.0);
        if win == 0.0 {
            return 0.0;
        }
        big_endian_to_f64(&self.face_value).min(f64::MAX) * win
    }
}

impl PriceInfo {
    /// Wei per unit of work (`pricePerUnit / pixelsPerUnit`); `None` when the price is unusable:
    /// `pixelsPerUnit` not positive or `pricePerUnit` negative.
    pub fn wei_per_unit(&self) -> Option<f64> {
        (self.pixels_per_unit > 0 && self.price_per_unit >= 0)
            .then(|| self.price_per_unit as f64 / self.pixels_per_unit as f64)
    }
}

impl OrchestratorInfo {
    /// An orchestrator without price and ticket parameters runs offchain: no payments.
    pub fn is_offchain(&self) -> bool {
        self.ticket_params.is_none() && self.price_info.as_ref().is_none_or(|p| p.price_per_unit == 0)
    }

    /// Whether the orchestrator charges: a positive price. go's gateways and remote signer pay
    /// only then (the signer answers 400 "missing or zero priceInfo" to a zero price), whatever
    /// ticket parameters came with it.
    pub fn charges(&self) -> bool {
        self.price_info.as_ref().is_some_and(|p| p.price_per_unit > 0 && p.pixels_per_unit > 0)
    }

    /// The capability-specific price for `(capability, constraint)`, from `capabilities_prices`.
    pub fn capability_price(&self, capability: u32, constraint: &str) -> Option<&PriceInfo> {
        self.capabilities_prices.iter().find(|p| p.capability == capability && p.constraint == constraint)
    }
}

#[cfg(test)]
mod tests {
    use super::capabilities::{capability_constraints::ModelConstraint, CapabilityConstraints, Constraints};
    use super::*;

    /// An `OrchestratorInfo` shaped like a real on-chain orchestrator's answer.
    fn real_shaped_info() -> OrchestratorInfo {
        let mut models = std::collections::HashMap::new();
        models.insert(
            "streamdiffusion".to_owned(),
            ModelConstraint { warm: true, capacity: 2, runner_version: "0.14.1".into(), capacity_in_use: 1 },
        );
        let mut per = std::collections::HashMap::new();
        per.insert(35, CapabilityConstraints { models });
        OrchestratorInfo {
            transcoder: "https://orch.example:8935".into(),
            ticket_params: Some(TicketParams {
                recipient: vec![0x11; 20],
                face_value: 1_000_000_000_000_000u64.to_be_bytes().to_vec(),
                win_prob: vec![0xff; 32],
                recipient_rand_hash: vec![0x22; 32],
                seed: vec![0x33; 16],
                expiration_block: 123_456_789u64.to_be_bytes().to_vec(),
                expiration_params: Some(TicketExpirationParams {
                    creation_round: 4000,
                    creation_round_block_hash: vec![0x44; 32],
                }),
            }),
            price_info: Some(PriceInfo {
                price_per_unit: 1200,
                pixels_per_unit: 1,
                capability: 0,
                constraint: String::new(),
            }),
            address: vec![0x55; 20],
            capabilities: Some(Capabilities {
                bitstring: vec![0x0000_0028_0400_5fff],
                mandatories: vec![],
                capacities: [(35, 2)].into_iter().collect(),
                version: "0.9.1".into(),
                constraints: Some(Constraints { min_version: String::new(), per_capability: per }),
            }),
            auth_token: Some(AuthToken {
                token: vec![0x66; 32],
                session_id: "1a2b3c4d".into(),
                expiration: 1_800_000_000,
            }),
            hardware: vec![],
            storage: vec![],
            capabilities_prices: vec![PriceInfo {
                price_per_unit: 2_500,
                pixels_per_unit: 1,
                capability: 35,
                constraint: "streamdiffusion".into(),
            }],
            nodes: vec!["https://node2.example:8935".into()],
        }
    }

    #[test]
    fn orchestrator_info_round_trips_through_base64() {
        let info = real_shaped_info();
        let s = to_base64(&info);
        let back: OrchestratorInfo = from_base64("orchestrator info", &s).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.capability_price(35, "streamdiffusion").unwrap().price_per_unit, 2_500);
        assert!(!back.is_offchain());
    }

    #[test]
    fn field_numbers_match_the_wire() {
        // PaymentResult.info is field 16: tag = (16 << 3) | 2 = 0x82 0x01 as a varint.
        let pr =
            PaymentResult { info: Some(OrchestratorInfo { transcoder: "x".into(), ..Default::default() }) };
        let bytes = prost::Message::encode_to_vec(&pr);
        assert_eq!(&bytes[..2], &[0x82, 0x01]);
        // OrchestratorInfo.capabilities_prices is field 33: tag (33 << 3) | 2 = 266 = 0x8a 0x02.
        let info = OrchestratorInfo { capabilities_prices: vec![PriceInfo::default()], ..Default::default() };
        assert_eq!(&prost::Message::encode_to_vec(&info)[..2], &[0x8a, 0x02]);
        // OrchestratorRequest.ignoreCapacityCheck is field 4 (varint): tag 0x20.
        let req = OrchestratorRequest { ignore_capacity_check: true, ..Default::default() };
        assert_eq!(prost::Message::encode_to_vec(&req), vec![0x20, 0x01]);
    }

    #[test]
    fn decode_errors_are_typed() {
        let e = from_base64::<OrchestratorInfo>("orchestrator info", "%%%").unwrap_err();
        assert!(matches!(e, ProtoError::Base64 { .. }));
        let e = from_base64::<OrchestratorInfo>("orchestrator info", "/////w==").unwrap_err();
        assert!(matches!(e, ProtoError::Decode { .. }), "{e:?}");
    }

    #[test]
    fn ticket_expected_value() {
        // win_prob = 2^255 → one half of face value.
        let mut win = vec![0u8; 32];
        win[0] = 0x80;
        let t =
            TicketParams { face_value: 1000u32.to_be_bytes().to_vec(), win_prob: win, ..Default::default() };
        assert!((t.expected_value_wei() - 500.0).abs() < 1e-6);
        assert_eq!(
            PriceInfo { price_per_unit: 10, pixels_per_unit: 4, ..Default::default() }.wei_per_unit(),
            Some(2.5)
        );
        assert_eq!(PriceInfo::default().wei_per_unit(), None);
        assert!(OrchestratorInfo::default().is_offchain());
    }

    /// Regression (fuzz target `orchestrator_info`): hostile prices and ticket values gave
    /// negative prices and NaN expected values.
    #[test]
    fn hostile_prices_and_tickets_stay_sane() {
        let price = |price_per_unit, pixels_per_unit| PriceInfo {
            price_per_unit,
            pixels_per_unit,
            ..Default::default()
        };
        assert_eq!(price(10, -2).wei_per_unit(), None);
        assert_eq!(price(-10, 2).wei_per_unit(), None);
        assert_eq!(price(i64::MIN, -1).wei_per_unit(), None);
        assert_eq!(price(0, 7).wei_per_unit(), Some(0.0));
        // 200 bytes of face value overflow f64; with a zero win probability that was inf * 0.
        let huge = TicketParams { face_value: vec![0xff; 200], win_prob: vec![], ..Default::default() };
        assert_eq!(huge.expected_value_wei(), 0.0);
        let certain =
            TicketParams { face_value: vec![0xff; 200], win_prob: vec![0xff; 40], ..Default::default() };
        assert_eq!(certain.expected_value_wei(), f64::MAX);
        let one = TicketParams { face_value: vec![1], win_prob: vec![0xff; 64], ..Default::default() };
        assert_eq!(one.expected_value_wei(), 1.0);
    }
}
