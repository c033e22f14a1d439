#!/usr/bin/env bash
# `make test`: installs what is missing, builds every binary, runs every test.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

bash scripts/ensure-redis.sh
LOBBY_PYTHON="$(bash scripts/ensure-venv.sh)"
export LOBBY_PYTHON
if livekit_bin="$(bash scripts/ensure-livekit.sh)"; then
  # Installed: the LiveKit tests must run, never skip.
  export LOBBY_LIVEKIT_BIN="$livekit_bin" LOBBY_REQUIRE_LIVEKIT=1
else
  echo "*** livekit-server is unavailable: the LiveKit end-to-end tests will SKIP ***" >&2
fi

bash deploy/check.sh
bash scripts/gen-python-sdk.sh --check
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Examples too: the crash tests kill the Rust example worker with -9.
cargo build --workspace --bins --examples
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=1
# The integration tests again with every service in one lobby-server process
# calling the others in-process: both deployment shapes must pass.
echo "=== integration tests, co-located (LOBBY_TEST_TOPOLOGY=colocated) ==="
LOBBY_TEST_TOPOLOGY=colocated cargo test -p lobby-tests --tests --no-fail-fast 2>&1 | tee -a "$log" || status=1
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"

