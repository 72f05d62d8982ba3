//! Scenarios 4 and 5: orchestrator selection, and the HTTP client of the segment writer.

use std::time::Duration;

use benches::report::{num, table};
use benches::scenarios::clients::{self, Client};
use benches::scenarios::select;
use benches::servers::ServerAddrs;

use super::budget;

pub(crate) async fn scenario_select(quick: bool) -> anyhow::Result<String> {
    let total = if quick { 20 } else { 100 };
    let results = select::run_selection(total).await?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                format!("{} ({} slow, {} dead)", r.orchestrators, r.slow, r.dead),
                r.batch_size.to_string(),
                r.pass.clone(),
                format!("{:.0}", r.ms),
                num(r.chosen_rpc_ms, 1),
                r.candidates.to_string(),
                r.rejections.to_string(),
            ]
        })
        .collect();
    Ok(format!(
        "## Scenario 4: orchestrator selection (per-call timeout {} ms, slow ones answer after 3x that)\n\n{}",
        select::PER_CALL.as_millis(),
        table(&["orchestrators", "calls in flight", "pass", "time to choice ms", "chosen one's RPC ms", "candidates", "rejected"], &rows)
    ))
}

pub(crate) fn scenario_clients(addrs: &ServerAddrs, quick: bool) -> anyhow::Result<String> {
    let chunks = if quick { 10 } else { 20 };
    let mut rows = Vec::new();
    for client in [Client::Reqwest, Client::Awc] {
        let a = clients::arrivals(client, addrs, chunks, Duration::from_millis(50))?;
        let s = clients::segments(client, addrs, budget(quick, 5_000, 3.0))?;
        rows.push(vec![
            client.name().to_owned(),
            format!("{:.1}", a.first_ms),
            format!("{:.1}", a.p50_ms),
            format!("{:.1}", a.max_ms),
            format!("{:.0}", s.segments_per_s()),
            format!("{:.0}", s.mb_per_s()),
        ]);
    }
    Ok(format!(
        "## Scenario 5: HTTP client for the segment writer (HTTP/1.1 plaintext)\n\n{chunks} chunks of 1 KB every 50 ms: delay until the server reads each chunk; then back-to-back 1 MB segments of 64 KiB chunks.\n\n{}",
        table(&["client", "first chunk ms", "p50 ms", "max ms", "1 MB seg/s", "MB/s"], &rows)
    ))
}
