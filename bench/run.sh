#!/usr/bin/env bash
# `make bench`: release build, then the benchmark (it starts its own Redis and
# services). The binary is run directly: `cargo run -p` would resolve features
# for one package and rebuild what the workspace build just built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-redis.sh
# The LiveKit rows need the real server; without it they are left out.
if livekit_bin="$(bash scripts/ensure-livekit.sh)"; then
  export LOBBY_LIVEKIT_BIN="$livekit_bin"
fi
cargo build --release --workspace --bins
"${CARGO_TARGET_DIR:-target}/release/lobby-bench"
