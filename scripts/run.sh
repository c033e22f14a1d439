#!/usr/bin/env bash
# `make run`: a private Redis, livekit-server --dev, and every Lobby service
# (lobby-dev) with the gateway on 127.0.0.1:8080. Ctrl-C stops all of it
# within a few seconds: each child gets a grace period, then SIGKILL.
#
# Overridable (the tests run a second copy beside yours): LOBBY_RUN_DIR,
# LOBBY_DEV_REDIS_PORT, LOBBY_DEV_LIVEKIT_PORT (and _RTC_TCP_PORT,
# _RTC_UDP_PORT), LOBBY_RUN_GRACE_SECONDS, LOBBY_DEV_BIN (a built lobby-dev:
# skips the build), LOBBY_LIVEKIT_BIN, and every LOBBY_… service setting.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

redis_port="${LOBBY_DEV_REDIS_PORT:-6390}"
livekit_port="${LOBBY_DEV_LIVEKIT_PORT:-7880}"
livekit_rtc_tcp="${LOBBY_DEV_LIVEKIT_RTC_TCP_PORT:-7881}"
livekit_rtc_udp="${LOBBY_DEV_LIVEKIT_RTC_UDP_PORT:-7882}"
grace="${LOBBY_RUN_GRACE_SECONDS:-5}"
run_dir="${LOBBY_RUN_DIR:-$repo/.run}"
mkdir -p "$run_dir/redis"

bash scripts/ensure-redis.sh
dev_bin="${LOBBY_DEV_BIN:-}"
if [ -z "$dev_bin" ]; then
  echo "lobby: building (first run takes a few minutes)" >&2
  cargo build -p lobby-dev
  dev_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/lobby-dev"
fi

pids=()
# Stops every child: SIGTERM, up to $grace seconds to exit, then SIGKILL.
# livekit-server in particular may take minutes to close thousands of rooms;
# nothing it holds matters once it stops, so it does not get to hold us.
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] && exit "$code"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + grace)) alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "lobby: still running after ${grace}s, killing: $(ps -o comm= -p "$(IFS=,; echo "${alive[*]}")" | tr '\n' ' ')" >&2
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait 2>/dev/null || true
  echo "lobby: stopped" >&2
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = "PONG" ]; then
  echo "lobby: something already answers on Redis port $redis_port (an earlier make run?); stop it or set LOBBY_DEV_REDIS_PORT" >&2
  exit 1
fi
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run_dir/redis" \
  --appendonly yes --save "" >"$run_dir/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
# Accepting connections is not enough: a Redis replaying a large AOF
# answers LOADING until it is done. Wait for PONG, however long that takes.
loading_announced=""
while :; do
  answer="$(redis-cli -p "$redis_port" ping 2>/dev/null || true)"
  [ "$answer" = "PONG" ] && break
  if ! kill -0 "$redis_pid" 2>/dev/null; then
    echo "lobby: redis-server stopped; the end of $run_dir/redis.log:" >&2
    tail -n 5 "$run_dir/redis.log" >&2
    exit 1
  fi
  if [ -z "$loading_announced" ] && [[ "$answer" == *LOADING* ]]; then
    echo "lobby: Redis is loading its data ($(du -sh "$run_dir/redis" | cut -f1)); waiting" >&2
    loading_announced=1
  fi
  sleep 0.1
done

admin_token="${LOBBY_ADMIN_TOKEN:-dev-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
gateway="${LOBBY_GATEWAY_LISTEN:-127.0.0.1:8080}"

livekit_mode="token_only"
livekit_bin="${LOBBY_LIVEKIT_BIN:-}"
if [ -n "$livekit_bin" ] || livekit_bin="$(bash scripts/ensure-livekit.sh)"; then
  livekit_config="port: $livekit_port
bind_addresses: [\"127.0.0.1\"]
rtc:
  tcp_port: $livekit_rtc_tcp
  udp_port: $livekit_rtc_udp
  use_external_ip: false
  node_ip: 127.0.0.1
# As in production: room and participant events reach the gateway at once
# (signed with the development key pair, which lobby-dev also uses), so a
# user leaving ends the session then, not when the reconciler looks.
webhook:
  api_key: devkey
  urls:
    - http://$gateway/webhooks/livekit"
  "$livekit_bin" --dev --config-body "$livekit_config" >"$run_dir/livekit.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$livekit_port") 2>/dev/null && { livekit_mode="server"; break; }
    sleep 0.1
  done
fi
if [ "$livekit_mode" = "token_only" ]; then
  echo "lobby: *** LiveKit server unavailable: running in TOKEN-ONLY mode (tokens are minted, no room is created) ***" >&2
else
  echo "lobby: livekit-server --dev on ws://127.0.0.1:$livekit_port (logs: $run_dir/livekit.log)" >&2
fi

echo "lobby: admin API token: $admin_token  (curl -H 'Authorization: Bearer $admin_token' http://$gateway/admin/v1/agents)" >&2

LOBBY_REDIS_URL="redis://127.0.0.1:$redis_port" \
LOBBY_LIVEKIT_MODE="$livekit_mode" \
LOBBY_LIVEKIT_URL="ws://127.0.0.1:$livekit_port" \
LOBBY_ADMIN_TOKEN="$admin_token" \
LOBBY_ARTIFACTS_DIR="$run_dir/artifacts" \
LOBBY_PUBLIC_URL="${LOBBY_PUBLIC_URL:-http://$gateway}" \
LOBBY_DEV_CERTS_DIR="${LOBBY_DEV_CERTS_DIR:-$run_dir/certs}" \
  "$dev_bin" &
pids+=($!)
# Ends when lobby-dev does (the EXIT trap then stops the rest), or at Ctrl-C.
wait "${pids[-1]}"
