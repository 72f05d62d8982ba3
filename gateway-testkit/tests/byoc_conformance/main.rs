//! The BYOC orchestrator double held to go-livepeer (PR #3869 by default, master where a test
//! says so), over real HTTP against [`LocalNetwork`]: one test per behaviour, each asserting go's
//! exact status and body text. Where a behaviour is a go quirk (capacity leaked or freed twice,
//! the low-balance warning never reset, a payment credited before the request is refused), the
//! test holds the quirk. `CONFORMANCE.md` ("BYOC orchestrator (double)") maps each test to go's code.
//!
//! [`LocalNetwork`]: livepeer_gateway_testkit::network::LocalNetwork

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod payments;
mod pricing;
mod python_sdk;
mod requests;
mod streams;
mod training_python;
mod versions;
