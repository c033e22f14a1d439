#!/usr/bin/env bash
# `make run`: a private Redis, livekit-server --dev, and every Lobby service
# (lobby-dev) with the gateway on 127.0.0.1:8080. Ctrl-C stops all of it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

redis_port="${LOBBY_DEV_REDIS_PORT:-6390}"
run_dir="$repo/.run"
mkdir -p "$run_dir/redis"

bash scripts/ensure-redis.sh
echo "lobby: building (first run takes a few minutes)" >&2
cargo build -p lobby-dev

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "lobby: stopped" >&2
}
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run_dir/redis" \
  --appendonly yes --save "" >"$run_dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

livekit_mode="token_only"
if livekit_bin="$(bash scripts/ensure-livekit.sh)"; then
  "$livekit_bin" --dev --bind 127.0.0.1 >"$run_dir/livekit.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/7880) 2>/dev/null && { livekit_mode="server"; break; }
    sleep 0.1
  done
fi
if [ "$livekit_mode" = "token_only" ]; then
  echo "lobby: *** LiveKit server unavailable: running in TOKEN-ONLY mode (tokens are minted, no room is created) ***" >&2
else
  echo "lobby: livekit-server --dev on ws://127.0.0.1:7880 (logs: .run/livekit.log)" >&2
fi

admin_token="${LOBBY_ADMIN_TOKEN:-dev-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
worker_token="${LOBBY_WORKER_TOKEN:-dev-worker-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
echo "lobby: GPU workers attach to http://127.0.0.1:50053 with LOBBY_WORKER_TOKEN=$worker_token (e.g. cargo run -p lobby-worker --example accepting_worker)" >&2
echo "lobby: admin API token: $admin_token  (curl -H 'Authorization: Bearer $admin_token' http://127.0.0.1:8080/admin/v1/agents)" >&2

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
LOBBY_REDIS_URL="redis://127.0.0.1:$redis_port" \
LOBBY_LIVEKIT_MODE="$livekit_mode" \
LOBBY_ADMIN_TOKEN="$admin_token" \
LOBBY_WORKER_TOKEN="$worker_token" \
LOBBY_ARTIFACTS_DIR="$run_dir/artifacts" \
  "$target_dir/debug/lobby-dev" &
pids+=($!)
wait "${pids[-1]}"
