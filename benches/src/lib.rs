//! benches: criterion micro-benchmarks of the hot paths (`cargo bench -p benches`) and the
//! side-by-side throughput runner (`cargo run --release -p benches --bin throughput`), which
//! measures this SDK and the official Python SDK against the same local trickle server.
//!
//! Layout of the runner's library part:
//! - [`sys`]: process measurements (CPU time, peak RSS, fd limit, the shared monotonic clock).
//! - [`servers`]: the server child process (trickle server, bare drain server, arrival clock).
//! - [`python`]: finding and running the Python side (`benches/py/trickle_bench.py`).
//! - [`scenarios`]: the five scenarios, each returning plain result structs.
//! - [`report`]: markdown tables with Rust/Python ratios and the SVG chart.

#![warn(missing_docs)]

pub mod python;
pub mod report;
pub mod scenarios;
pub mod servers;
pub mod sys;
