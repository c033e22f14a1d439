#!/usr/bin/env bash
# Builds kustomize once with `go install` and prints its path (what
# deploy/check.sh renders every overlay with). Exits 3 when Go is absent or
# the build fails.
set -euo pipefail
KUSTOMIZE_VERSION="v5.8.1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tools="${LOBBY_TOOLS_DIR:-$repo/.tools}"
bin="$tools/bin/kustomize"

if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "${KUSTOMIZE_VERSION}"; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "lobby: Go is not installed, so kustomize cannot be built" >&2
  exit 3
fi
echo "lobby: building kustomize $KUSTOMIZE_VERSION with go install (once; reused after)" >&2
mkdir -p "$tools/bin" "$tools/gobin"
if ! (cd /tmp && GOBIN="$tools/gobin" GOFLAGS= go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION") >&2; then
  echo "lobby: go install of kustomize $KUSTOMIZE_VERSION failed" >&2
  exit 3
fi
mv "$tools/gobin/kustomize" "$bin"
echo "$bin"
