//! The remote signer double. (being written)
