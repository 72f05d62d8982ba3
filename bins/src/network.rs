//! Which network a job subcommand talks to: the real one described by the network flags, or,
//! when none of `--orchestrator`, `--signer`, `--discovery` and `--token` is given, the
//! embedded local network (gateway-testkit), so every sample job works out of the box.
//!
//! Signer headers and tokens usually carry credentials: they are never printed, not in
//! `Debug`, not in errors (a malformed header is reported by its position, not its text).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use gateway_actors::tls::{OrchestratorTrust, PinStore};
use gateway_actors::{Gateway, GatewayConfig};
use gateway_core::token::{split_orchestrator_list, NetworkSettings};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

use crate::cli::{self, UsageError};

/// The network flags every job subcommand takes.
#[derive(Clone, Default, Args)]
#[command(next_help_heading = "Network (none given: the embedded local network)")]
pub struct NetworkArgs {
    /// Orchestrator to use (host:port or URL); repeatable and comma-delimited. Skips discovery.
    #[arg(long = "orchestrator", value_name = "ADDR", action = ArgAction::Append, value_delimiter = ',')]
    pub orchestrators: Vec<String>,
    /// Remote signer base URL (pays for jobs; also discovers orchestrators). Without one, jobs
    /// run offchain.
    #[arg(long, value_name = "URL")]
    pub signer: Option<String>,
    /// Header sent with every signer call, as NAME:VALUE (repeatable). Never printed.
    #[arg(long = "signer-header", value_name = "K:V", action = ArgAction::Append)]
    pub signer_headers: Vec<String>,
    /// Discovery endpoint URL returning the orchestrators to try.
    #[arg(long, value_name = "URL")]
    pub discovery: Option<String>,
    /// Gateway token (base64 JSON with orchestrators, signer, discovery and headers); its fields
    /// win over the flags.
    #[arg(long, value_name = "BASE64")]
    pub token: Option<String>,
    /// Accept any orchestrator certificate instead of pinning the first one seen per host:port.
    #[arg(long, conflicts_with = "pin_store")]
    pub insecure: bool,
    /// Keep orchestrator certificate pins in this JSON file across runs (ignored for the
    /// embedded network, whose certificates and ports change every run).
    #[arg(long, value_name = "FILE")]
    pub pin_store: Option<PathBuf>,
}

impl std::fmt::Debug for NetworkArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkArgs")
            .field("orchestrators", &self.orchestrators)
            .field("signer", &self.signer)
            .field("signer_headers", &format!("<{} hidden>", self.signer_headers.len()))
            .field("discovery", &self.discovery)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("insecure", &self.insecure)
            .field("pin_store", &self.pin_store)
            .finish()
    }
}

impl NetworkArgs {
    /// Whether any flag names a real network.
    pub fn names_a_network(&self) -> bool {
        !self.orchestrators.is_empty()
            || self.signer.is_some()
            || self.discovery.is_some()
            || self.token.is_some()
    }

    /// The settings the flags describe (token merged in by [`Network::connect`]).
    fn settings(&self) -> Result<NetworkSettings, UsageError> {
        let mut headers = BTreeMap::new();
        for (i, raw) in self.signer_headers.iter().enumerate() {
            let (name, value) = parse_header(raw).ok_or_else(|| {
                UsageError(format!(
                    "--signer-header number {} is not NAME:VALUE with a valid header name (its text is not shown)",
                    i + 1
                ))
            })?;
            headers.insert(name, value);
        }
        if !headers.is_empty() && self.signer.is_none() && self.token.is_none() {
            return Err(UsageError("--signer-header needs --signer (or a --token with a signer)".into()));
        }
        Ok(NetworkSettings {
            orchestrators: split_orchestrator_list(&self.orchestrators),
            signer: self.signer.clone(),
            signer_headers: headers,
            discovery: self.discovery.clone(),
            ..Default::default()
        })
    }

    fn trust(&self) -> anyhow::Result<OrchestratorTrust> {
        Ok(if self.insecure {
            OrchestratorTrust::Insecure
        } else if let Some(path) = &self.pin_store {
            OrchestratorTrust::Pinned(PinStore::persistent(path)?)
        } else {
            OrchestratorTrust::default()
        })
    }
}

