//! `livepeer-gateway get-orchestrator-info`: asks orchestrators for their info (`GetOrchestrator`)
//! and prints what they offer: transcoder URI, ETH address, version, capabilities with per-model
//! capacity, prices and whether ticket parameters came back.
//!
//! Every orchestrator is asked even when some fail; each failure is reported with its cause, and
//! the exit code is 1 only when none answered.

use clap::{ArgAction, Args, ValueEnum};
use futures_util::stream::{self, StreamExt};
use gateway_actors::discovery::discover;
use gateway_actors::grpc::OrchestratorRpc;
use gateway_core::capabilities::{
    build_capabilities, check_compatible, has_bit, Capability, CapabilityQuery,
};
use gateway_core::error::redact_url;
use gateway_core::lp_rpc::{Capabilities, OrchestratorInfo, OrchestratorRequest, PriceInfo};
use serde_json::{json, Value};

use crate::cli::{self, parse_capability};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable blocks.
    Text,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// Options of `get-orchestrator-info`.
#[derive(Debug, Args)]
pub struct OrchestratorInfoArgs {
    /// Orchestrators to ask (host:port or URL, comma-delimited or separate). Without any, they
    /// are discovered (discovery URL, else the signer).
    #[arg(value_name = "ADDR")]
    pub addresses: Vec<String>,
    /// Capabilities to ask about, as PIPELINE/MODEL (e.g. byoc/text-reversal); comma-delimited
    /// and/or repeated. They filter discovery and make orchestrators quote their prices.
    #[arg(long, value_name = "PIPELINE/MODEL", action = ArgAction::Append, num_args = 1, value_delimiter = ',', value_parser = parse_capability)]
    pub caps: Vec<CapabilityQuery>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(mut args: OrchestratorInfoArgs) -> anyhow::Result<()> {
    // Addresses given as arguments are an orchestrator list like --orchestrator: they name the
    // real network, so no embedded one is started.
    args.network.orchestrators.append(&mut args.addresses);
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = cli::interruptible(ask_all(&net, &args.caps, args.format)).await;
    net.shutdown().await;
    result
}

async fn ask_all(net: &Network, queries: &[CapabilityQuery], format: Format) -> anyhow::Result<()> {
    let gw = &net.gateway;
    let settings = &gw.config().network;
    let addresses = discover(gw.http(), settings, queries).await?;
    if addresses.is_empty() {
        anyhow::bail!("discovery returned no orchestrators");
    }
    // With a signer, ask as the gateway would: signed, so orchestrators return ticket params.
    let identity = if settings.signer.is_some() { gw.identity().await? } else { None };
    let requested = (!queries.is_empty()).then(|| build_capabilities(queries));
    let request = OrchestratorRequest {
        address: identity.as_ref().map(|i| i.address_bytes.to_vec()).unwrap_or_default(),
        sig: identity.map(|i| i.signature).unwrap_or_default(),
        capabilities: requested.clone(),
        ignore_capacity_check: true,
    };
    let rpc = OrchestratorRpc::new(gw.config().trust.clone());
    // Ask in parallel but print in the given order.
    let answers: Vec<(String, Result<OrchestratorInfo, String>)> = stream::iter(addresses)
        .map(|address| {
            let (rpc, request) = (rpc.clone(), request.clone());
            async move {
                let result = rpc.get_orchestrator(&address, request).await.map_err(|e| e.cause());
                (address, result)
            }
        })
        .buffered(8)
        .collect()
        .await;

    let reports: Vec<Value> =
        answers.iter().map(|(address, result)| report(address, result, requested.as_ref())).collect();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Jsonl => reports.iter().for_each(|r| println!("{r}")),
        Format::Text => {
            for (i, r) in reports.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", text(r));
            }
        }
    }
    let failed = reports.iter().filter(|r| r["ok"] == false).count();
    if failed == reports.len() {
        anyhow::bail!("no orchestrator answered ({failed} failed)");
    }
    if failed > 0 {
        eprintln!("{failed} of {} orchestrators failed", reports.len());
    }
    Ok(())
}

