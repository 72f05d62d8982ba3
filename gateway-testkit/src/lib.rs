//! gateway-testkit: a local Livepeer network (trickle server, orchestrator, remote signer,
//! workers, fault injection) on real sockets, for tests, benchmarks and the demo.
