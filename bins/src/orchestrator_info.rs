//! `livepeer-gateway get-orchestrator-info`: asks orchestrators for their info (`GetOrchestrator`)
//! and prints what they offer: transcoder URI, ETH address, version, capabilities with per-model
//! capacity, prices and whether ticket parameters came back. BYOC capabilities never show in
//! that info (go-livepeer keeps them out of the bit string), so for each `--caps byoc/NAME` the
//! orchestrator is also asked for a job token (`/process/token`): free capacity, price, balance.
//!
//! Every orchestrator is asked even when some fail; each failure is reported with its cause, and
//! the exit code is 1 only when none answered.

use clap::{ArgAction, Args, ValueEnum};
use futures_util::stream::{self, StreamExt};
use gateway_actors::discovery::discover;
use gateway_actors::grpc::{orchestrator_request, OrchestratorRpc};
use gateway_actors::job_tokens::fetch_job_token_confirmed;
use gateway_core::capabilities::{
    build_capabilities, check_compatible, has_bit, Capability, CapabilityQuery,
};
use gateway_core::error::redact_url;
use gateway_core::jobs::JobToken;
use gateway_core::lp_rpc::{Capabilities, OrchestratorInfo, PriceInfo};
use gateway_core::vetting::vet_job_token;
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
    // go's discovery never lists BYOC capabilities: filter by the others only.
    let listed: Vec<CapabilityQuery> =
        queries.iter().filter(|q| q.capability != Capability::Byoc).cloned().collect();
    let addresses = discover(gw.http(), settings, &listed).await?;
    if addresses.is_empty() {
        anyhow::bail!("discovery returned no orchestrators");
    }
    // With a signer, ask as the gateway would: signed, so orchestrators return ticket params.
    let identity = if settings.signer.is_some() { gw.identity().await? } else { None };
    let requested = (!queries.is_empty()).then(|| build_capabilities(queries));
    let mut byoc: Vec<String> =
        queries.iter().filter(|q| q.capability == Capability::Byoc).map(|q| q.model.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    byoc.retain(|name| seen.insert(name.clone()));
    let judged = (!listed.is_empty()).then(|| build_capabilities(&listed));
    let request = orchestrator_request(identity.as_ref(), requested.clone());
    let rpc = OrchestratorRpc::new(gw.config().trust.clone());
    let token_timeout = gateway_actors::http::JSON_CALL_TIMEOUT;
    // Ask in parallel but print in the given order.
    let answers: Vec<Answer> = stream::iter(addresses)
        .map(|address| {
            let (rpc, request, identity, byoc) = (rpc.clone(), request.clone(), identity.clone(), &byoc);
            async move {
                let info = rpc.get_orchestrator(&address, request).await.map_err(|e| e.cause());
                let mut tokens = Vec::new();
                if info.is_ok() {
                    for name in byoc {
                        let token = fetch_job_token_confirmed(
                            gw.http(),
                            &rpc,
                            &address,
                            name,
                            identity.as_ref(),
                            token_timeout,
                        )
                        .await
                        .map_err(String::from);
                        tokens.push((name.clone(), token));
                    }
                }
                Answer { address, info, tokens }
            }
        })
        .buffered(8)
        .collect()
        .await;

    let reports: Vec<Value> =
        answers.iter().map(|a| report(a, requested.is_some(), judged.as_ref())).collect();
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

/// One orchestrator's answers: its info, and a job token per BYOC capability asked about.
struct Answer {
    address: String,
    info: Result<OrchestratorInfo, String>,
    tokens: Vec<(String, Result<JobToken, String>)>,
}

/// One orchestrator's answer as JSON (the model for every format). `judged` holds the non-BYOC
/// capabilities asked about; BYOC ones are judged by their tokens.
fn report(answer: &Answer, asked: bool, judged: Option<&Capabilities>) -> Value {
    let address = redact_url(&answer.address);
    let info = match &answer.info {
        Ok(info) => info,
        Err(e) => return json!({ "orchestrator": address, "ok": false, "error": e }),
    };
    let eth_address = <[u8; 20]>::try_from(info.address.as_slice())
        .map(|a| gateway_core::eth::checksum_address(&a))
        .unwrap_or_else(|_| format!("0x{}", hex::encode(&info.address)));
    let mut unserved: Vec<String> = Vec::new();
    if let Some(req) = judged {
        if let Err(e) = check_compatible(req, info.capabilities.as_ref()) {
            unserved.push(e.to_string());
        }
    }
    let byoc: Vec<Value> = answer
        .tokens
        .iter()
        .map(|(name, token)| {
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    unserved.push(format!("byoc/{name}: {e}"));
                    return json!({ "capability": name, "ok": false, "error": e });
                }
            };
            if let Err(e) = vet_job_token(token, name, None, false) {
                unserved.push(e.to_string());
            }
            let price = token.price();
            json!({
                "capability": name,
                "ok": true,
                "available_capacity": token.available_capacity,
                "price_per_unit": price.price_per_unit,
                "pixels_per_unit": price.pixels_per_unit,
                "wei_per_second": price.wei_per_second().unwrap_or(0.0),
                "balance": token.balance,
                "ticket_params": token.ticket_params.is_some(),
                "service_addr": token.service_addr,
            })
        })
        .collect();
    let compatible = asked.then(|| match unserved.is_empty() {
        true => json!({ "compatible": true }),
        false => json!({ "compatible": false, "reason": unserved.join("; ") }),
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
        "byoc": byoc,
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
    for b in r["byoc"].as_array().into_iter().flatten() {
        if b["ok"] == true {
            out += &format!(
                "  byoc/{} (from /process/token): available capacity {}, price {} wei per second, balance {}, ticket params {}\n",
                s(&b["capability"]),
                b["available_capacity"],
                b["wei_per_second"],
                b["balance"],
                if b["ticket_params"] == true { "present" } else { "absent" },
            );
        } else {
            out += &format!("  byoc/{} (from /process/token): {}\n", s(&b["capability"]), s(&b["error"]));
        }
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
