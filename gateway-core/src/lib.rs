//! gateway-core: what the Livepeer gateway protocol *is*.
//!
//! Wire types, protocol constants, parsers and builders for talking to orchestrators, remote
//! signers and trickle servers. It has no sockets, no timers and no runtime: everything here can
//! be checked by a unit test without a network. The actors that use it live in `gateway-actors`.
