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
exec bash "$(dirname "$0")/go-tool.sh" livekit-server \
  github.com/livekit/livekit-server/cmd/server "$LIVEKIT_VERSION" "${LIVEKIT_VERSION#v}" --version