/// One orchestrator's answer as JSON (the model for every format).
fn report(
    address: &str,
    result: &Result<OrchestratorInfo, String>,
    requested: Option<&Capabilities>,
) -> Value {
    let address = redact_url(address);
    let info = match result {
        Ok(info) => info,
        Err(e) => return json!({ "orchestrator": address, "ok": false, "error": e }),
    };
    let eth_address = <[u8; 20]>::try_from(info.address.as_slice())
        .map(|a| gateway_core::eth::checksum_address(&a))
        .unwrap_or_else(|_| format!("0x{}", hex::encode(&info.address)));
    let compatible = requested.map(|req| match check_compatible(req, info.capabilities.as_ref()) {
        Ok(()) => json!({ "compatible": true }),
        Err(e) => json!({ "compatible": false, "reason": e.to_string() }),
    });
    json!({
        "orchestrator": address,
        "ok": true,
        "transcoder": info.transcoder,
        "eth_address": eth_address,
        "version": info.capabilities.as_ref().map(|c| c.version.clone()).unwrap_or_default(),
        "capabilities": capabilities(info.capabilities.as_ref()),
        "pricing": {
            "general": info.price_info.as_ref().map(price),
            "capabilities": info.capabilities_prices.iter().map(price).collect::<Vec<_>>(),
        },
        "ticket_params": info.ticket_params.is_some(),
        "hardware": info.hardware.iter().map(|h| json!({
            "pipeline": h.pipeline,
            "model_id": h.model_id,
            "gpus": h.gpu_info.values().map(|g| json!({
                "id": g.id, "name": g.name, "memory_free": g.memory_free, "memory_total": g.memory_total,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "requested": compatible,
    })
}

fn capabilities(caps: Option<&Capabilities>) -> Vec<Value> {
    let Some(caps) = caps else { return Vec::new() };
    let per_cap = caps.constraints.as_ref().map(|c| &c.per_capability);
    let max_id = caps.bitstring.len() as u32 * 64;
    (0..max_id)
        .filter(|id| has_bit(&caps.bitstring, *id))
        .map(|id| {
            let mut models: Vec<Value> = per_cap
                .and_then(|p| p.get(&id))
                .map(|c| {
                    c.models
                        .iter()
                        .map(|(name, m)| {
                            json!({
                                "model": name,
                                "warm": m.warm,
                                "capacity": m.capacity,
                                "in_use": m.capacity_in_use,
                                "available": m.capacity.saturating_sub(m.capacity_in_use),
                                "runner_version": m.runner_version,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            models.sort_by(|a, b| a["model"].as_str().cmp(&b["model"].as_str()));
            let cap = Capability::from_id(id);
            json!({
                "id": id,
                "name": cap.map(|c| c.display_name()).unwrap_or("unknown"),
                "pipeline": cap.map(|c| c.pipeline_id()),
                "capacity": caps.capacities.get(&id),
                "models": models,
            })
        })
        .collect()
}

fn price(p: &PriceInfo) -> Value {
    let per_unit = (p.pixels_per_unit > 0).then(|| p.price_per_unit as f64 / p.pixels_per_unit as f64);
    let cap = Capability::from_id(p.capability);
    json!({
        "price_per_unit": p.price_per_unit,
        "pixels_per_unit": p.pixels_per_unit,
        "wei_per_unit": per_unit,
        "capability": p.capability,
        "capability_name": cap.map(|c| c.display_name()),
        "constraint": p.constraint,
    })
}

/// The text format of one report.
fn text(r: &Value) -> String {
    let mut out = format!("orchestrator {}\n", r["orchestrator"].as_str().unwrap_or_default());
    if r["ok"] == false {
        out += &format!("  error: {}\n", r["error"].as_str().unwrap_or_default());
        return out;
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    out += &format!("  transcoder:  {}\n", s(&r["transcoder"]));
    out += &format!("  eth address: {}\n", s(&r["eth_address"]));
    let version = s(&r["version"]);
    out += &format!("  version:     {}\n", if version.is_empty() { "(not given)".into() } else { version });
    out += "  capabilities:\n";
    for c in r["capabilities"].as_array().into_iter().flatten() {
        let capacity = c["capacity"].as_u64().map(|n| format!(", capacity {n}")).unwrap_or_default();
        out += &format!("    {} ({}){capacity}\n", s(&c["name"]), c["id"]);
        for m in c["models"].as_array().into_iter().flatten() {
            out += &format!(
                "      {}: warm {}, capacity {}, in use {}, available {}\n",
                s(&m["model"]),
                m["warm"],
                m["capacity"],
                m["in_use"],
                m["available"]
            );
        }
    }
    out += "  prices:\n";
    // Asked about capabilities, an orchestrator quotes their price instead of its general one.
    let label = if r["requested"].is_null() { "general" } else { "for the requested capabilities" };
    match r["pricing"]["general"].as_object() {
        Some(p) => {
            out += &format!("    {label}: {} wei per {} pixels\n", p["price_per_unit"], p["pixels_per_unit"])
        }
        None => out += &format!("    {label}: (none)\n"),
    }
    for p in r["pricing"]["capabilities"].as_array().into_iter().flatten() {
        let name =
            p["capability_name"].as_str().map(str::to_owned).unwrap_or_else(|| p["capability"].to_string());
        let constraint = s(&p["constraint"]);
        let model = if constraint.is_empty() { String::new() } else { format!(" / {constraint}") };
        out +=
            &format!("    {name}{model}: {} wei per {} units\n", p["price_per_unit"], p["pixels_per_unit"]);
    }
    let tickets =
        if r["ticket_params"] == true { "present" } else { "absent (offchain or unsigned request)" };
    out += &format!("  ticket params: {tickets}\n");
    if let Some(req) = r["requested"].as_object() {
        if req["compatible"] == true {
            out += "  requested capabilities: served\n";
        } else {
            out += &format!("  requested capabilities: not served ({})\n", s(&req["reason"]));
        }
    }
    out
}
