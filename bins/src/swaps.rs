//! What the live-stream commands (`write-frames`, `byoc-write-frames`, `subscribe-events`)
//! share about orchestrator swaps: the options, a line per swap as it happens, and the summary.

use std::time::Duration;

use clap::Args;
use gateway_actors::live::{LiveStream, LiveStreamStatus, StreamEnd, SwapConfig, SwapRecord};
use gateway_actors::payments::PaymentStats;

use crate::cli::Console;

/// Options of a stream that moves to another orchestrator when its own fails.
#[derive(Debug, Clone, Args)]
pub struct SwapArgs {
    /// End the stream when its orchestrator fails instead of moving it to another one.
    #[arg(long)]
    pub no_swap: bool,
    /// Publish segments failing in a row that count as a failed orchestrator.
    #[arg(long, default_value_t = gateway_actors::live::DEFAULT_FAILED_SEGMENTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub swap_after_failed_segments: u32,
}

impl SwapArgs {
    /// The library's settings.
    pub fn config(&self) -> SwapConfig {
        SwapConfig {
            enabled: !self.no_swap,
            failed_segments: self.swap_after_failed_segments,
            ..Default::default()
        }
    }
}

/// Prints a line for each swap of `stream` as it happens (the summary has its recovery
/// times). Abort the task when the stream is done.
pub fn print_swaps(stream: &LiveStream, console: Console) -> tokio::task::JoinHandle<()> {
    let mut status = stream.watch_status();
    tokio::spawn(async move {
        let mut printed = 0;
        while status.changed().await.is_ok() {
            let swaps = status.borrow_and_update().swaps.clone();
            for (i, swap) in swaps.iter().enumerate().skip(printed) {
                console.line(format!(
                    "swap {}: {} -> {} ({}); restarted in {} ms",
                    i + 1,
                    swap.from,
                    swap.to,
                    swap.reason,
                    swap.restarted_after.as_millis()
                ));
            }
            printed = swaps.len();
        }
    })
}

/// One swap in a line.
pub fn describe(swap: &SwapRecord) -> String {
    let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
    format!(
        "{} -> {} ({}); restarted in {}, first bytes taken after {}, first segment complete after {}, first output after {}, {} frames dropped, {} bytes drained",
        swap.from,
        swap.to,
        swap.reason,
        ms(Some(swap.restarted_after)),
        ms(swap.first_bytes_after),
        ms(swap.first_segment_after),
        ms(swap.first_output_after),
        swap.frames_dropped,
        swap.bytes_drained
    )
}

/// The summary lines of a live stream: its swaps, how it ended when that was not a stop, and
/// its payments, per orchestrator when it ran on more than one.
pub fn print_summary(console: Console, status: &LiveStreamStatus) {
    for (i, swap) in status.swaps.iter().enumerate() {
        console.line(format!("swap {}: {}", i + 1, describe(swap)));
    }
    if let Some(end) = status.ended.as_ref().filter(|e| !matches!(e, StreamEnd::Stopped)) {
        console.line(format!("stream ended: {end}"));
    }
    let total = total_payments(status);
    console.line(format!(
        "payments: {} sent, {} skipped, {} failed{}",
        total.payments_sent,
        total.cycles_skipped,
        total.failures,
        status
            .payments
            .last()
            .and_then(|(_, p)| p.stopped.as_ref())
            .map(|s| format!(" (stopped: {s})"))
            .unwrap_or_default()
    ));
    if status.payments.len() > 1 {
        for (orchestrator, p) in &status.payments {
            console.line(format!("  {orchestrator}: {} sent, {} failed", p.payments_sent, p.failures));
        }
    }
}

/// The payments of every orchestrator the stream ran on, added up.
pub fn total_payments(status: &LiveStreamStatus) -> PaymentStats {
    let mut total = PaymentStats::default();
    for (_, p) in &status.payments {
        total.payments_sent += p.payments_sent;
        total.cycles_skipped += p.cycles_skipped;
        total.failures += p.failures;
    }
    total
}

/// Why the stream's own end falls short of the run, if it does.
pub fn shortfall(status: &LiveStreamStatus) -> Option<String> {
    match &status.ended {
        Some(StreamEnd::Stopped) | None => None,
        Some(end) => Some(format!("the stream ended early: {end}")),
    }
}
