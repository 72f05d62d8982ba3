//! What a gateway reads before paying: `GET /process/token` and `GetOrchestrator`.

use gateway_core::capabilities::Capability;
use gateway_core::jobs::{self, EthAddressHeader};
use gateway_core::lp_rpc::{OrchestratorRequest, PriceInfo};
use livepeer_gateway_testkit::orchestrator::{CapabilityOffer, GoVersion};
use serde_json::{json, Value};

use crate::harness::{start, stream_job, CAP, CAPACITY};
use crate::streams::fund;

const BAD_ETH: &str = "Invalid eth address header \n";

fn byoc_bit_set(bitstring: &[u64]) -> bool {
    let id = Capability::Byoc.id() as usize;
    bitstring.get(id / 64).is_some_and(|w| (w >> (id % 64)) & 1 == 1)
}

#[tokio::test]
async fn process_token_refuses_missing_and_bad_headers() {
    let n = start(|_| {}).await;
    let r = n.token_with(None, Some(CAP)).await;
    assert_eq!(
        r.pair(),
        (400, "Must have eth address and signature on address in Livepeer-Eth-Address header\n")
    );
    let other = livepeer_gateway_testkit::keys::EthKey::random();
    let addr = n.key.checksum_address();
    let forged = EthAddressHeader {
        addr: addr.clone(),
        sig: format!("0x{}", hex::encode(other.sign(addr.as_bytes()))),
    };
    // Signed over the lower-case address: go verifies the string exactly as sent.
    let lower = EthAddressHeader {
        addr: addr.clone(),
        sig: format!("0x{}", hex::encode(n.key.sign(addr.to_lowercase().as_bytes()))),
    };
    for bad in ["%%%".to_owned(), "bnVsbA==".to_owned(), forged.to_header(), lower.to_header()] {
        let r = n.token_with(Some(&bad), Some(CAP)).await;
        assert_eq!(r.pair(), (400, BAD_ETH), "{bad}");
    }
    let good = EthAddressHeader {
        addr: addr.clone(),
        sig: format!("0x{}", hex::encode(n.key.sign(addr.as_bytes()))),
    };
    let r = n.token_with(Some(&good.to_header()), None).await;
    assert_eq!(
        r.pair(),
        (400, "Job capabilities not provided, must provide comma separated capabilities in Livepeer-Capability header\n")
    );
    assert_eq!(n.token_with(Some(&good.to_header()), Some(CAP)).await.status, 200);
}

#[tokio::test]
async fn process_token_has_gos_shape() {
    let n = start(|_| {}).await;
    let r = n.token(CAP).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.body.ends_with("}\n"), "json.Encoder ends with a newline");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    // Field order as go's struct, zero values left out (no balance yet), `LastNonce` always there.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut by_position = keys.clone();
    by_position.sort_by_key(|k| r.body.find(&format!("\"{k}\":")).unwrap());
    assert_eq!(
        by_position,
        ["sender_address", "ticket_params", "price", "service_addr", "available_capacity", "LastNonce"]
    );
    assert_eq!(v["LastNonce"], 0);
    assert_eq!(v["price"], json!({"pricePerUnit": 100, "pixelsPerUnit": 1}));
    assert_eq!(v["service_addr"], n.orch);
    assert_eq!(v["available_capacity"], CAPACITY);
    assert_eq!(v["sender_address"]["addr"], n.key.checksum_address());
    let params = v["ticket_params"].as_object().unwrap();
    for key in ["recipient", "face_value", "win_prob", "recipient_rand_hash", "seed", "expiration_block"] {
        let b64 = params[key].as_str().unwrap_or_else(|| panic!("{key}"));
        assert!(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).is_ok(), "{key}");
    }
    assert!(params["expiration_params"]["creation_round"].is_number());
    // With a balance, it is there, rounded down.
    fund(&n).await;
    let v: Value = serde_json::from_str(&n.token(CAP).await.body).unwrap();
    assert_eq!(v["balance"], 8_000_000_000i64);
}

