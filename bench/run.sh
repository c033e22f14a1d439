#!/usr/bin/env bash
# `make bench`: release build, then the benchmark (it starts its own Redis and services).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-redis.sh
cargo build --release --workspace --bins
cargo run --release -p lobby-bench
