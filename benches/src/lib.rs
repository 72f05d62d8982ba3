//! benches: criterion micro-benchmarks of the hot paths and, later, the throughput runner.
//! Run with `cargo bench -p benches`.
