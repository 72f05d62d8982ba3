//! Live runners, both sides.
//!
//! A gateway finds runners through orchestrators' `GET /discovery` ([`discovery`]), reserves
//! and pays for a session on a persistent runner ([`sessions`]) or calls a single-shot runner
//! once ([`calls`]), paying the orchestrator's 402 challenge (`paid.rs`) and reading the app's
//! answer as it streams ([`answer`]). Scope jobs start through either kind of Scope runner
//! ([`scope`]).
//!
//! A runner process registers with an orchestrator and keeps itself listed by heartbeat
//! ([`registration`]), hears of its sessions on its O2R channel (`o2r.rs`), and its app makes
//! the session's callbacks: channels, proxy, stop ([`session_control`]).
//!
//! The protocol's types and rules are in `livepeer_gateway_core::runners`.

pub mod answer;
pub mod calls;
pub mod discovery;
mod o2r;
mod paid;
pub mod registration;
pub mod scope;
pub mod session_control;
pub mod sessions;

pub use answer::{AppAnswer, RunnerAnswer};
pub use calls::RunnerCall;
pub use discovery::{RunnerCandidate, RunnerDiscovery};
pub(crate) use paid::refresh_payment_params;
pub use registration::{RegistrationStats, RunnerError, RunnerRegistration};
pub use scope::ScopeJob;
pub use session_control::SessionControl;
pub use sessions::RunnerSession;
