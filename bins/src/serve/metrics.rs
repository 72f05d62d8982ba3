//! The node's Prometheus metrics (`GET /metrics`, text exposition format), with the
//! ecosystem's `prometheus-client`: streams started, failed, running, updated and stopped,
//! payments made for them, and how long each route takes to answer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A BYOC capability.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabel {
    /// Its name.
    pub capability: String,
}

/// A route and how it answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route's pattern, e.g. `/process/stream/{id}/update`.
    pub route: String,
    /// HTTP status answered.
    pub status: u16,
}

/// Every metric the node keeps.
pub struct NodeMetrics {
    registry: Registry,
    /// Streams started.
    pub streams_started: Family<CapabilityLabel, Counter>,
    /// Starts no orchestrator took.
    pub stream_start_failures: Family<CapabilityLabel, Counter>,
    /// Streams running now.
    pub streams_active: Gauge,
    /// Parameter updates relayed (any answer).
    pub stream_updates: Counter,
    /// Streams stopped (by their client, or by the node at shutdown).
    pub streams_stopped: Counter,
    /// Payments the orchestrators accepted for the node's streams.
    pub payments_sent: Counter,
    /// Time to answer, by route and status.
    pub request_seconds: Family<RouteLabel, Histogram>,
}

impl NodeMetrics {
    /// Registers every metric under the `livepeer_gateway_` prefix.
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::with_prefix("livepeer_gateway");
        let streams_started = Family::<CapabilityLabel, Counter>::default();
        registry.register("streams_started", "BYOC streams started", streams_started.clone());
        let stream_start_failures = Family::<CapabilityLabel, Counter>::default();
        registry.register(
            "stream_start_failures",
            "BYOC stream starts that no orchestrator took",
            stream_start_failures.clone(),
        );
        let streams_active = Gauge::default();
        registry.register("streams_active", "Streams running now (BYOC and LV2V)", streams_active.clone());
        let stream_updates = Counter::default();
        registry.register("stream_updates", "Parameter updates relayed to workers", stream_updates.clone());
        let streams_stopped = Counter::default();
        registry.register("streams_stopped", "BYOC streams stopped", streams_stopped.clone());
        let payments_sent = Counter::default();
        registry.register(
            "payments_sent",
            "Payments orchestrators accepted for streams",
            payments_sent.clone(),
        );
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register("request_seconds", "Time to answer a request", request_seconds.clone());
        NodeMetrics {
            registry,
            streams_started,
            stream_start_failures,
            streams_active,
            stream_updates,
            streams_stopped,
            payments_sent,
            request_seconds,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