#[tokio::test]
async fn process_token_leaves_out_a_zero_capacity() {
    let n = start(|c| {
        for o in c.orchestrator.offers.iter_mut().filter(|o| o.model == CAP) {
            *o = CapabilityOffer { capacity: 1, ..o.clone() };
        }
    })
    .await;
    fund(&n).await;
    let r = n.post(jobs::STREAM_START_PATH, &n.sign(stream_job("only")).await, None, Some(b"{}")).await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_str(&n.token(CAP).await.body).unwrap();
    assert!(v.get("available_capacity").is_none(), "{v}");
    // Full, but go never refuses for load: a second stream starts.
    let r = n.post(jobs::STREAM_START_PATH, &n.sign(stream_job("more")).await, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (200, ""));
}

#[tokio::test]
async fn process_token_for_an_unregistered_capability_is_still_200() {
    let n = start(|_| {}).await;
    let r = n.token("nope").await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert!(v.get("available_capacity").is_none());
    assert_eq!(v["price"], json!({"pixelsPerUnit": 1}));
    // Free: ticket params without a face value or win probability.
    let params = v["ticket_params"].as_object().unwrap();
    assert!(!params.contains_key("face_value") && !params.contains_key("win_prob"), "{params:?}");
    assert!(params.contains_key("recipient_rand_hash"));
}

/// An offer priced 201 wei per 2 s: 100.5 wei/s, which go floors where it quotes whole wei.
fn fractional(c: &mut livepeer_gateway_testkit::network::NetworkConfig) {
    for o in c.orchestrator.offers.iter_mut().filter(|o| o.model == CAP) {
        *o = CapabilityOffer { price_per_unit: 201, pixels_per_unit: 2, ..o.clone() };
    }
}

#[tokio::test]
async fn get_orchestrator_never_sets_bit_37_and_prices_byoc_by_name() {
    let n = start(fractional).await;
    let with_caps = n.info(Some(&format!("byoc/{CAP}"))).await;
    assert!(!byoc_bit_set(&with_caps.capabilities.as_ref().unwrap().bitstring));
    // #3869: the registered price as a rational, not floored; no per-capability list.
    let price = with_caps.price_info.unwrap();
    assert_eq!((price.price_per_unit, price.pixels_per_unit), (201, 2));
    assert!(with_caps.capabilities_prices.is_empty());
    // Without capabilities: the base price, and every price floored to whole wei, BYOC by name.
    let bare = n.grpc(OrchestratorRequest::default()).await.unwrap();
    assert!(!byoc_bit_set(&bare.capabilities.as_ref().unwrap().bitstring));
    let base = bare.price_info.unwrap();
    assert_eq!((base.price_per_unit, base.pixels_per_unit), (1, 1));
    let byoc = PriceInfo { price_per_unit: 100, pixels_per_unit: 1, capability: 37, constraint: CAP.into() };
    assert!(bare.capabilities_prices.contains(&byoc), "{:?}", bare.capabilities_prices);
    // LV2V's 1 wei per 1000 pixels floors to 0.
    let lv2v = PriceInfo { price_per_unit: 0, pixels_per_unit: 1, capability: 35, constraint: "noop".into() };
    assert!(bare.capabilities_prices.contains(&lv2v), "{:?}", bare.capabilities_prices);
    // What is charged is the floor too: the token quotes 100.
    let token: Value = serde_json::from_str(&n.token(CAP).await.body).unwrap();
    assert_eq!(token["price"]["pricePerUnit"], 100);
}

#[tokio::test]
async fn get_orchestrator_on_master_adds_nothing_for_byoc() {
    let n = start(|c| {
        fractional(c);
        c.orchestrator.go_version = GoVersion::Master;
    })
    .await;
    let with_caps = n.info(Some(&format!("byoc/{CAP}"))).await;
    // BYOC prices nothing, so the quote falls back to the base (transcoding) price.
    let price = with_caps.price_info.unwrap();
    assert_eq!((price.price_per_unit, price.pixels_per_unit), (1, 1));
    let bare = n.grpc(OrchestratorRequest::default()).await.unwrap();
    assert!(bare.capabilities_prices.iter().any(|p| p.capability == 37 && p.price_per_unit == 100));
}
