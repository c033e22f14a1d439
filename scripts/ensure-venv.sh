#!/usr/bin/env bash
# Creates the project's Python venv (LiveKit's SDK for token checks) and
# prints the path of its python.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LOBBY_VENV:-$repo/.venv}"
req="$repo/tests/py/requirements.txt"
stamp="$venv/.lobby-requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! cmp -s "$req" "$stamp"; then
  echo "lobby: installing Python test packages into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "$venv/bin/python"
