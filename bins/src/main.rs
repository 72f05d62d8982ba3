//! `livepeer-gateway`: the command line of livepeer-gateway-rs.
fn main() {}
