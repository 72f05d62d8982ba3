//! The whole soak with orchestrator deaths, short: a few live streams for 20 s on three
//! orchestrators, one of which dies and comes back. It fails if any session's frames, bytes or
//! payments do not add up across its swaps, if a stream ends by itself, or if an orchestrator
//! runs anything afterwards.

use benches::scenarios::soak::swaps::{run, SwapSoakConfig};

#[test]
fn a_short_soak_with_one_orchestrator_death_keeps_every_account_exact() {
    let _ = gateway_actors::tls::provider();
    let config = SwapSoakConfig { streams: 6, seconds: 20.0, seed: 7, orchestrators: 3, deaths: 1 };
    let report = run(config).expect("the soak runs");
    let summary = report.markdown();
    println!("{summary}");
    assert!(report.passed(), "{summary}");
    assert_eq!(report.deaths.len(), 1, "{summary}");
    assert!(report.sessions.len() >= 6, "{summary}");
    // Streams swapped and the ledgers saw payments, or the checks above prove nothing (with
    // six streams on three orchestrators, the one that dies runs some of them).
    assert!(!report.swaps().is_empty(), "{summary}");
    assert!(report.books.iter().map(|b| b.ledger_recurring()).sum::<u64>() > 0, "{summary}");
    assert!(report.books.iter().map(|b| b.ledger_starts()).sum::<u64>() >= 6, "{summary}");
}
