//! gRPC `GetOrchestrator`: the orchestrator info, prices and capabilities it answers.

use std::sync::atomic::Ordering;

use gateway_core::capabilities::Capability;
use gateway_core::lp_rpc::orchestrator_server::Orchestrator as OrchestratorRpc;
use gateway_core::lp_rpc::{
    AuthToken, Capabilities, EndTranscodingSessionRequest, EndTranscodingSessionResponse, OrchestratorInfo,
    OrchestratorRequest, PingPong, PriceInfo,
};

use num_traits::{ToPrimitive, Zero};

use super::byoc::byoc_price_per_second;
use super::{CapabilityOffer, GoVersion, Inner, LocalOrchestrator};
use crate::keys;
use crate::tickets::{price_rat, Rat};

/// An offer's price as go's `big.Rat` (`None` with no unit).
fn offer_rat(o: &CapabilityOffer) -> Option<Rat> {
    price_rat(&PriceInfo {
        price_per_unit: o.price_per_unit,
        pixels_per_unit: o.pixels_per_unit,
        ..Default::default()
    })
}

/// go's `common.PriceToInt64`: the floor of a price, whole wei per unit.
fn price_floor(price: &Rat) -> Option<i64> {
    price.floor().to_integer().to_i64()
}

/// A price as go puts a `big.Rat` on the wire: reduced, or floored when it does not fit in int64.
fn rat_price_info(price: &Rat) -> PriceInfo {
    match (price.numer().to_i64(), price.denom().to_i64()) {
        (Some(n), Some(d)) => PriceInfo { price_per_unit: n, pixels_per_unit: d, ..Default::default() },
        _ => PriceInfo {
            price_per_unit: price_floor(price).unwrap_or(0),
            pixels_per_unit: 1,
            ..Default::default()
        },
    }
}

impl Inner {
    /// The price for a request's capabilities (`core/orchestrator.go` `priceInfo`): the exact sum
    /// over `capacities` keys with model constraints, BYOC priced by capability name (#3869; master
    /// adds nothing for BYOC); the base price when that sum is zero. (AutoAdjustPrice is off.)
    pub(super) fn price_for(&self, caps: Option<&Capabilities>) -> PriceInfo {
        let base = PriceInfo {
            price_per_unit: self.config.price_per_unit,
            pixels_per_unit: self.config.pixels_per_unit,
            ..Default::default()
        };
        let Some(caps) = caps else { return base };
        let Some(constraints) = &caps.constraints else { return base };
        let mut total = Rat::zero();
        for id in caps.capacities.keys() {
            let (Some(cap), Some(models)) = (Capability::from_id(*id), constraints.per_capability.get(id))
            else {
                continue;
            };
            if cap == Capability::Byoc && self.config.go_version == GoVersion::Master {
                continue;
            }
            for model in models.models.keys() {
                if let Some(price) = self.offer_for(cap, model).and_then(|(_, o)| offer_rat(o)) {
                    total += price;
                }
            }
        }
        if total.is_zero() {
            return base;
        }
        rat_price_info(&total)
    }

    pub(super) fn orchestrator_info(
        &self,
        sender: &[u8; 20],
        caps: Option<&Capabilities>,
        auth_token: Option<AuthToken>,
    ) -> OrchestratorInfo {
        let offchain = self.config.offchain;
        let price = self.price_for(caps);
        OrchestratorInfo {
            transcoder: self.service_uri.clone(),
            ticket_params: (!offchain).then(|| self.ticket_params(sender, &price)),
            price_info: (!offchain).then_some(price),
            address: self.key.address().to_vec(),
            capabilities: Some(self.capabilities()),
            auth_token: Some(auth_token.unwrap_or_else(|| self.auth_token(None))),
            hardware: vec![],
            storage: vec![],
            // `GetCapabilitiesPrices`: every priced capability and model at whole wei per unit
            // (go floors them all), BYOC under its name; only when no capabilities were asked.
            capabilities_prices: if caps.is_none() {
                self.config
                    .offers
                    .iter()
                    .filter_map(|o| {
                        let floor = match o.capability {
                            Capability::Byoc if o.price_per_unit < 0 => return None,
                            Capability::Byoc => byoc_price_per_second(o),
                            _ => price_floor(&offer_rat(o)?)?,
                        };
                        (floor >= 0).then(|| PriceInfo {
                            price_per_unit: floor,
                            pixels_per_unit: 1,
                            capability: o.capability.id(),
                            constraint: o.model.clone(),
                        })
                    })
                    .collect()
            } else {
                vec![]
            },
            nodes: vec![],
        }
    }
}

/// gRPC side.
pub(super) struct GrpcService(pub(super) LocalOrchestrator);

#[tonic::async_trait]
impl OrchestratorRpc for GrpcService {
    async fn get_orchestrator(
        &self,
        request: tonic::Request<OrchestratorRequest>,
    ) -> Result<tonic::Response<OrchestratorInfo>, tonic::Status> {
        let inner = &self.0.inner;
        let req = request.into_inner();
        // Ticket params are bound to the requester (go: `BytesToAddress(req.Address)`).
        let sender: [u8; 20] = crate::tickets::fixed_bytes(&req.address);
        if !req.address.is_empty() {
            let addr: [u8; 20] = req
                .address
                .as_slice()
                .try_into()
                .map_err(|_| tonic::Status::invalid_argument("invalid address length"))?;
            let text = gateway_core::eth::checksum_address(&addr);
            if !inner.config.offchain && !keys::verify(text.as_bytes(), &req.sig, &addr) {
                return Err(tonic::Status::permission_denied("invalid sig"));
            }
        }
        if let Some(caps) = &req.capabilities {
            if !req.ignore_capacity_check {
                if let Some(per) = caps
                    .constraints
                    .as_ref()
                    .and_then(|c| c.per_capability.get(&Capability::LiveVideoToVideo.id()))
                {
                    let free = per.models.keys().any(|m| {
                        inner.offer_for(Capability::LiveVideoToVideo, m).is_some_and(|(i, o)| {
                            inner
                                .in_use
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&i)
                                .copied()
                                .unwrap_or(0)
                                < i64::from(o.capacity)
                        })
                    });
                    if !free {
                        return Err(tonic::Status::unknown(
                            "Invalid orchestrator request: OrchestratorCapped",
                        ));
                    }
                }
            }
        }
        inner.counters.get_orchestrator_calls.fetch_add(1, Ordering::Relaxed);
        Ok(tonic::Response::new(inner.orchestrator_info(&sender, req.capabilities.as_ref(), None)))
    }

    async fn end_transcoding_session(
        &self,
        _request: tonic::Request<EndTranscodingSessionRequest>,
    ) -> Result<tonic::Response<EndTranscodingSessionResponse>, tonic::Status> {
        Ok(tonic::Response::new(EndTranscodingSessionResponse {}))
    }

    async fn ping(
        &self,
        request: tonic::Request<PingPong>,
    ) -> Result<tonic::Response<PingPong>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }
}
