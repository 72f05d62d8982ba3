//! `livepeer-gateway local-network`: runs the local Livepeer network until Ctrl-C (exit code 130).

use std::net::SocketAddr;

use clap::Args;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

/// Options of `local-network`.
#[derive(Debug, Args)]
pub struct LocalNetworkArgs {
    /// Address of the first orchestrator (HTTP, gRPC and trickle on one port).
    #[arg(long, default_value = "127.0.0.1:8935")]
    pub listen: SocketAddr,
    /// Address of the remote signer (also serves discovery and the admin API).
    #[arg(long, default_value = "127.0.0.1:8936")]
    pub signer_listen: SocketAddr,
    /// Number of orchestrators (the others take free ports).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub orchestrators: usize,
    /// Serve plain HTTP instead of TLS with a self-signed certificate.
    #[arg(long)]
    pub plaintext: bool,
    /// Let a POST to a missing trickle channel create it.
    #[arg(long)]
    pub trickle_autocreate: bool,
    /// Print one JSON line with the base URLs once ready (machine-readable).
    #[arg(long)]
    pub json: bool,
    /// Run the orchestrators offchain, as go-livepeer's `-network offchain`: no prices, no ticket
    /// parameters, no payment required, job signatures not checked. Clients without a signer
    /// (the official Python SDK offchain, curl) can then run jobs.
    #[arg(long)]
    pub offchain: bool,
    /// Ticket face value in wei (default 1.2e15, an Arbitrum-like redeem cost × go-livepeer's
    /// txCostMultiplier of 100). Accepts `1200000000000000` or `1.2e15`; a face value below the
    /// EV becomes EV × 100, as in go-livepeer.
    #[arg(long, value_name = "WEI", value_parser = parse_wei)]
    pub ticket_face_value: Option<u128>,
    /// Expected value of one ticket in wei, go-livepeer's `-ticketEV` (default 8e9).
    #[arg(long, value_name = "WEI", value_parser = parse_wei)]
    pub ticket_ev: Option<u128>,
    /// The host the orchestrators name in their URLs instead of the listening address (for a
    /// network listening on 0.0.0.0 and reached by name, as in deploy/compose.yaml).
    #[arg(long, value_name = "HOST")]
    pub public_host: Option<String>,
    /// Serve Scope as an orchestrator with a serverless AI worker does: a `scope` model listed
    /// in `/discovery` at `/scope` (`livepeer-gateway scope` starts jobs on it).
    #[arg(long)]
    pub scope: bool,
}

/// A positive whole number of wei: digits, or a decimal with an exponent (`8e9`, `1.2e15`)
/// that names a whole number exactly.
fn parse_wei(s: &str) -> Result<u128, String> {
    let bad = || format!("{s:?} is not a positive whole number of wei (e.g. 8000000000 or 8e9)");
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<u32>().map_err(|_| bad())?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // The fraction's digits shift into the integer; whatever is left over must be zeros.
    let frac = frac.trim_end_matches('0');
    let shift = exp.checked_sub(u32::try_from(frac.len()).map_err(|_| bad())?).ok_or_else(bad)?;
    let digits: u128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
    let wei = 10u128.checked_pow(shift).and_then(|p| digits.checked_mul(p)).ok_or_else(bad)?;
    if wei == 0 {
        return Err(bad());
    }
    Ok(wei)
}

/// What live runners register with here (a test network's, printed on purpose).
const RUNNER_SECRET: &str = gateway_testkit::orchestrator::LOCAL_RUNNER_SECRET;

/// Starts the network and serves until Ctrl-C.
pub async fn run(args: LocalNetworkArgs) -> anyhow::Result<()> {
    let mut config = NetworkConfig {
        orchestrators: args.orchestrators,
        tls: !args.plaintext,
        listen: args.listen,
        signer_listen: args.signer_listen,
        ..Default::default()
    };
    config.trickle.autocreate = args.trickle_autocreate;
    config.public_host = args.public_host.clone();
    if args.scope {
        config.orchestrator.serve_scope(8);
    }
    config.orchestrator.offchain = args.offchain;
    if let Some(wei) = args.ticket_face_value {
        config.orchestrator.ticket_face_value_wei = wei;
    }
    if let Some(wei) = args.ticket_ev {
        config.orchestrator.ticket_ev_wei = wei;
    }
    let net = LocalNetwork::start(config).await?;
    let urls = net.orchestrator_urls();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "orchestrator": urls[0],
                "orchestrators": urls,
                "signer": net.signer_url(),
                "discovery": net.discovery_url(),
                "trickle": net.trickle_url(),
                "admin": net.admin_url(),
                "runner_secret": RUNNER_SECRET,
            })
        );
    } else {
        println!("local Livepeer network is up (Ctrl-C to stop)");
        for u in &urls {
            println!("  orchestrator  {u}");
        }
        println!("  signer        {}", net.signer_url());
        println!("  discovery     {}", net.discovery_url());
        println!("  trickle       {}", net.trickle_url());
        println!("  admin         {}", net.admin_url());
        println!("  runner secret {RUNNER_SECRET} (live runners register with it)");
    }
    // Serving until Ctrl-C is the normal life of this command; it still exits with 130 like
    // every interrupted command.
    crate::cli::interrupted().await;
    net.shutdown().await;
    Err(crate::cli::Interrupted.into())
}

#[cfg(test)]
mod tests {
    use super::parse_wei;

    #[test]
    fn wei_amounts() {
        assert_eq!(parse_wei("8000000000"), Ok(8_000_000_000));
        assert_eq!(parse_wei("8e9"), Ok(8_000_000_000));
        assert_eq!(parse_wei("1.2e15"), Ok(1_200_000_000_000_000));
        assert_eq!(parse_wei("1.50E+1"), Ok(15));
        for bad in ["", "0", "-1", "1.5", "1.25e1", "e9", "1e", "8 e9", "1e40", "0x10"] {
            assert!(parse_wei(bad).is_err(), "{bad:?}");
        }
    }
}
