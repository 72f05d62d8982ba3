//! Which network a job subcommand talks to: the real one described by the network flags, or,
//! when none of `--orchestrator`, `--signer`, `--discovery` and `--token` is given, the
//! embedded local network (gateway-testkit), so every sample job works out of the box.
//!
//! Signer headers and tokens usually carry credentials: they are never printed, not in
//! `Debug`, not in errors (a malformed header is reported by its position, not its text).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use gateway_actors::tls::{CaRoots, OrchestratorTrust, PinStore, Repin};
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
    /// How orchestrator certificates are checked. pinned (default): pin each host:port's
    /// certificate and ETH identity; a new certificate (orchestrators make one at every start)
    /// is accepted, with a warning, once the orchestrator names the pinned ETH address and
    /// ticket recipient, and refused otherwise. strict: refuse any certificate change. ca:
    /// verify against the system roots and --orchestrator-ca. insecure: accept any certificate.
    #[arg(long, value_enum, value_name = "MODE")]
    pub orchestrator_tls: Option<TlsMode>,
    /// Same as --orchestrator-tls insecure (go-livepeer's behaviour).
    #[arg(long)]
    pub insecure: bool,
    /// Keep orchestrator pins (certificate, ETH address, ticket recipient) in this JSON file
    /// across runs, for pinned and strict (ignored for the embedded network, whose certificates
    /// and ports change every run).
    #[arg(long, value_name = "FILE")]
    pub pin_store: Option<PathBuf>,
    /// A PEM file of root certificates to trust for orchestrators besides the system roots,
    /// with --orchestrator-tls ca (repeatable).
    #[arg(long = "orchestrator-ca", value_name = "PEM", action = ArgAction::Append)]
    pub orchestrator_ca: Vec<PathBuf>,
}

/// `--orchestrator-tls` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TlsMode {
    /// Pin certificate and ETH identity; re-pin, with a warning, a new certificate that names
    /// the pinned identity.
    #[default]
    Pinned,
    /// Pin the certificate; refuse any change.
    Strict,
    /// Verify the certificate chain against certificate authorities.
    Ca,
    /// Accept any certificate.
    Insecure,
}

impl std::fmt::Debug for NetworkArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkArgs")
            .field("orchestrators", &self.orchestrators)
            .field("signer", &self.signer)
            .field("signer_headers", &format!("<{} hidden>", self.signer_headers.len()))
            .field("discovery", &self.discovery)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("orchestrator_tls", &self.orchestrator_tls)
            .field("insecure", &self.insecure)
            .field("pin_store", &self.pin_store)
            .field("orchestrator_ca", &self.orchestrator_ca)
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
        let orchestrators = split_orchestrator_list(&self.orchestrators);
        // A malformed address is a usage error, found before any network work.
        for address in &orchestrators {
            if let Err(why) = gateway_actors::grpc::OrchestratorTarget::parse(address) {
                return Err(UsageError(format!(
                    "--orchestrator {}: {why}",
                    gateway_core::error::redact_url(address)
                )));
            }
        }
        Ok(NetworkSettings {
            orchestrators,
            signer: self.signer.clone(),
            signer_headers: headers,
            discovery: self.discovery.clone(),
            ..Default::default()
        })
    }

    /// The `--orchestrator-tls` mode, `--insecure` folded in.
    fn tls_mode(&self) -> Result<TlsMode, UsageError> {
        let mode = match (self.insecure, self.orchestrator_tls) {
            (true, None | Some(TlsMode::Insecure)) => TlsMode::Insecure,
            (true, Some(other)) => {
                return Err(UsageError(format!(
                    "--insecure contradicts --orchestrator-tls {}",
                    other.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
                )))
            }
            (false, mode) => mode.unwrap_or_default(),
        };
        if self.pin_store.is_some() && !matches!(mode, TlsMode::Pinned | TlsMode::Strict) {
            return Err(UsageError("--pin-store needs --orchestrator-tls pinned or strict".into()));
        }
        if !self.orchestrator_ca.is_empty() && mode != TlsMode::Ca {
            return Err(UsageError("--orchestrator-ca needs --orchestrator-tls ca".into()));
        }
        Ok(mode)
    }

    /// The trust policy the flags describe. `embedded`: the embedded network, whose certificates
    /// change every run, so no pin file.
    fn trust(&self, embedded: bool) -> anyhow::Result<OrchestratorTrust> {
        let pins = || -> anyhow::Result<PinStore> {
            let pins = match &self.pin_store {
                Some(path) if !embedded => PinStore::persistent(path)?,
                _ => PinStore::in_memory(),
            };
            pins.on_repin(repin_notice());
            Ok(pins)
        };
        Ok(match self.tls_mode()? {
            TlsMode::Pinned => OrchestratorTrust::Pinned(pins()?),
            TlsMode::Strict => OrchestratorTrust::Strict(pins()?),
            TlsMode::Ca => {
                let mut roots = CaRoots::system();
                for path in &self.orchestrator_ca {
                    let bad = |e: &dyn std::fmt::Display| {
                        UsageError(format!("--orchestrator-ca {}: {e}", path.display()))
                    };
                    let pem = std::fs::read(path).map_err(|e| bad(&e))?;
                    roots = roots.with_pem(&pem).map_err(|e| bad(&e))?;
                }
                OrchestratorTrust::certificate_authority(roots)?
            }
            TlsMode::Insecure => {
                if !embedded {
                    eprintln!(
                        "warning: --orchestrator-tls insecure: orchestrator certificates are not checked; anyone on the path can read and alter jobs and name another ticket recipient"
                    );
                }
                OrchestratorTrust::Insecure
            }
        })
    }
}

