//! Embedding the gateway in an axum service.
//!
//! `GET /reverse?text=…` runs a BYOC `text-reversal` job on the Livepeer network and answers
//! the worker's reply as JSON. The `Gateway` is `Send + Sync + Clone` and runs its actors on a
//! thread of its own, so it is the router's state as it is: no actix setup, one gateway for
//! every request.
//!
//! With `LIVEPEER_TOKEN` set to a gateway token it uses that network and serves on
//! 127.0.0.1:8080 until Ctrl-C. Without, it starts the local network of
//! `livepeer-gateway-testkit`, serves on a free port, calls itself once and exits:
//! `cargo run -p livepeer-gateway-actors --example axum_service`.

// In this workspace the sibling crates keep their short names; in your crate these are simply
// the dependencies `livepeer-gateway-core` and `livepeer-gateway-testkit`.
extern crate gateway_core as livepeer_gateway_core;
extern crate gateway_testkit as livepeer_gateway_testkit;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig};
use livepeer_gateway_core::token::NetworkSettings;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Reverse {
    text: String,
}

/// Any failure of the job is the upstream's: 502 with its message.
fn upstream(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_GATEWAY, e.to_string())
}

async fn reverse(
    State(gateway): State<Gateway>,
    Query(query): Query<Reverse>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let mut request = ByocJobRequest::new("text-reversal");
    request.enable_data_output = true;
    let job = gateway.start_byoc_job(request).await.map_err(upstream)?;
    // Whatever happens to the exchange, the job is stopped (and its payments with it).
    let reply = async {
        let control = job.control().await.map_err(upstream)?;
        control.send(&serde_json::json!({ "text": query.text })).await.map_err(upstream)?;
        let reply = job.data().map_err(upstream)?.next().await.map_err(upstream)?;
        control.close().await;
        reply.ok_or_else(|| upstream("the worker sent no reply"))
    }
    .await;
    job.stop().await.map_err(upstream)?;
    Ok(Json(reply?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("LIVEPEER_TOKEN").ok();
    let (config, local) = match &token {
        Some(token) => (GatewayConfig::default().with_token(token)?, None),
        None => {
            let net = LocalNetwork::start(NetworkConfig::default()).await?;
            let network = NetworkSettings { signer: Some(net.signer_url()), ..Default::default() };
            (GatewayConfig { network, ..Default::default() }, Some(net))
        }
    };
    let gateway = Gateway::start(config)?;
    let app = Router::new().route("/reverse", get(reverse)).with_state(gateway.clone());

    if token.is_some() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
        println!("serving http://127.0.0.1:8080/reverse?text=hello; Ctrl-C stops it");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/reverse?text=hello", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // One call to ourselves over HTTP, with the gateway's client (plain HTTP is fine for it).
    let client = gateway.http().orchestrator(&url)?;
    let answer = client.get(&url).send().await?;
    let (status, body) = (answer.status(), answer.text().await?);
    println!("GET {url} -> {status} {body}");
    server.abort();
    if !status.is_success() {
        return Err(format!("the service answered {status}").into());
    }
    gateway.shutdown();
    if let Some(net) = local {
        net.shutdown().await;
    }
    Ok(())
}
