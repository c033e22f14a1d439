#!/usr/bin/env bash
# `make bench`: release build, then the benchmark (it starts its own Redis and
# services). The binary is run directly: `cargo run -p` would resolve features
# for one package and rebuild what the workspace build just built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-redis.sh
cargo build --release --workspace --bins
"${CARGO_TARGET_DIR:-target}/release/lobby-bench"