/// Prints each re-pin once per orchestrator on stderr (the default log filter silences the
/// library's own log line, so the user sees this one).
fn repin_notice() -> impl Fn(&Repin) + Send + Sync + 'static {
    let told = std::sync::Mutex::new(std::collections::HashSet::new());
    move |repin: &Repin| {
        if told.lock().unwrap_or_else(|e| e.into_inner()).insert(repin.origin.clone()) {
            eprintln!("warning: {repin} (--orchestrator-tls strict)");
        }
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
            let mut config =
                GatewayConfig { network: settings, trust: args.trust(false)?, ..Default::default() };
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
        let mut config = GatewayConfig { network, trust: args.trust(true)?, ..Default::default() };
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
    fn orchestrator_tls_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            network: NetworkArgs,
        }
        let parse = |args: &[&str]| {
            Cmd::try_parse_from(std::iter::once("cmd").chain(args.iter().copied())).map(|c| c.network)
        };
        let mode = |args: &[&str]| parse(args).unwrap().tls_mode();
        assert_eq!(mode(&[]).unwrap(), TlsMode::Pinned);
        assert_eq!(mode(&["--orchestrator-tls", "strict"]).unwrap(), TlsMode::Strict);
        assert_eq!(mode(&["--orchestrator-tls", "ca"]).unwrap(), TlsMode::Ca);
        assert_eq!(mode(&["--insecure"]).unwrap(), TlsMode::Insecure);
        assert_eq!(mode(&["--insecure", "--orchestrator-tls", "insecure"]).unwrap(), TlsMode::Insecure);
        assert!(parse(&["--orchestrator-tls", "maybe"]).is_err());
        let e = mode(&["--insecure", "--orchestrator-tls", "strict"]).unwrap_err();
        assert!(e.to_string().contains("contradicts --orchestrator-tls strict"), "{e}");
        assert!(mode(&["--orchestrator-tls", "ca", "--pin-store", "p.json"]).is_err());
        assert!(mode(&["--insecure", "--pin-store", "p.json"]).is_err());
        assert!(mode(&["--orchestrator-tls", "strict", "--pin-store", "p.json"]).is_ok());
        assert!(mode(&["--orchestrator-ca", "ca.pem"]).is_err());

        let trust = |args: &[&str]| parse(args).unwrap().trust(true).unwrap();
        assert!(matches!(trust(&[]), OrchestratorTrust::Pinned(_)));
        assert!(matches!(trust(&["--orchestrator-tls", "strict"]), OrchestratorTrust::Strict(_)));
        assert!(matches!(trust(&["--insecure"]), OrchestratorTrust::Insecure));
        let missing =
            parse(&["--orchestrator-tls", "ca", "--orchestrator-ca", "/nonexistent/ca.pem"]).unwrap();
        let e = missing.trust(false).unwrap_err();
        assert!(e.is::<UsageError>() && e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn headers_need_a_signer() {
        let args = NetworkArgs { signer_headers: vec!["A: b".into()], ..Default::default() };
        assert!(args.settings().unwrap_err().to_string().contains("needs --signer"));
    }
}
