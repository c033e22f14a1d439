#!/usr/bin/env bash
# Builds a Go tool once with `go install` into the tools folder
# (LOBBY_TOOLS_DIR, default .tools) and prints its path; a build already
# there whose version output shows VERSION_MARK is reused. Exits 3 (and says
# why) when Go is absent or the build fails.
#
# usage: go-tool.sh NAME PACKAGE VERSION VERSION_MARK [VERSION_ARGS...]
set -euo pipefail
name="$1" package="$2" version="$3" mark="$4"
shift 4
repo="$(cd "$(dirname "$0")/.." && pwd)"
tools="${LOBBY_TOOLS_DIR:-$repo/.tools}"
bin="$tools/bin/$name"

if [ -x "$bin" ] && "$bin" "$@" 2>/dev/null | grep -q -- "$mark"; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "lobby: Go is not installed, so $name cannot be built" >&2
  exit 3
fi
echo "lobby: building $name $version with go install (once; reused after)" >&2
mkdir -p "$tools/bin" "$tools/gobin"
# Outside the repo so no go.mod around us changes how the module resolves.
if ! (cd /tmp && GOBIN="$tools/gobin" GOFLAGS= go install "$package@$version") >&2; then
  echo "lobby: go install of $name $version failed" >&2
  exit 3
fi
# Go names the binary after the package's last element, or the one before
# a major-version suffix (…/kustomize/v5 builds `kustomize`).
built="$(basename "$package")"
if [[ "$built" =~ ^v[0-9]+$ ]]; then built="$(basename "$(dirname "$package")")"; fi
mv "$tools/gobin/$built" "$bin"
echo "$bin"
