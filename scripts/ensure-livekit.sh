#!/usr/bin/env bash
# Builds the LiveKit server once with `go install` and prints its path.
# Exits 3 (and says why) when Go is absent or the build fails, so callers can
# fall back to token-only mode.
#
# Pinned to v1.13.5: every later release's go.mod replaces pion's webrtc, ice
# and dtls with LiveKit forks ("-warp" versions) that the Go module proxy does
# not serve, and `go install` refuses modules with replace directives anyway.
set -euo pipefail
LIVEKIT_VERSION="v1.13.5"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tools="${LOBBY_TOOLS_DIR:-$repo/.tools}"
bin="$tools/bin/livekit-server"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "${LIVEKIT_VERSION#v}"; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "lobby: Go is not installed, so the LiveKit server cannot be built" >&2
  exit 3
fi
echo "lobby: building livekit-server $LIVEKIT_VERSION with go install (once; reused after)" >&2
mkdir -p "$tools/bin" "$tools/gobin"
# Outside the repo so no go.mod around us changes how the module resolves.
if ! (cd /tmp && GOBIN="$tools/gobin" GOFLAGS= go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION") >&2; then
  echo "lobby: go install of livekit-server $LIVEKIT_VERSION failed" >&2
  exit 3
fi
mv "$tools/gobin/server" "$bin"
echo "$bin"
