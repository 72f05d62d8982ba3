//! `livepeer-gateway byoc-write-text`: streams text lines (from stdin, or `--text`) to a BYOC job
//! one control message each and prints each reply as it comes back, one line per reply.

use clap::{ArgAction, Args};
use tokio::io::AsyncBufReadExt;

use crate::byoc_text_reversal::{exchange, reply_text, with_text_job};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `byoc-write-text`.
#[derive(Debug, Args)]
pub struct WriteTextArgs {
    /// Text to send (repeatable); without it, lines are read from stdin until it ends.
    #[arg(long, action = ArgAction::Append)]
    pub text: Vec<String>,
    /// Registered BYOC capability name.
    #[arg(long, default_value = "text-reversal")]
    pub capability: String,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: WriteTextArgs) -> anyhow::Result<()> {
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let texts = args.text;
    let result = with_text_job(&net, &args.capability, async |control, data| {
        let mut sent = 0u64;
        if texts.is_empty() {
            // Line by line as they arrive, so an interactive user sees each reply at once.
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Some(line) = lines.next_line().await? {
                if line.trim().is_empty() {
                    continue;
                }
                println!("{}", reply_text(&exchange(control, data, &line).await?));
                sent += 1;
            }
        } else {
            for text in &texts {
                println!("{}", reply_text(&exchange(control, data, text).await?));
                sent += 1;
            }
        }
        eprintln!("{sent} line(s) sent and answered");
        Ok(())
    })
    .await;
    net.shutdown().await;
    result
}