/// `Name: value` → (`Name`, `value`), both trimmed; `None` if there is no colon or the name is
/// not an HTTP token.
fn parse_header(raw: &str) -> Option<(String, String)> {
    let (name, value) = raw.split_once(':')?;
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    valid_name.then(|| (name.to_owned(), value.trim().to_owned()))
}

/// Tweaks applied only on the embedded network, where nothing costs anything and a run should
/// show results within seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedTweaks {
    /// LV2V payment interval (the real default is a few seconds).
    pub lv2v_payment_interval: Option<Duration>,
}

/// A started gateway, and the embedded network it runs against, if any.
pub struct Network {
    /// The gateway.
    pub gateway: Gateway,
    local: Option<LocalNetwork>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("embedded", &self.local.is_some()).finish()
    }
}

impl Network {
    /// Starts a gateway on the network the flags name, or on a freshly started embedded network
    /// when they name none (a one-line note on stderr says so).
    pub async fn connect(args: &NetworkArgs, tweaks: EmbeddedTweaks) -> anyhow::Result<Network> {
        let settings = args.settings()?;
        if args.names_a_network() {
            let mut config = GatewayConfig { network: settings, trust: args.trust()?, ..Default::default() };
            if let Some(token) = &args.token {
                config = config.with_token(token).map_err(|e| UsageError(format!("--token: {e}")))?;
            }
            return Ok(Network { gateway: Gateway::start(config)?, local: None });
        }
        let local = cli::interruptible(LocalNetwork::start(NetworkConfig::default())).await?;
        eprintln!(
            "note: no --orchestrator/--signer/--discovery/--token given: using the embedded local network (orchestrator {}, signer {})",
            local.orchestrator_urls()[0],
            local.signer_url()
        );
        // Only the signer, as with a hosted signer: orchestrators are discovered through it.
        let network = NetworkSettings { signer: Some(local.signer_url()), ..Default::default() };
        let trust = if args.insecure { OrchestratorTrust::Insecure } else { OrchestratorTrust::default() };
        let mut config = GatewayConfig { network, trust, ..Default::default() };
        if let Some(interval) = tweaks.lv2v_payment_interval {
            config.lv2v_payment_interval = interval;
        }
        Ok(Network { gateway: Gateway::start(config)?, local: Some(local) })
    }

    /// Stops the gateway and the embedded network.
    pub async fn shutdown(self) {
        self.gateway.shutdown();
        if let Some(local) = self.local {
            cli::cleanup("stopping the embedded network", async {
                local.shutdown().await;
                Ok::<_, std::convert::Infallible>(())
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_stay_hidden() {
        assert_eq!(
            parse_header("Authorization: Bearer x:y"),
            Some(("Authorization".into(), "Bearer x:y".into()))
        );
        assert_eq!(parse_header("no colon"), None);
        assert_eq!(parse_header("bad name: v"), None);
        let args = NetworkArgs {
            signer: Some("http://s".into()),
            signer_headers: vec!["Authorization: Bearer hush-hush".into()],
            token: Some("hush-token".into()),
            ..Default::default()
        };
        let shown = format!("{args:?}");
        assert!(!shown.contains("hush"), "{shown}");
        assert_eq!(args.settings().unwrap().signer_headers["Authorization"], "Bearer hush-hush");
        let bad = NetworkArgs { signer_headers: vec!["hush-hush".into()], ..args };
        let e = bad.settings().unwrap_err().to_string();
        assert!(!e.contains("hush"), "{e}");
    }

    #[test]
    fn any_network_flag_means_the_real_network() {
        assert!(!NetworkArgs::default().names_a_network());
        assert!(!NetworkArgs { insecure: true, ..Default::default() }.names_a_network());
        let orch = NetworkArgs { orchestrators: vec!["a:1".into()], ..Default::default() };
        assert!(orch.names_a_network());
        assert!(NetworkArgs { token: Some("t".into()), ..Default::default() }.names_a_network());
    }

    #[test]
    fn headers_need_a_signer() {
        let args = NetworkArgs { signer_headers: vec!["A: b".into()], ..Default::default() };
        assert!(args.settings().unwrap_err().to_string().contains("needs --signer"));
    }
}
