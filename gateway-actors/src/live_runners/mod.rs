//! Live runners, both sides: a gateway finds runners through orchestrators' `GET /discovery`
//! ([`discovery`]), and a runner process registers with an orchestrator and keeps itself
//! listed by heartbeat ([`registration`]). The protocol's types and rules are in
//! `gateway_core::runners`. A gateway reserves and pays for a session with [`sessions`].

pub mod discovery;
pub mod registration;
pub mod sessions;

pub use discovery::{RunnerCandidate, RunnerDiscovery};
pub use registration::{RegistrationStats, RunnerError, RunnerRegistration};
pub use sessions::{AppAnswer, RunnerSession};
