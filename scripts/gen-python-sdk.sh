#!/usr/bin/env bash
# Generates the Python worker SDK's gRPC stubs from proto/workers.proto.
# With --check, fails if the committed stubs differ from freshly generated
# ones (a proto change without regeneration).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="$(bash "$repo/scripts/ensure-venv.sh")"
out="$repo/sdk/worker-python/lobby_worker/_proto"
target="$out"
if [ "${1:-}" = "--check" ]; then
  target="$(mktemp -d)"
  trap 'rm -rf "$target"' EXIT
fi
"$python" -m grpc_tools.protoc -I "$repo/proto" --python_out="$target" --grpc_python_out="$target" "$repo/proto/workers.proto"
# The generated service module imports its messages as a top-level module;
# inside a package it must be relative.
sed -i 's/^import workers_pb2 as workers__pb2$/from . import workers_pb2 as workers__pb2/' "$target/workers_pb2_grpc.py"
if [ "${1:-}" = "--check" ]; then
  for f in workers_pb2.py workers_pb2_grpc.py; do
    if ! cmp -s "$target/$f" "$out/$f"; then
      echo "sdk/worker-python stubs are stale: run scripts/gen-python-sdk.sh" >&2
      exit 1
    fi
  done
  echo "python worker stubs are current"
fi
