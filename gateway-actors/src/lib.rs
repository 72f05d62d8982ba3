//! gateway-actors: what the gateway does, as actix actors (selector, signer client, payments,
//! trickle writer and reader, encoder, supervisor) behind a `Send + Sync` `Gateway` handle.
