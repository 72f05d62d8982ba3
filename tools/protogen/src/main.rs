//! Regenerates the protobuf and gRPC code of `gateway-core` from `proto/lp_rpc.proto`.
//!
//! Uses `protox` (a protobuf compiler written in Rust), so no `protoc` binary is needed.
//! Run from the repository root: `cargo run --manifest-path tools/protogen/Cargo.toml`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let proto_dir = root.join("proto");
    let out_dir = root.join("gateway-core/src/lp_rpc");
    let fds = protox::compile([proto_dir.join("lp_rpc.proto")], [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .out_dir(&out_dir)
        .compile_fds(fds)?;
    println!("wrote {}", out_dir.join("net.rs").display());
    Ok(())
}
