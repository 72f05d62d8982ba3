//! Smoke tests of the throughput runner. `throughput --quick --scenario 1 --no-python` must
//! start its server child, publish, and print the scenario-1 table with numbers in every cell
//! (speed itself is never asserted: this machine is shared and noisy).

use std::process::Command;

#[test]
fn quick_scenario_1_prints_a_table_of_numbers() {
    let out = Command::new(env!("CARGO_BIN_EXE_throughput"))
        .args(["--quick", "--scenario", "1", "--no-python"])
        .output()
        .expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed: {stderr}\n{stdout}");
    assert!(stdout.contains("machine:"), "{stdout}");
    assert!(stdout.contains("## Scenario 1"), "{stdout}");

    let rows: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("| 1 MB") || l.starts_with("| 10 KB")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        // Columns: segment | loopback limit | publisher -> bare hyper, % | publisher -> trickle
        // server | % of limit | Python | Rust/Python | failed.
        // Limit and publisher -> trickle server: "<MB/s> MB/s, <seg/s> seg/s", both positive.
        for cell in [cells[1], cells[3]] {
            let numbers: Vec<f64> = cell.split([' ', ',']).filter_map(|w| w.parse::<f64>().ok()).collect();
            assert_eq!(numbers.len(), 2, "{cell:?} in {row}");
            assert!(numbers[1] > 0.0, "no segment moved: {row}");
        }
        // Publisher -> bare hyper: "<MB/s> MB/s, <percent> %" with a positive rate.
        let drained: Vec<f64> = cells[2].split([' ', ',']).filter_map(|w| w.parse::<f64>().ok()).collect();
        assert_eq!(drained.len(), 2, "{row}");
        assert!(drained[0] > 0.0, "nothing reached the bare server: {row}");
        assert!(cells[4].trim_end_matches(" %").parse::<f64>().is_ok(), "{row}");
        // Python disabled: the Python cells say so instead of inventing numbers.
        assert_eq!(cells[5], "n/a", "{row}");
        assert!(cells[7].starts_with("0 /"), "segments failed: {row}");
    }
}

/// Scenario 7 runs both paths (the SDK alone, and a `serve` node started from the
/// `livepeer-gateway` binary built beside the runner) once per round, and every stream of each
/// moves media through the orchestrator's worker and back.
#[test]
fn quick_scenario_7_runs_streams_through_the_sdk_and_through_a_serve_node() {
    let out = Command::new(env!("CARGO_BIN_EXE_throughput"))
        .args(["--quick", "--scenario", "7", "--no-python", "--rounds", "2"])
        .output()
        .expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed: {stderr}\n{stdout}");
    assert!(stdout.contains("## Scenario 7"), "{stdout}");
    assert!(!stdout.contains("failed:"), "{stdout}\n{stderr}");
    for path in ["SDK alone", "through serve"] {
        let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&format!("| 5 | {path} |"))).collect();
        assert_eq!(rows.len(), 2, "a row for {path} per round: {stdout}");
        for row in rows {
            check_row(row);
        }
    }
    let cost = stdout.lines().filter(|l| l.starts_with("| 5 | ") && l.split('|').count() == 7);
    assert_eq!(cost.count(), 2, "a comparison row per round: {stdout}");
    assert!(stdout.contains("- 5 streams, 2 rounds: node / SDK process CPU median "), "{stdout}");
}

/// One run's row of scenario 7: every stream started, CPU and p99 measured, media back.
fn check_row(row: &str) {
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    // streams | path | started / start s | gateway cores | client cores | orchestrator
    // cores | p50 | p99 | delivered / failed segs / sub errors.
    assert!(cells[2].starts_with("5 / "), "not every stream started: {row}");
    let gateway: f64 = cells[3].parse().unwrap_or_else(|_| panic!("no gateway CPU: {row}"));
    assert!(gateway > 0.0, "{row}");
    assert!(cells[7].parse::<f64>().is_ok(), "no p99: {row}");
    let delivered: f64 = cells[8].split(' ').next().unwrap().parse().unwrap();
    assert!(delivered > 90.0, "media did not come back: {row}");
    assert!(cells[8].ends_with("/ 0 / 0"), "segments failed or subscribers stopped: {row}");
}
