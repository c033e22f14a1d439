//! Generates the gRPC types of every Lobby service from `proto/*.proto` with
//! protox, so the build needs no system `protoc`.

use std::{env, fs, path::PathBuf};

const PROTOS: [&str; 6] = [
    "common.proto",
    "auth.proto",
    "session.proto",
    "rooms.proto",
    "artifacts.proto",
    "workers.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protox prints no rerun-if-changed lines of its own.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    // `file_descriptor_set_path()` is ignored by `compile_fds`, so the set that
    // reflection serves is written here.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("lobby_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
